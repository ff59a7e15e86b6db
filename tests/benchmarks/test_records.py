"""Result records: round trip through write/read, and bad files named in the error."""
from __future__ import annotations

import json

import pytest

from contracts.records import make_record, read_records, write_record


def test_round_trip_and_replace(tmp_path):
    rec = make_record("few_shot", dataset="fashion_mnist", backbone={"name": "tinyvit-5m", "source": "distill"},
                      metrics={"top1": 0.7, "ci95": 0.02}, setting={"shots": 5, "ways": 5})
    path = write_record(rec, tmp_path)
    again = write_record({**rec, "metrics": {"top1": 0.72, "ci95": 0.02}}, tmp_path)
    assert again == path  # same identity → same file, replaced
    (back,) = read_records(tmp_path)
    assert back["metrics"]["top1"] == 0.72 and back["_path"] == str(path)
    for key in ("git_commit", "machine", "date", "config_sha256"):
        assert back[key]
    assert read_records(tmp_path, tasks=["detection"]) == []


def test_bad_records_name_the_file(tmp_path):
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ValueError, match="broken.json: not valid JSON"):
        read_records(tmp_path)
    (tmp_path / "broken.json").unlink()
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "partial.json").write_text(json.dumps({"task": "few_shot", "metrics": {}}))
    with pytest.raises(ValueError, match=r"partial.json: not a result record \(lacks"):
        read_records(tmp_path)


def test_unknown_task_refused():
    with pytest.raises(ValueError, match="unknown record task 'nope'"):
        make_record("nope", dataset="x", backbone={"name": "b"}, metrics={})
