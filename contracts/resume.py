"""The resume contract of every long job: a resume state names the run it belongs to, and a run resumes only from a
state of the same run (docs/resume.md).

A run's identity is a flat dict, dotted key → plain value (`flatten`), of everything its result depends on: the
config keys that change what is computed, plus what the config only points at, by content (data, store, init
weights: their identities or hashes) and the process layout (world size, batches per epoch). A job stores it in
every resume state it writes; on resume `check_resume` compares every field with the requested run's and refuses a
difference, naming the file, the field, the saved and the requested value, unless the caller accepts it (the
entry points' `--resume-anyway [FIELD ...]`). Fields listed as `fixed` (the position inside the data cannot be
carried over) are refused even then. Accepted changes are returned for the job to log and record.

A job whose resume state is plain JSON (a list of finished steps, say) gets the whole contract from two calls:
`save_json_state(path, identity, state)` (atomic, names the run) and `load_json_state(path, identity, accept=...)`
(None when there is no file yet; a bad file or another run's state raises `ResumeError` in one line). Torch files
are read with `backbones.read_checkpoint`, the project's one checkpoint reader.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from .fileio import atomic_write_text, json_sha256

JSON_STATE_FORMAT = "tinyvit-bench/json-resume/v1"
ANYWAY_HELP = ("resume even where the resume state's run differs from this one (e.g. a new lr): with no FIELD every "
               "difference is accepted, else only these fields (or prefixes: optim); the changes are logged and "
               "recorded")


def accepted_by(resume_anyway: list[str] | None) -> bool | list[str]:
    """`check_resume`'s `accept` from a `--resume-anyway [FIELD ...]` value: absent → False, no field → True."""
    return True if resume_anyway == [] else (resume_anyway or False)


class ResumeError(ValueError):
    """A resume file that cannot be used: unreadable, not a resume state, or another run's (the message names it)."""


@dataclass(frozen=True)
class Change:
    """One field whose value differs between the saved run and the requested one."""

    field: str
    saved: Any
    requested: Any

    def __str__(self) -> str:
        return f"{self.field}: saved {self.saved!r}, requested {self.requested!r}"


def flatten(obj: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings → `{'a.b': value}`; tuples become lists and anything not JSON-plain its `str` (as stored)."""
    out: dict[str, Any] = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = json.loads(json.dumps(value, default=str))
    return out


def run_identity(fields: Mapping[str, Any], neutral: Iterable[str] = ()) -> dict[str, Any]:
    """`flatten(fields)` without the keys under a `neutral` prefix (what does not change the result: log intervals,
    worker counts, the work dir, ...)."""
    neutral = tuple(neutral)
    return {k: v for k, v in sorted(flatten(fields).items()) if not _under(k, neutral)}


def identity_sha256(identity: Mapping[str, Any]) -> str:
    """The identity's hash (canonical JSON), stored beside it."""
    return json_sha256(dict(identity))


def compare(saved: Mapping[str, Any], requested: Mapping[str, Any]) -> list[Change]:
    """Every field present in either with another value in the other (a field missing on one side: '<absent>')."""
    absent = "<absent>"
    return [Change(k, saved.get(k, absent), requested.get(k, absent)) for k in sorted(set(saved) | set(requested))
            if saved.get(k, absent) != requested.get(k, absent)]


def check_resume(path: str | Path, saved: Mapping[str, Any], requested: Mapping[str, Any], *,
                 accept: bool | Iterable[str] = False, fixed: Iterable[str] = ()) -> list[Change]:
    """Compare a resume state's run identity with the requested run's; returns the accepted changes.

    Raises `ResumeError` naming `path` and every refused field with both values. `accept`: True accepts every
    change, an iterable of fields (or prefixes) only those; a field under `fixed` is refused even when accepted.
    """
    changes = compare(saved, requested)
    fixed = tuple(fixed)
    allowed = () if accept is False else ("",) if accept is True else tuple(accept)
    refused = [c for c in changes if _under(c.field, fixed) or not _under(c.field, allowed)]
    if refused:
        hint = ("; these cannot change within a run (the data position would not carry over): start a new work dir"
                if all(_under(c.field, fixed) for c in refused) else
                "; to continue anyway with the requested values, rerun with --resume-anyway "
                f"{' '.join(c.field for c in refused if not _under(c.field, fixed))} (or start a new work dir)")
        raise ResumeError(f"cannot resume from {path}: it belongs to another run: "
                          + "; ".join(map(str, refused)) + hint)
    return changes


def describe(changes: Iterable[Change]) -> str:
    """`'optim.lr: saved 0.002, requested 0.001; ...'` for the log line of an accepted resume."""
    return "; ".join(map(str, changes))


def changes_record(changes: Iterable[Change]) -> dict[str, list[Any]]:
    """`{field: [saved, requested]}`: accepted changes as a job records them (plain types)."""
    return {c.field: [c.saved, c.requested] for c in changes}


def save_json_state(path: str | Path, identity: Mapping[str, Any], state: Any,
                    accepted: list[dict[str, Any]] | None = None) -> Path:
    """Write a JSON resume state naming its run (`identity`), atomically; `accepted`: the changes accepted at
    earlier resumes (`load_json_state` returns them), kept in the file."""
    identity = flatten(identity)
    doc = {"format": JSON_STATE_FORMAT, "run": {"identity": identity, "sha256": identity_sha256(identity)},
           "accepted_changes": list(accepted or []), "state": state}
    return atomic_write_text(path, json.dumps(doc, indent=1, sort_keys=True, default=str) + "\n")


def load_json_state(path: str | Path, identity: Mapping[str, Any], *, accept: bool | Iterable[str] = False,
                    fixed: Iterable[str] = ()) -> tuple[Any, list[dict[str, Any]]] | None:
    """`(state, accepted changes)` of the JSON resume state at `path` if it belongs to the run `identity` (see
    `check_resume`; this resume's accepted changes are appended to the list, for the next `save_json_state`);
    None when there is no file. A bad file raises `ResumeError` naming it and the cause."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        doc = read_json_file(path)
    except ResumeError as err:
        raise ResumeError(f"cannot resume: {err}") from None
    if not isinstance(doc, dict) or doc.get("format") != JSON_STATE_FORMAT:
        found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise ResumeError(f"cannot resume from {path}: not a {JSON_STATE_FORMAT} resume state (format {found!r})")
    run = doc.get("run")
    if not (isinstance(run, dict) and isinstance(run.get("identity"), dict) and "state" in doc):
        raise ResumeError(f"cannot resume from {path}: a damaged {JSON_STATE_FORMAT} resume state (its run identity "
                          "or its state is missing)")
    changes = check_resume(path, run["identity"], flatten(identity), accept=accept, fixed=fixed)
    accepted = list(doc.get("accepted_changes") or []) + ([{"file": str(path), "changes": changes_record(changes)}]
                                                          if changes else [])
    return doc["state"], accepted


def read_json_file(path: str | Path) -> Any:
    """The JSON document in the file `path`; an empty, truncated or non-JSON file (binary garbage included) raises
    `ResumeError` naming it and the cause: `load_json_state`'s reader, for state files that name no run."""
    data = Path(path).read_bytes()
    if not data.strip():
        raise ResumeError(f"{path}: empty file")
    try:
        return json.loads(data.decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ResumeError(f"{path}: truncated or not JSON ({err})") from None


def _under(key: str, prefixes: tuple[str, ...]) -> bool:
    return any(p == "" or key == p or key.startswith(p + ".") for p in prefixes)
