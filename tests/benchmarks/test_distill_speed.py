"""benchmarks.distill_speed at toy size: both replay pipelines through the trainer's public API, every figure
finite and positive, records that validate against contracts.records, the side-by-side table."""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from benchmarks import distill_speed
from contracts.records import TASKS, read_records


def test_quick_run_writes_valid_records_for_both_pipelines(tmp_path: Path, capsys) -> None:
    records = distill_speed.main(["--device", "cpu", "--quick", "--img-size", "32", "--batch", "4", "--steps", "1",
                                  "--warmup", "1", "--teacher", "resnet18", "--records", str(tmp_path)])
    assert [r["setting"]["pipeline"] for r in records] == ["pil", "tensor"]
    on_disk = read_records(tmp_path)  # validated on read
    assert sorted(r["setting"]["pipeline"] for r in on_disk) == ["pil", "tensor"]
    allowed = set(TASKS["distill_speed"].metrics)
    for rec in records:
        assert set(rec["metrics"]) == allowed  # every figure, per pipeline
        assert all(math.isfinite(v) and v > 0 for v in rec["metrics"].values())
        assert rec["backbone"] == {"name": "tinyvit-5m", "source": "random", "pretrain": "none",
                                   "checkpoint_sha256": None}
        setting = rec["setting"]
        assert (setting["device"], setting["amp_dtype"], setting["workers"], setting["batch"]) == ("cpu", "none", 0, 4)
        m = rec["metrics"]
        assert m["stored_of_bound"] == pytest.approx(m["stored_img_s"] / m["stored_bound_img_s"])
        assert m["online_over_stored"] == pytest.approx(m["stored_img_s"] / m["online_img_s"])
    table = capsys.readouterr().out.split("teacher / student FLOPs")[0].splitlines()
    header = next(line for line in table if line.split() == ["pil", "tensor"])
    rows = table[table.index(header) + 1:]
    assert [r.split("  ")[0] for r in rows][:4] == ["teacher alone img/s", "save_logits img/s", "save_logits / teacher",
                                                    "data pipeline img/s"]
    assert len(rows) == 15 and all(len(r.split()[-2:]) == 2 for r in rows)


def test_data_only_interleaves_the_pipelines_and_writes_valid_records(tmp_path: Path, capsys) -> None:
    records = distill_speed.main(["--device", "cpu", "--data-only", "--img-size", "32", "--batch", "4", "--steps", "2",
                                  "--warmup", "1", "--rounds", "2", "--records", str(tmp_path)])
    assert [r["setting"]["pipeline"] for r in records] == ["pil", "tensor"]
    assert len(read_records(tmp_path)) == 2 and all(set(r["metrics"]) == {"data_img_s"} for r in records)
    assert capsys.readouterr().err.count("] round ") == 2  # one progress line per round


def test_modes_subset_records_the_optimizer_and_compile_setting(tmp_path: Path, capsys) -> None:
    """`--modes stored`: only that mode's figures (no ratio without its pair), '—' for the rest in the table; the
    record names the compile mode and the AdamW kernel (fused on the CPU too)."""
    records = distill_speed.main(["--device", "cpu", "--quick", "--img-size", "32", "--batch", "4", "--steps", "2",
                                  "--warmup", "1", "--teacher", "resnet18", "--pipelines", "tensor",
                                  "--modes", "stored", "--records", str(tmp_path)])
    (rec,) = records
    assert {k for k in rec["metrics"] if k.startswith(("scratch", "online", "stored"))} == {
        "stored_step_s", "stored_img_s", "stored_bound_img_s", "stored_of_bound"}
    assert "stored_over_scratch" not in rec["metrics"] and read_records(tmp_path)[0]["metrics"] == rec["metrics"]
    assert (rec["setting"]["modes"], rec["setting"]["compile"], rec["setting"]["optim"]) == (
        ["stored"], "off", "AdamW(fused)")
    out = capsys.readouterr().out
    assert "scratch img/s end to end" in out and "—" in out.split("scratch img/s end to end")[1].splitlines()[0]
    with pytest.raises(SystemExit):
        distill_speed.main(["--modes", "stored,nope"])
    with pytest.raises(SystemExit):
        distill_speed.main(["--compile", "fast"])


def test_student_flops_count_every_op_of_the_cpu_inference_path() -> None:
    """The teacher/student FLOP ratio the benchmark prints: our TinyViT on CPU must be counted in full (under
    no_grad it runs fused oneDNN ops the flop counter skips), i.e. 2 × the MACs `benchmarks.common` counts."""
    from backbones import TinyViT
    from benchmarks.common import count_macs
    model = TinyViT("5m", img_size=64, num_classes=1000)
    assert distill_speed.forward_flops(model, 64) == pytest.approx(2 * count_macs(model, 64), rel=0.05)


def test_image_folder_of_real_photos_runs_save_logits_and_the_stored_step(tmp_path: Path) -> None:
    """`--image-folder`: real JPEG photos (labelme's VOC images, decoded per sample) through save_logits and the
    stored student step; the record names the data set; a missing or too small folder is refused up front."""
    from contracts.assets import labelme_examples
    photos = sorted({p.name: p for p in labelme_examples().glob("*/data_dataset_voc/JPEGImages/*.jpg")}.values())
    assert len(photos) >= 8
    for i, photo in enumerate(photos[:8]):
        (tmp_path / "photos" / f"class{i % 2}").mkdir(parents=True, exist_ok=True)
        (tmp_path / "photos" / f"class{i % 2}" / photo.name).symlink_to(photo)
    (rec,) = distill_speed.main(["--device", "cpu", "--quick", "--img-size", "32", "--batch", "4", "--steps", "1",
                                 "--warmup", "1", "--teacher", "resnet18", "--pipelines", "tensor", "--modes", "stored",
                                 "--image-folder", str(tmp_path / "photos"), "--records", str(tmp_path / "rec")])
    assert rec["dataset"] == "ImageFolder" and read_records(tmp_path / "rec")[0]["dataset"] == "ImageFolder"
    assert all(math.isfinite(v) and v > 0 for v in rec["metrics"].values())
    with pytest.raises(SystemExit, match="not a directory"):
        distill_speed.main(["--device", "cpu", "--data-only", "--image-folder", str(tmp_path / "nope")])
    with pytest.raises(SystemExit, match="8 images, fewer than the 12 this run reads"):
        distill_speed.main(["--device", "cpu", "--data-only", "--img-size", "32", "--batch", "4", "--steps", "2",
                            "--warmup", "1", "--image-folder", str(tmp_path / "photos")])
