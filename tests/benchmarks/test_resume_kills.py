"""`python -m benchmarks.resume_kills --quick`: a real store, a reference run, random SIGKILLs each followed by
--resume, the comparison and the refusals, end to end (96 images, 6 steps, 2 kills)."""
from __future__ import annotations

import json

import pytest

from benchmarks import resume_kills


@pytest.mark.slow
def test_quick_kills_end_equal_with_no_temp_file_and_every_refusal_named(tmp_path):
    assert resume_kills.main(["--quick", "--kills", "2", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "resume_kills.json").read_text())
    kills = result["killed"]["kills"]
    assert len(kills) == 2  # each attempt after a kill resumes when a resume state was written by then
    assert result["compare"]["resume_lines"] == sum(k["state_step_after"] is not None for k in kills)
    for name in resume_kills.CHECKPOINTS:
        assert result["compare"][name]["tensors"] > 200 and result["compare"][name]["differ"] == []
    assert result["compare"]["log_rows"]["differ"] == [] and result["compare"]["temp_files_left"] == []
    messages = {r["case"]: r["message"] for r in result["refusals"]}
    assert all(r["exit_status"] == 1 and r["work_dir_unchanged"] for r in result["refusals"])
    assert all(m.startswith("contracts.resume.ResumeError: cannot resume") for m in messages.values())
    assert "empty checkpoint file (0 bytes)" in messages["empty WORK_DIR/resume.pth"]
    assert "student.arch: saved '11m', requested '5m'" in messages["a student.arch=11m run's state as --resume FILE"]
    assert "bitwise equal to the uninterrupted run: yes" in (tmp_path / "resume_kills.md").read_text()
