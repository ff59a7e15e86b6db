"""Student trainer: exact resume, contract-2 checkpoints (weights_only, load_pretrained, mmdet init_cfg), export,
the pieces of the loss and the schedule. Real data (Fashion-MNIST), a real ImageNet teacher (MobileNetV2) writing
a real store through `distill_pretrain.save_logits`; a slim TinyViT at 32 px keeps it fast on 2 cores."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from backbones import CHECKPOINT_FORMAT, TinyViT, load_pretrained
from contracts.resume import ResumeError
from distill_pretrain import save_logits
from distill_pretrain.export import export_backbone
from distill_pretrain.optim import cosine_lr, schedule_from_cfg
from distill_pretrain.store import StoreError, recover_dense
from distill_pretrain.config import load_config
from distill_pretrain.objectives import label_targets, soft_cross_entropy
from distill_pretrain.sampler import EpochBatchSampler
from distill_pretrain.trainer import Trainer

REPO = Path(__file__).resolve().parents[2]
SLIM = dict(embed_dims=[16, 32, 32, 64], depths=[1, 1, 1, 1], head_dim=16)
AUG = dict(img_size=32, auto_augment=None, color_jitter=0.4, re_prob=0.25, mixup_alpha=0.8, cutmix_alpha=1.0,
           scale=[0.35, 1.0])


def _train_and_resume(slim_cfg, store: Path, tmp_path: Path) -> Trainer:
    """Stopped mid-epoch and resumed (new Trainer, same work dir) = uninterrupted: same losses, same weights, same
    kept per-epoch checkpoints (keep_interval=1)."""
    full = Trainer(slim_cfg(store, keep_interval=1), tmp_path / "full")
    full_hist = full.train()
    assert len(full_hist) == 8  # 2 epochs × 4 optimizer steps (32 samples / batch 4 / accumulation 2)

    first = Trainer(slim_cfg(store, stop_after_steps=3, keep_interval=1), tmp_path / "split")
    first.train()
    assert (first.epoch, first.batch_in_epoch, first.step) == (0, 6, 3)
    assert not list((tmp_path / "split").glob("checkpoint_epoch*"))  # a mid-epoch stop keeps nothing
    second = Trainer(slim_cfg(store, keep_interval=1), tmp_path / "split")
    assert second.resume()
    second_hist = second.train()
    assert [h["loss"] for h in second_hist] == [h["loss"] for h in full_hist]
    assert [h["lr"] for h in second_hist] == [h["lr"] for h in full_hist]
    for key, value in full.model.state_dict().items():
        assert torch.equal(value, second.model.state_dict()[key]), key
    for key, value in full.ema.module.state_dict().items():
        assert torch.equal(value, second.ema.module.state_dict()[key]), key
    for epoch, step in ((1, 4), (2, 8)):
        kept = [torch.load(tmp_path / run / f"checkpoint_epoch{epoch}.pth", weights_only=True)
                for run in ("full", "split")]
        assert [k["meta"]["step"] for k in kept] == [step, step]
        for key, value in kept[0]["state_dict"].items():
            assert torch.equal(value, kept[1]["state_dict"][key]), key
    final = torch.load(tmp_path / "full" / "checkpoint.pth", weights_only=True)["state_dict"]
    assert all(torch.equal(v, kept[0]["state_dict"][k]) for k, v in final.items())
    losses = [h["loss"] for h in full_hist]
    assert all(math.isfinite(v) for v in losses) and "agree" in full_hist[0]
    assert full_hist[-1]["skipped"] == 0
    return full


def test_stored_distillation_resumes_exactly(slim_cfg, store: Path, tmp_path: Path) -> None:
    full = _train_and_resume(slim_cfg, store, tmp_path)
    assert full.replay.pipeline == "pil"  # the store's

    # contract 2: plain types, weights_only, meta from the store
    ckpt_path = tmp_path / "full" / "checkpoint.pth"
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    assert ckpt["format"] == CHECKPOINT_FORMAT
    meta = ckpt["meta"]
    assert meta["img_size"] == 32 and meta["num_classes"] == 1000 and meta["epoch"] == 1
    assert meta["window_sizes"] == [1, 1, 2, 1] and meta["arch"] == SLIM
    assert meta["teacher"]["name"] == "mobilenet_v2" and len(meta["teacher"]["weights_sha256"]) == 64
    assert meta["store"]["topk"] == 10 and len(meta["config_sha256"]) == 64 and meta["git_commit"]
    manifest = full.store.manifest  # the store keys the manifest has survive into the meta
    assert meta["store"]["transform_hash"] == manifest["transform_hash"] and meta["store"]["base_seed"] == 0
    assert meta["store"]["value_format"] == "fp16" and meta["store"]["dataset"]["sha256"]
    assert meta["objective"] == "stored" and meta["pretrain"] == "fashionmnist-distill"
    assert meta["store"]["pipeline"] == "pil"
    assert torch.load(tmp_path / "split" / "resume.pth", weights_only=True)["step"] == 8

    # backbones.load_pretrained into a backbone-mode TinyViT: every backbone weight placed, equal
    backbone = TinyViT(arch=SLIM, img_size=32, out_indices=(0, 1, 2, 3))
    report = load_pretrained(backbone, str(ckpt_path), strict=False)
    assert report.source_format == "ours"
    assert all(k.startswith(("norm0.", "norm1.", "norm2.", "norm3.")) for k in report.missing_keys)  # new out norms
    assert torch.equal(backbone.state_dict()["stages.3.blocks.0.attn.qkv.weight"],
                       ckpt["state_dict"]["stages.3.blocks.0.attn.qkv.weight"])

    # mmdet: a registry-built backbone with init_cfg=Pretrained loads it in init_weights
    import backbones  # noqa: F401  (registers TinyViT for mmdet through the parent registry)
    from mmdet.registry import MODELS
    det_backbone = MODELS.build(dict(type="TinyViT", arch=SLIM, img_size=32, out_indices=(1, 2, 3),
                                     init_cfg=dict(type="Pretrained", checkpoint=str(ckpt_path))))
    det_backbone.init_weights()
    assert torch.equal(det_backbone.state_dict()["patch_embed.conv1.conv.weight"],
                       ckpt["state_dict"]["patch_embed.conv1.conv.weight"])
    feats = det_backbone(torch.randn(1, 3, 64, 64))
    assert [f.shape[1] for f in feats] == [32, 32, 64]

    # export: backbone-only, still contract 2
    out = export_backbone(ckpt_path, tmp_path / "backbone.pth")
    exported = torch.load(out, weights_only=True)
    assert not any(k.startswith("head.") for k in exported["state_dict"]) and exported["meta"]["num_classes"] == 0
    assert load_pretrained(TinyViT(arch=SLIM, img_size=32, out_indices=(3,)), str(out)).missing_keys == [
        "norm3.weight", "norm3.bias"]


def test_tensor_store_trains_and_resumes_exactly(slim_cfg, tensor_store: Path, tmp_path: Path) -> None:
    full = _train_and_resume(slim_cfg, tensor_store, tmp_path)  # the store's pipeline by default
    assert full.replay.pipeline == "tensor" and full.checkpoint_meta(0)["store"]["pipeline"] == "tensor"
    # persistent workers (collate pickled into them) across the epoch boundary: the same run
    workers = Trainer(slim_cfg(tensor_store, **{"data.num_workers": 2, "data.prefetch_factor": 2}), tmp_path / "w2")
    assert [h["loss"] for h in workers.train()] == [h["loss"] for h in full.history]


def test_unreadable_training_images_stop_or_are_skipped_with_a_count(slim_cfg, tmp_path: Path) -> None:
    """data.on_error: 'stop' (default) names the file; 'skip' leaves the sample out of its batch and counts it."""
    import numpy as np
    from PIL import Image
    from distill_pretrain.data import BadImageError
    rng = np.random.default_rng(0)
    for k in range(7):
        folder = tmp_path / "data" / ("ab"[k % 2])
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(folder / f"{k}.png")
    (tmp_path / "data" / "b" / "garbage.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    over = {"mode": "scratch", "store.path": None, "num_classes": 2, "epochs": 1, "optim.accum_steps": 1,
            "ema.decay": None, "data.train": dict(type="ImageFolder", root=str(tmp_path / "data")),
            "data.pipeline": "tensor", "data.aug": dict(img_size=32, mixup_alpha=0.0, cutmix_alpha=0.0)}
    with pytest.raises(BadImageError, match=r"garbage\.png: unreadable image"):
        Trainer(slim_cfg(None, **over), tmp_path / "stop").train()
    trainer = Trainer(slim_cfg(None, **over, **{"data.on_error": "skip"}), tmp_path / "skip")
    logs: list[str] = []
    trainer.log = logs.append
    hist = trainer.train()
    assert len(hist) == 2 and hist[-1]["skipped"] == 1 and all(math.isfinite(h["loss"]) for h in hist)
    bad = tmp_path / "data" / "b" / "garbage.png"
    assert f"skipped 1 samples with unreadable images: {bad}: unreadable image" in logs[-1]
    assert "1 unreadable images skipped" in logs[-2]


def test_save_train_round_trip_student_sees_the_teachers_pixels(slim_cfg, tensor_store: Path,
                                                                tmp_path: Path) -> None:
    """Tensor pipeline: the images the trainer prepares for (epoch, index) are bit for bit those save_logits fed
    the teacher (its own replay, batch and order), and the teacher re-run on them gives the stored top-K."""
    from distill_pretrain import LogitStore, build_dataset, build_teacher
    from distill_pretrain.replay import build_replay
    trainer = Trainer(slim_cfg(tensor_store, **{"optim.accum_steps": 1}), tmp_path)
    trainer.epoch = 1  # a data epoch other than 0
    raw = next(iter(trainer.loader()))
    batch = trainer.prepare(raw)
    assert batch["image"].shape == (4, 3, 32, 32) and batch["skipped"] == 0 and "raw" not in batch
    assert batch["epoch"].tolist() == [1] * 4 and batch["teacher_index"].shape == (4, 10)

    # save_logits' view: chunks of 16 in index order, each one batch through the store's pipeline
    store = LogitStore.open(tensor_store)
    replay = build_replay(store.manifest["pipeline"], build_dataset(store.manifest["extra"]["dataset_cfg"]),
                          store.manifest["transform"], store.manifest["base_seed"])
    saved = torch.cat([replay.finish(replay.collate([replay.dataset.get(i, 1) for i in range(c, c + 16)]), "cpu")
                       ["image"] for c in (0, 16)])
    assert torch.equal(batch["image"], saved[batch["index"]])

    teacher, identity = build_teacher(store.manifest["extra"]["teacher_cfg"])
    runner = save_logits.TeacherRunner(teacher, identity, trainer.aug_cfg, torch.device("cpu"), amp=False)
    idx, val = runner.topk(batch["image"], 10)
    assert torch.equal(torch.as_tensor(idx), batch["teacher_index"].cpu())
    torch.testing.assert_close(torch.as_tensor(val), batch["teacher_value"].cpu(), atol=1e-3, rtol=0)

    # the pil pipeline over the same store draws the same parameters but not the same pixels: refused, or accepted
    # as approximate replay with a warning
    with pytest.raises(StoreError, match="'tensor' replay pipeline.*replays with 'pil'"):
        Trainer(slim_cfg(tensor_store, **{"data.pipeline": "pil"}), tmp_path / "pil")
    with pytest.warns(UserWarning, match="approximate replay"):
        approx = Trainer(slim_cfg(tensor_store, **{"optim.accum_steps": 1, "data.pipeline": "pil",
                                               "store.approximate_replay": True}), tmp_path / "approx")
    approx.epoch = 1
    other = approx.prepare(next(iter(approx.loader())))
    assert torch.equal(other["index"], batch["index"]) and torch.equal(other["teacher_index"], batch["teacher_index"])
    assert not torch.equal(other["image"], batch["image"])


def test_pil_store_is_refused_to_a_tensor_trainer(slim_cfg, store: Path, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="'pil' replay pipeline.*replays with 'tensor'"):
        Trainer(slim_cfg(store, **{"data.pipeline": "tensor"}), tmp_path)
    with pytest.raises(ValueError, match="data.pipeline='dali'"):
        slim_cfg(store, **{"data.pipeline": "dali"})


def test_resume_refuses_other_world_size(slim_cfg, store: Path, tmp_path: Path) -> None:
    trainer = Trainer(slim_cfg(store, stop_after_steps=1), tmp_path)
    trainer.train()
    state = torch.load(tmp_path / "resume.pth", weights_only=True)
    state["run"]["identity"]["world_size"] = 2
    with pytest.raises(ResumeError, match="world_size: saved 2, requested 1; these cannot change within a run"):
        trainer.load_state_dict(state, accept=True)  # no override carries a data position to another world size


def test_soft_cross_entropy_against_recovered_target() -> None:
    idx = torch.tensor([[3, 1]])
    val = torch.tensor([[0.6, 0.3]])
    target = recover_dense(idx, val, 5)
    assert torch.allclose(target, torch.tensor([[0.1 / 3, 0.3, 0.1 / 3, 0.6, 0.1 / 3]]))
    logits = torch.randn(1, 5)
    expected = -(target * logits.log_softmax(-1)).sum()
    assert torch.allclose(soft_cross_entropy(logits, target), expected)
    # T ≠ 1: re-tempered target equals softmax(teacher_logits / T)
    t_logits = torch.randn(2, 5)
    p = t_logits.softmax(-1)
    ref = -(torch.softmax(t_logits / 2, -1) * torch.log_softmax(logits.expand(2, 5) / 2, -1)).sum(-1).mean() * 4
    assert torch.allclose(soft_cross_entropy(logits.expand(2, 5), p, 2.0), ref, atol=1e-6)


def test_mixup_label_targets() -> None:
    y = label_targets(torch.tensor([0, 2]), torch.tensor([1, 2]), torch.tensor([0.7, 1.0]), 3, 0.0)
    assert torch.allclose(y, torch.tensor([[0.7, 0.3, 0.0], [0.0, 0.0, 1.0]]))
    with pytest.raises(ValueError, match="unlabeled"):
        label_targets(torch.tensor([-1]), torch.tensor([-1]), torch.tensor([1.0]), 3, 0.1)


def test_schedule_and_lr_scaling() -> None:
    sched = schedule_from_cfg(dict(lr=2e-3, base_batch=4096, warmup_epochs=5, warmup_lr=2e-6, min_lr=2e-5),
                              steps_per_epoch=10, epochs=90, total_batch=1024)
    assert sched["base_lr"] == pytest.approx(5e-4) and sched["warmup_steps"] == 50
    lrs = [cosine_lr(s, **sched) for s in range(sched["total_steps"] + 1)]
    assert lrs[0] == pytest.approx(5e-7) and max(lrs) == pytest.approx(5e-4) and lrs[50] == pytest.approx(5e-4)
    assert lrs[-1] == pytest.approx(5e-6) and all(a <= b for a, b in zip(lrs[:50], lrs[1:51]))


def test_sampler_shards_are_disjoint_and_resumable() -> None:
    shards = [list(EpochBatchSampler(50, 4, r, 3, seed=1)) for r in range(3)]
    flat = [i for s in shards for b in s for e, i in b]
    assert len(flat) == len(set(flat)) == 48 and len(shards[0]) == 4
    assert {e for s in shards for b in s for e, _ in b} == {0}
    sampler = EpochBatchSampler(50, 4, 1, 3, seed=1)
    sampler.set_epoch(0, start_batch=2)
    assert list(sampler) == shards[1][2:] and len(sampler) == 2
    sampler.set_epoch(1)
    assert [i for b in sampler for _, i in b] != [i for b in shards[1] for _, i in b]
    # one iteration across epochs (the loader's iterator does not restart at an epoch boundary)
    sampler.set_epoch(0, start_batch=3, end_epoch=2)
    run = list(sampler)
    assert len(run) == len(sampler) == 5 and run[0] == shards[1][3]
    assert [b[0][0] for b in run] == [0, 1, 1, 1, 1]
    assert [i for b in run[1:] for _, i in b] == [i for b in sampler.epoch_batches(1) for i in b]
    # accumulation: an epoch holds whole steps
    assert EpochBatchSampler(50, 4, 0, 1, seed=1, multiple_of=5).num_batches == 10
    assert EpochBatchSampler(50, 4, 0, 1, seed=1, multiple_of=4).num_batches == 12


def test_bad_config_is_refused(slim_cfg, store: Path) -> None:
    with pytest.raises(KeyError, match="optim"):
        slim_cfg(store, **{"optim.learning_rate": 1.0})
    with pytest.raises(ValueError, match="'distill' is not registered"):
        slim_cfg(store, mode="distill")
    with pytest.raises(KeyError, match="objective"):
        slim_cfg(store, **{"loss.temperature": 2.0})


def _torchrun_train(store: Path, tmp_path: Path, extra: str = "", options: tuple[str, ...] = ()) -> tuple[Path, Path]:
    """Train the slim student on ``store`` for one epoch with 2-process DDP (torchrun, gloo, CPU), batch 4 per rank;
    returns (config file, work dir). ``extra``: config lines added at the end."""
    import os
    import subprocess
    import sys
    cfg_file = tmp_path / "ddp_cfg.py"
    cfg_file.write_text(
        f"_base_ = ['{REPO / 'configs/distill/tinyvit_5m_fmnist_tiny_cpu.py'}']\n"
        f"student = dict(_delete_=True, type='TinyViT', arch={SLIM!r}, img_size=32, drop_path_rate=0.1)\n"
        f"store = dict(path='{store}', cycle_epochs=False)\n"
        "data = dict(train=dict(limit=32), val=dict(limit=8), batch_size=4)\n"
        "epochs = 1\neval_teacher_agreement = False\nlog_interval = 1\nrecord = False\nlabels_index_classes = True\n"
        + extra)
    work = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                           str(29500 + os.getpid() % 1000), "-m", "distill_pretrain.train", str(cfg_file),
                           "--work-dir", str(work), "--cfg-options", "eval_interval=0", *options],
                          capture_output=True, text=True, timeout=600, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = (work / "train.log").read_text()
    assert "world=2" in log and "total_batch=8" in log and "step 4/4" in log
    return cfg_file, work


@pytest.mark.slow
def test_torchrun_gloo_two_processes_then_one_process_eval(store: Path, tmp_path: Path) -> None:
    """2-process DDP (gloo) trains a few steps; its checkpoint loads into the 1-process evaluator."""
    from distill_pretrain.train import main
    cfg_file, work = _torchrun_train(store, tmp_path)
    ckpt = torch.load(work / "checkpoint.pth", weights_only=True)
    assert ckpt["meta"]["epoch"] == 0 and ckpt["meta"]["step"] == 4

    evaluator = main([str(cfg_file), "--work-dir", str(tmp_path / "eval"), "--eval", str(work / "checkpoint.pth")])
    for key, value in ckpt["state_dict"].items():
        assert torch.equal(evaluator.model.state_dict()[key], value), key
    rec = (tmp_path / "eval" / "log.jsonl").read_text()
    assert '"val/top1"' in rec


@pytest.mark.slow
def test_torchrun_two_processes_on_a_tensor_store_equal_one_process(tensor_store: Path, tmp_path: Path) -> None:
    """2 ranks × batch 4 over a `tensor`-pipeline store = 1 process × batch 8: every rank replays the teacher's pixels
    (the store's seeds are checked per batch) and the averaged gradients match. Per-sample-only layers (BN on its
    running stats, no drop path), so the only difference is the order of float sums."""
    from distill_pretrain.train import main
    cfg_file, work = _torchrun_train(tensor_store, tmp_path, "freeze_bn_stats = True\n",
                                     ("student.drop_path_rate=0.0",))
    assert "pipeline=tensor" in (work / "train.log").read_text()
    single = main([str(cfg_file), "--work-dir", str(tmp_path / "one"), "--cfg-options", "eval_interval=0",
                   "student.drop_path_rate=0.0", "data.batch_size=8"])
    assert single.dist.world_size == 1 and single.step == 4 and single.replay.pipeline == "tensor"
    ddp = torch.load(work / "checkpoint.pth", weights_only=True)["state_dict"]
    init = Trainer(load_config(cfg_file, {"student.drop_path_rate": 0.0}), tmp_path / "init")
    for key, value in single.model.state_dict().items():
        torch.testing.assert_close(ddp[key], value, rtol=1e-5, atol=1e-6,
                                   msg=lambda m, k=key: f"{k}: {m}")  # measured: ≤ 1.5e-8 apart
    moved = [k for k, v in single.model.state_dict().items() if v.is_floating_point()
             and not torch.equal(v, init.model.state_dict()[k])]
    assert len(moved) > 10  # the 4 steps trained


def test_online_distillation_and_finetune_modes(slim_cfg, store: Path, tmp_path: Path) -> None:
    """online: the real teacher runs every step; finetune (init required) + layer decay + frozen BN."""
    online = Trainer(slim_cfg(store, mode="online", stop_after_steps=2, **{"optim.accum_steps": 1, "ema.decay": None},
                          teacher=dict(type="torchvision", name="mobilenet_v2", weights="asset:mobilenet_v2")),
                     tmp_path / "online")
    hist = online.train()
    assert len(hist) == 2 and all(math.isfinite(h["loss"]) and 0 <= h["agree"] <= 1 for h in hist)
    ckpt = tmp_path / "online" / "checkpoint.pth"
    assert torch.load(ckpt, weights_only=True)["meta"]["teacher"]["name"] == "mobilenet_v2"

    with pytest.raises(ValueError, match="'finetune' needs student.init"):
        slim_cfg(store, mode="finetune", num_classes=10)
    with pytest.raises(ValueError, match="use mode='finetune'"):
        slim_cfg(store, mode="scratch", num_classes=10, **{"student.init": str(ckpt)})
    ft_cfg = slim_cfg(store, mode="finetune", num_classes=10, stop_after_steps=2, freeze_bn_stats=True,
                  labels_index_classes=True, **{"optim.accum_steps": 1, "ema.decay": None, "optim.layer_decay": 0.8,
                                                "data.aug": dict(img_size=32, mixup_alpha=0.8, cutmix_alpha=0.0),
                                                "student.init": str(ckpt)})
    finetune = Trainer(ft_cfg, tmp_path / "ft")
    start = {k: v.clone() for k, v in finetune.model.state_dict().items()}
    assert torch.equal(start["stages.1.blocks.0.attn.qkv.weight"],
                       torch.load(ckpt, weights_only=True)["state_dict"]["stages.1.blocks.0.attn.qkv.weight"])
    scales = sorted({g["lr_scale"] for g in finetune.optimizer.param_groups})
    assert scales[0] == pytest.approx(0.8 ** 3) and scales[-1] == 1.0  # 4 blocks: 0.8^3 … 1
    hist = finetune.train()
    assert len(hist) == 2 and "acc" in hist[0]
    # init: a backbone-only export leaves the classifier fresh; any other missing key is refused with the file
    from backbones import load_checkpoint
    from contracts.checkpoint import save_checkpoint
    from distill_pretrain.student import build_student
    exported = export_backbone(ckpt, tmp_path / "backbone.pth")
    model = build_student({**ft_cfg.student, "init": str(exported)}, 10)
    key = "stages.1.blocks.0.attn.qkv.weight"
    assert torch.equal(model.state_dict()[key], start[key])
    partial = load_checkpoint(ckpt)
    del partial["state_dict"]["stages.3.blocks.0.mlp.fc1.weight"]
    save_checkpoint(tmp_path / "partial.pth", partial["state_dict"], partial["meta"])
    with pytest.raises(ValueError, match="partial.pth does not fit the student.*stages.3.blocks.0.mlp.fc1.weight"):
        build_student({**ft_cfg.student, "init": str(tmp_path / "partial.pth")}, 10)
    after = finetune.model.state_dict()
    assert torch.equal(after["patch_embed.conv1.bn.running_mean"], start["patch_embed.conv1.bn.running_mean"])
    assert not torch.equal(after["head.fc.weight"], start["head.fc.weight"])


def test_a_finished_run_leaves_nothing_logging_into_its_work_dir(slim_cfg, store: Path, tmp_path: Path) -> None:
    """A run inside a longer-lived process (a benchmark, the demo, a test) appends to its train.log while it runs and
    leaves no handler behind: MMEngine's later log lines do not reach a work dir that may be gone."""
    import logging

    from mmengine.logging import MMLogger
    work = tmp_path / "w"
    Trainer(slim_cfg(store), work).train()
    assert "steps" in (work / "train.log").read_text()
    current = MMLogger.get_current_instance()  # where MMEngine's print_log(logger='current') writes
    files = [Path(h.baseFilename) for h in current.handlers if isinstance(h, logging.FileHandler)]
    assert not any(work in f.parents for f in files), files


def test_workers_prefetch_across_epochs_and_ema_records(slim_cfg, store: Path, tmp_path: Path) -> None:
    """Persistent workers (one loader iterator over both epochs) replay exactly what the main process does (the
    store's seeds are checked per batch), and evaluating between epochs does not disturb training; the evaluation
    of the EMA is recorded under checkpoint_ema.pth."""
    from contracts.fileio import file_sha256
    from contracts.records import read_records
    base = Trainer(slim_cfg(store), tmp_path / "w0").train()
    over = {"data.num_workers": 2, "data.prefetch_factor": 2, "record": True, "labels_index_classes": True,
            "data.val": dict(type="FashionMNIST", split="test", limit=8)}
    trainer = Trainer(slim_cfg(store, **over), tmp_path / "w2")
    assert [h["loss"] for h in trainer.train()] == [h["loss"] for h in base]
    assert trainer._train_loader.persistent_workers and trainer._train_loader.prefetch_factor == 2
    records = read_records(tmp_path / "w2" / "records")
    assert len(records) == 2 and all(r["setting"]["ema"] and 0 <= r["metrics"]["top1"] <= 1 for r in records)
    last = next(r for r in records if r["setting"]["epoch"] == 1)["backbone"]
    ema_sha = file_sha256(tmp_path / "w2" / "checkpoint_ema.pth")
    assert last["checkpoint_sha256"] == ema_sha != file_sha256(tmp_path / "w2" / "checkpoint.pth")
    assert (last["source"], last["pretrain"], last["name"]) == ("distill", "fashionmnist-distill", "tinyvit-custom")
    # --eval CKPT: the loaded weights are evaluated (not the EMA) and recorded under that file
    ckpt = tmp_path / "w2" / "checkpoint.pth"
    trainer.load_weights(ckpt)
    trainer.evaluate(checkpoint=ckpt)
    evaluated = [r for r in read_records(tmp_path / "w2" / "records") if not r["setting"]["ema"]]
    assert [r["backbone"]["checkpoint_sha256"] for r in evaluated] == [file_sha256(ckpt)]


def test_missing_store_epoch_is_refused_at_start(slim_cfg, store: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no epoch 2 of the 3"):
        Trainer(slim_cfg(store, epochs=3), tmp_path)
    cycled = Trainer(slim_cfg(store, epochs=3, **{"store.cycle_epochs": True}), tmp_path)
    assert cycled.train_set.data_epochs == [0, 1, 0]


def test_checkpoint_teacher_keeps_its_window_sizes(tmp_path: Path) -> None:
    """A student trained at 64 px with global-attention windows comes back as that model when used as a teacher."""
    from contracts.checkpoint import save_checkpoint
    from distill_pretrain.student import student_meta
    from distill_pretrain.teachers import build_teacher
    student = TinyViT(arch=SLIM, img_size=64, window_sizes=(8, 8, 4, 2), num_classes=10).eval()
    path = save_checkpoint(tmp_path / "student.pth", student.state_dict(), {**student_meta(student, {}), "epoch": 0})
    teacher, identity = build_teacher(dict(type="checkpoint", path=str(path)))
    assert tuple(teacher.window_sizes) == (8, 8, 4, 2) and identity["num_classes"] == 10
    x = torch.randn(2, 3, 64, 64)
    assert torch.equal(teacher(x), student(x))
