"""The one error a logit store raises."""


class StoreError(ValueError):
    """A store is missing, incomplete, corrupt, or does not match what the reader expects."""
