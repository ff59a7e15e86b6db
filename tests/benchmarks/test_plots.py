"""Figures: every plot writes a PNG and a PDF; training logs in JSON lines and CSV; bad logs named."""
from __future__ import annotations

import json

import pytest

from benchmarks import plots


def test_all_plots_from_records(records_dir, tmp_path):
    log = tmp_path / "run" / "scalars.json"
    log.parent.mkdir()
    log.write_text("\n".join(json.dumps({"step": i, "loss": 3.0 - 0.1 * i, "lr": 1e-3}) for i in range(10)))
    written = plots.main(["--records", str(records_dir), "--out", str(tmp_path / "plots"), "--logs", str(log)])
    names = {p.name for p in written}
    for stem in ("accuracy_vs_cost", "storage_vs_k", "distill_cost", "training_curves"):
        assert {f"{stem}.png", f"{stem}.pdf"} <= names
    for path in written:
        head = path.read_bytes()[:8]
        assert head.startswith(b"\x89PNG" if path.suffix == ".png" else b"%PDF"), path


def test_read_log_csv_and_errors(tmp_path):
    csv_log = tmp_path / "log.csv"
    csv_log.write_text("iter,loss,top1\n0,2.5,\n10,2.0,0.4\n20,1.5,0.6\n")
    frame = plots.read_log(csv_log)
    assert frame.index.name == "iter" and frame["loss"].tolist() == [2.5, 2.0, 1.5]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"step": 1, "loss": 1}\n{oops\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2"):
        plots.read_log(bad)
    nostep = tmp_path / "nostep.jsonl"
    nostep.write_text('{"loss": 1}\n')
    with pytest.raises(ValueError, match="nostep.jsonl: a training log needs a 'step'"):
        plots.read_log(nostep)
