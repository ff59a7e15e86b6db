"""The resume contract's comparison: every differing field named with both values, overrides by field or prefix,
fixed fields refused even when accepted."""
from __future__ import annotations

import pytest

from contracts.resume import (Change, ResumeError, accepted_by, changes_record, check_resume, compare, describe,
                              flatten, identity_sha256, load_json_state, run_identity, save_json_state)


def test_identity_is_flat_plain_and_leaves_out_the_neutral_keys():
    cfg = {"optim": {"lr": 1e-3, "betas": (0.9, 0.999)}, "data": {"num_workers": 4, "aug": {}}, "log_interval": 10,
           "student": {"arch": {"depths": [2, 2]}}, "path": __import__("pathlib").Path("/x")}
    identity = run_identity(cfg, neutral=("log_interval", "data.num_workers"))
    assert identity == {"data.aug": {}, "optim.betas": [0.9, 0.999], "optim.lr": 1e-3, "path": "/x",
                        "student.arch.depths": [2, 2]}
    assert flatten({"a": {"b": None}}) == {"a.b": None}
    assert identity_sha256(identity) == identity_sha256(dict(reversed(identity.items())))  # order-free


def test_check_resume_names_the_file_every_field_and_both_values():
    saved = {"optim.lr": 0.002, "epochs": 4, "world_size": 1, "gone": 1}
    requested = {"optim.lr": 0.001, "epochs": 4, "world_size": 2, "new": "x"}
    assert compare(saved, requested) == [Change("gone", 1, "<absent>"), Change("new", "<absent>", "x"),
                                         Change("optim.lr", 0.002, 0.001), Change("world_size", 1, 2)]
    with pytest.raises(ResumeError) as err:
        check_resume("w/resume.pth", saved, requested, fixed=("world_size",))
    assert str(err.value) == (
        "cannot resume from w/resume.pth: it belongs to another run: gone: saved 1, requested '<absent>'; new: saved "
        "'<absent>', requested 'x'; optim.lr: saved 0.002, requested 0.001; world_size: saved 1, requested 2; to "
        "continue anyway with the requested values, rerun with --resume-anyway gone new optim.lr (or start a new "
        "work dir)")
    # accepting by field or prefix leaves the rest refused; a fixed field is refused even when everything is accepted
    with pytest.raises(ResumeError, match=r"another run: gone: .*; world_size: saved 1, requested 2; to continue "
                                          r"anyway with the requested values, rerun with --resume-anyway gone \(or"):
        check_resume("f", saved, requested, accept=("optim", "new"), fixed=("world_size",))
    with pytest.raises(ResumeError, match=r"another run: world_size: saved 1, requested 2; these cannot change"):
        check_resume("f", saved, requested, accept=True, fixed=("world_size",))
    accepted = check_resume("f", saved, requested, accept=True)
    assert describe(accepted[2:3]) == "optim.lr: saved 0.002, requested 0.001"
    assert changes_record(accepted)["optim.lr"] == [0.002, 0.001]
    assert check_resume("f", saved, dict(saved)) == []  # the same run: nothing to accept
    # --resume-anyway's value: absent, given alone, given with fields
    assert (accepted_by(None), accepted_by([]), accepted_by(["optim"])) == (False, True, ["optim"])
    with pytest.raises(ResumeError, match="optim.lr"):  # a prefix matches whole name parts only
        check_resume("f", {"optim.lr": 1}, {"optim.lr": 2}, accept=("optim.l",))


def test_json_state_round_trip_other_runs_and_bad_files(tmp_path):
    path = tmp_path / "suite_state.json"
    run = {"jobs": ["probe", "few_shot"], "seed": {"value": 0}}
    assert load_json_state(path, run) is None  # nothing to resume: a fresh start
    save_json_state(path, run, {"done": ["probe"]})
    assert load_json_state(path, run) == ({"done": ["probe"]}, [])
    other = {**run, "seed": {"value": 1}}
    with pytest.raises(ResumeError, match=r"suite_state.json: it belongs to another run: seed.value: saved 0, "
                                          r"requested 1; .*--resume-anyway seed.value"):
        load_json_state(path, other)
    state, accepted = load_json_state(path, other, accept=["seed"])
    assert accepted == [{"file": str(path), "changes": {"seed.value": [0, 1]}}]
    save_json_state(path, other, state, accepted)  # the accepted change is kept for later resumes
    assert load_json_state(path, other) == ({"done": ["probe"]}, accepted)
    assert not list(tmp_path.glob(".*.tmp"))
    good = path.read_text()
    for content, message in (("", "empty file"), (good[:len(good) // 2], "truncated or not JSON"),
                             ('{"format": "x"}', "not a tinyvit-bench/json-resume/v1 resume state (format 'x')"),
                             ("[1]", "not a tinyvit-bench/json-resume/v1 resume state (format 'list')")):
        path.write_text(content)
        with pytest.raises(ResumeError, match=f"{path}: {message}".replace("(", r"\(").replace(")", r"\)")):
            load_json_state(path, run)
