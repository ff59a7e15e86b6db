"""Shared fixtures for the backbone tests."""
from __future__ import annotations

import pytest
import torch
from torch import nn


def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial values for every parameter and BN statistic (zero-init layers would hide errors)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.randn(t.shape, generator=g) * 0.1)
                if name.endswith("running_var"):
                    t.abs_().add_(0.5)
    return model


@pytest.fixture(scope="session")
def randomize():
    """`randomize(model, seed)`: fill every parameter and BN statistic with non-trivial values."""
    return randomize_
