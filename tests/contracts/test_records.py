"""The result-record schema: every refusal names the field; write → read round trip; docs/records.md in step."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from contracts.records import (SOURCES, TASKS, RecordError, backbone_block, make_record, read_records,
                               validate_record, write_record)

SHA = "ab" * 32
DISTILLED = backbone_block("tinyvit-21m", "distill", pretrain="in21k-distill", checkpoint_sha256=SHA)


def _probe(**change) -> dict:
    fields = dict(dataset="cifar100", backbone=DISTILLED, metrics={"top1": 0.862, "ci95": 0.004},
                  setting={"method": "logreg"})
    fields.update(change)
    return make_record("linear_probe", **fields)


def test_a_valid_record_round_trips_and_rewrites_in_place(tmp_path):
    rec = _probe()
    path = write_record(rec, tmp_path)
    assert write_record({**rec, "metrics": {"top1": 0.87}}, tmp_path) == path  # same identity → same file
    (back,) = read_records(tmp_path)
    assert back["metrics"] == {"top1": 0.87} and back["backbone"] == DISTILLED and back["_path"] == str(path)
    for key in ("git_commit", "machine", "date", "config_sha256"):
        assert back[key]
    assert read_records(tmp_path, tasks=["detection"]) == []
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left behind


@pytest.mark.parametrize("change, field", [
    (dict(metrics={"top1": 0.8, "accuracy": 0.8}), r"metrics\.accuracy: not a linear_probe metric"),
    (dict(metrics={"top1": 86.2}), r"metrics\.top1: 86\.2 is not a fraction in \[0, 1\]"),
    (dict(metrics={"top1": True}), r"metrics\.top1: True is not a fraction"),
    (dict(metrics={"ci95": 0.01}), r"metrics: linear_probe record lacks \['top1'\]"),
    (dict(backbone={**DISTILLED, "checkpoint_sha256": None}), r"backbone\.checkpoint_sha256: required when "
                                                                r"backbone\.source is 'distill'"),
    (dict(backbone={**DISTILLED, "checkpoint_sha256": "abc123"}), r"backbone\.checkpoint_sha256: 'abc123' is not "
                                                                   r"a full sha256"),
    (dict(backbone={**DISTILLED, "source": "pretrained"}), r"backbone\.source: 'pretrained' is not one of"),
    (dict(backbone={**DISTILLED, "pretrain": None}), r"backbone\.pretrain: None must be a lower-case name"),
    (dict(backbone={**DISTILLED, "pretrain": "IN-21k distill"}), r"backbone\.pretrain: 'IN-21k distill'"),
    (dict(backbone=backbone_block("tinyvit-5m", "random", pretrain="in1k")), r"backbone\.pretrain: random weights "
                                                                              r"have pretrain 'none'"),
    (dict(backbone={"source": "random"}), r"backbone: needs at least a 'name'"),
    (dict(dataset=""), r"dataset: must be a non-empty string"),
    (dict(setting=None), None),  # None → {}: allowed
])
def test_refusals_name_the_field(change, field):
    if field is None:
        assert _probe(**change)["setting"] == {}
        return
    with pytest.raises(RecordError, match=field):
        _probe(**change)


def test_task_level_refusals():
    with pytest.raises(RecordError, match=r"task: unknown 'nope'"):
        make_record("nope", dataset="x", backbone=None, metrics={})
    with pytest.raises(RecordError, match=r"backbone: a store record measures no backbone"):
        make_record("store", dataset="x", backbone=DISTILLED, metrics={"bytes_per_sample": 44})
    with pytest.raises(RecordError, match=r"record lacks \['date'\]"):
        validate_record({k: v for k, v in _probe().items() if k != "date"})
    with pytest.raises(RecordError, match=r"record: must be a JSON object"):
        validate_record([1, 2])
    rec = make_record("detection", dataset="coco", backbone=DISTILLED,
                      metrics={"bbox_ap": 0.5, "bbox_ap_s": None})  # undefined AP (mmdet -1) is null
    assert rec["metrics"]["bbox_ap_s"] is None
    assert backbone_block("tinyvit-5m", "random")["pretrain"] == "none"


def test_write_refuses_and_read_names_the_file(tmp_path):
    bad = {**_probe(), "metrics": {"top1": 86.2}}
    with pytest.raises(RecordError, match=r"metrics\.top1"):
        write_record(bad, tmp_path)
    assert not list(tmp_path.iterdir())
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "edited.json").write_text(json.dumps(bad))
    with pytest.raises(RecordError, match=r"edited\.json: metrics\.top1: 86\.2"):
        read_records(tmp_path)
    (tmp_path / "sub" / "edited.json").write_text("{not json")
    with pytest.raises(RecordError, match=r"edited\.json: not valid JSON"):
        read_records(tmp_path)


def test_docs_list_every_task_metric_and_source():
    """docs/records.md is the user-facing copy of this schema: it must name every task, metric and source."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "records.md").read_text()
    for task, schema in TASKS.items():
        assert f"`{task}`" in text, task
        for metric in schema.metrics:
            assert f"`{metric}`" in text, (task, metric)
    for source in SOURCES:
        assert f"`{source}`" in text, source
