"""The 'tensor' replay pipeline (distill_pretrain.replay): its kernels against timm's PIL ops, the same random
parameters as the 'pil' pipeline, pixel-exact replay across batch sizes, workers and processes, the store's
pipeline field, and a save_logits → replay round trip."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.data import DataLoader

from distill_pretrain import LogitStore, StoreError, build_dataset, build_teacher, save_logits
from distill_pretrain.replay import build_replay, kernels, replay_for_store
from distill_pretrain.replay.tensor import TensorAugment, affine_matrix

sys.path.insert(0, str(Path(__file__).parent))
from replay_dump import FULL_AUG  # noqa: E402
from test_augment import AUGS, NO_MIX  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
FILL = (124, 116, 104)
# every op of the device stage: RandAugment, jitter, several erasing boxes per image, Mixup and CutMix, student jitter
EVERY_OP = dict(FULL_AUG, re_prob=0.9, re_count=3, student_color_jitter=0.4)


@pytest.fixture(scope="module")
def photos():
    return build_dataset(dict(type="SkimagePhotos"))


@pytest.fixture(scope="module")
def rgb_batch():
    imgs = [Image.fromarray(getattr(skimage.data, n)()).convert("RGB").resize((48, 40))
            for n in ("astronaut", "coffee", "chelsea", "camera")]
    return imgs, torch.stack([torch.from_numpy(np.array(i)).permute(2, 0, 1) for i in imgs])


EXACT = [("AutoContrast", kernels.AUTOCONTRAST, ()), ("Equalize", kernels.EQUALIZE, ()),
         ("Invert", kernels.INVERT, ()), ("Posterize", kernels.POSTERIZE, (3,)),
         ("Solarize", kernels.SOLARIZE, (100,)), ("SolarizeAdd", kernels.SOLARIZE_ADD, (77,)),
         ("Color", kernels.COLOR, (1.7,)), ("Color", kernels.COLOR, (0.3,)), ("Contrast", kernels.CONTRAST, (1.6,)),
         ("Contrast", kernels.CONTRAST, (0.2,)), ("Brightness", kernels.BRIGHTNESS, (1.8,)),
         ("Sharpness", kernels.SHARPNESS, (1.9,)), ("Sharpness", kernels.SHARPNESS, (0.1,)),
         ("TranslateYRel", kernels.AFFINE, (-0.4,))]  # a whole-pixel shift: interpolation does not matter
AFFINE = [("Rotate", (20.0,)), ("ShearX", (0.25,)), ("ShearY", (-0.2,)), ("TranslateXRel", (0.3,))]


def _pil_op(name, imgs, args):
    from timm.data.auto_augment import NAME_TO_OP
    out = [np.array(NAME_TO_OP[name](i, *args, fillcolor=FILL, resample=Image.BICUBIC)) for i in imgs]
    return torch.stack([torch.from_numpy(o).permute(2, 0, 1) for o in out]).int()


def _kernel(code, name, x, args):
    if code == kernels.AFFINE:
        a = torch.tensor([affine_matrix(name, args[0], x.shape[-1], x.shape[-2])] * len(x), dtype=torch.float64)
    else:
        a = torch.zeros(len(x), kernels.NUM_ARGS, dtype=torch.float64)
        a[:, 0] = args[0] if args else 0.0
    return kernels.apply(code, x.clone(), a, torch.tensor(FILL, dtype=torch.uint8)).int()


@pytest.mark.parametrize("name,code,args", EXACT, ids=[f"{n}{a}" for n, _, a in EXACT])
def test_kernels_give_timms_pil_pixels(rgb_batch, name, code, args):
    imgs, x = rgb_batch
    diff = (_kernel(code, name, x, args) - _pil_op(name, imgs, args)).abs()
    assert diff.max() <= (1 if name == "AutoContrast" else 0), f"{name}: max |diff| {diff.max()}"
    assert not torch.equal(_kernel(code, name, x, args), x.int())  # the op did something


@pytest.mark.parametrize("name,args", AFFINE)
def test_affine_kernel_is_pils_geometry(rgb_batch, name, args):
    imgs, x = rgb_batch
    diff = (_kernel(kernels.AFFINE, name, x, args) - _pil_op(name, imgs, args)).abs().float()
    assert diff.mean() < 5.0, f"{name}: bilinear vs PIL bicubic mean |diff| {diff.mean():.2f}"  # same geometry
    moved = (_kernel(kernels.AFFINE, name, x, args) - x.int()).abs().float().mean()
    assert moved > 3 * diff.mean()


def _pil_images(photos, aug, epoch=1):
    replay = build_replay("pil", photos, aug, base_seed=3)
    return torch.stack([replay.dataset.get(i, epoch)["image"] for i in range(len(photos))])


def _tensor_images(photos, aug, epoch=1):
    replay = build_replay("tensor", photos, aug, base_seed=3)
    return replay.finish(replay.collate([replay.dataset.get(i, epoch) for i in range(len(photos))]), "cpu")["image"]


@pytest.mark.parametrize("name", ["crop_flip", "color_jitter", "mixup", "cutmix", "erase_const", "eval"])
def test_same_pixels_as_pil_where_the_kernels_agree(photos, name):
    aug = {**AUGS, "erase_const": dict(AUGS["random_erasing"], re_mode="const"),
           "eval": dict(img_size=32, mode="eval")}[name]
    assert torch.equal(_tensor_images(photos, aug), _pil_images(photos, aug))


def test_same_parameters_as_pil_under_randaugment(photos):
    # the same ops and magnitudes per seed: only the affine interpolation differs, so images stay close
    diff = (_tensor_images(photos, AUGS["randaugment"]) - _pil_images(photos, AUGS["randaugment"])).abs()
    assert diff.mean((1, 2, 3)).max() < 0.1
    other_seed = build_replay("pil", photos, AUGS["randaugment"], base_seed=4)
    far = (torch.stack([other_seed.dataset.get(i, 1)["image"] for i in range(len(photos))])
           - _pil_images(photos, AUGS["randaugment"])).abs()
    assert far.mean() > 5 * diff.mean()


def test_replay_independent_of_batch_size_and_workers(photos):
    replay = build_replay("tensor", photos, FULL_AUG, base_seed=5)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    single = {i: replay.finish(replay.collate([replay.dataset.get(i, 2)]), "cpu")["image"][0]
              for i in range(len(photos))}
    torch.set_num_threads(2)  # the batches below: intra-op threads split the work differently
    replay.dataset.set_epoch(2)
    order = list(np.random.default_rng(0).permutation(len(photos)))
    mixed = 0
    for batch_size, workers in ((5, 2), (16, 0)):
        loader = DataLoader(replay.dataset, batch_size=batch_size, sampler=order, num_workers=workers,
                            collate_fn=replay.collate)
        seen = 0
        for batch in loader:
            batch = replay.finish(batch, "cpu")
            mixed += int((batch["mix_index"] >= 0).sum())
            for j, i in enumerate(batch["index"].tolist()):
                assert torch.equal(batch["image"][j], single[i]), f"index {i} differs (batch {batch_size})"
                seen += 1
        assert seen == len(photos)
    torch.set_num_threads(threads)
    assert mixed > 0
    assert not torch.equal(replay.finish(replay.collate([replay.dataset.get(0, 3)]), "cpu")["image"][0], single[0])
    batch = replay.collate([replay.dataset.get(i, 2) for i in range(4)])
    assert torch.equal(replay.finish(batch, "cpu")["image"], replay.finish(batch, "cpu")["image"])  # input untouched


@pytest.mark.slow
def test_replay_identical_under_torchrun_two_processes(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29519",
           str(Path(__file__).parent / "replay_dump.py"), str(tmp_path), "1", "tensor"]
    subprocess.run(cmd, check=True, env=env, timeout=300, capture_output=True)
    got = {**torch.load(tmp_path / "rank0.pt"), **torch.load(tmp_path / "rank1.pt")}
    ds = build_dataset(dict(type="FashionMNIST", split="train", limit=16))
    assert sorted(got) == list(range(len(ds)))
    replay = build_replay("tensor", ds, FULL_AUG, base_seed=7)
    batch = replay.finish(replay.collate([replay.dataset.get(i, 1) for i in range(len(ds))]), "cpu")
    for i, x in got.items():
        assert torch.equal(x, batch["image"][i]), f"index {i} differs between 2 processes and 1"


def _every_op_batch(re_mode, n=24, base_seed=11):
    ds = build_dataset(dict(type="FashionMNIST", split="train", limit=n))
    replay = build_replay("tensor", ds, dict(EVERY_OP, re_mode=re_mode), base_seed=base_seed)
    batch = replay.collate([replay.dataset.get(i, 1) for i in range(len(ds))])
    raw = batch["raw"]
    assert raw["flip"].any() and ((raw["erase"][..., 2] > 0).sum(1) > 1).any()
    mixed = raw["mix_row"] >= 0
    assert (mixed & (raw["mix_box"][:, 0] < 0)).any() and (mixed & (raw["mix_box"][:, 0] >= 0)).any()
    return replay, batch


@pytest.mark.parametrize("re_mode", ["pixel", "rand", "const"])
def test_row_loops_and_whole_batch_ops_give_the_same_pixels(re_mode):
    # the CPU's per-row loops and the accelerators' whole-batch ops (flip, erasing, Mixup/CutMix), both on the CPU
    replay, batch = _every_op_batch(re_mode)
    loops = TensorAugment(replay.dataset.cfg)(batch, "cpu")
    whole = TensorAugment(replay.dataset.cfg, row_loops=False)(batch, "cpu")
    for key in ("image", "teacher_image"):
        assert torch.equal(loops[key], whole[key]), key
    assert not torch.equal(loops["image"], loops["teacher_image"])


class _HostToDevice(TorchDispatchMode):
    """Records the host → device copies of the ops run under it."""

    def __init__(self):
        super().__init__()
        self.copies = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func in (torch.ops.aten._to_copy.default, torch.ops.aten.copy_.default):
            src, dst = (args[1], args[0]) if func is torch.ops.aten.copy_.default else (args[0], out)
            if src.device.type == "cpu" and dst.device.type != "cpu":
                self.copies.append(tuple(src.shape))
        return out


@pytest.mark.parametrize("re_mode", ["pixel", "rand", "const"])
def test_device_stage_reads_nothing_back_and_copies_to_the_device_twice(re_mode):
    # on the meta device (no data) any read of a device tensor by the host (.tolist(), .item(), nonzero) raises;
    # a copy of a list or of a slice of the parameters would show up as a third copy
    replay, batch = _every_op_batch(re_mode)
    replay.finish(batch, "meta")  # the noise table goes to a device once
    with _HostToDevice() as spy:
        out = replay.finish(batch, "meta")
    assert out["image"].device.type == "meta" and out["image"].shape == (24, 3, 32, 32)
    assert len(spy.copies) == 2 and tuple(batch["raw"]["image"].shape) in spy.copies, spy.copies


def _store(path, photos, pipeline):
    return LogitStore.create(path, teacher=dict(name="t", weights_sha256="0" * 64), num_classes=10, topk=2,
                             dataset=photos.identity, transform=dict(img_size=32, **NO_MIX), base_seed=1,
                             pipeline=pipeline)


def test_store_refuses_another_pipeline(photos, tmp_path):
    tensor_store = _store(tmp_path / "t", photos, "tensor")
    assert replay_for_store(tensor_store, photos).pipeline == "tensor"
    with pytest.raises(StoreError, match="'tensor' replay pipeline.*replays with 'pil'"):
        replay_for_store(tensor_store, photos, "pil")
    with pytest.warns(UserWarning, match="approximate replay"):
        assert replay_for_store(tensor_store, photos, "pil", approximate=True).pipeline == "pil"
    with pytest.raises(StoreError, match="'tensor' replay pipeline"):
        _store(tmp_path / "t", photos, "pil")  # reopening for more epochs with the other pipeline
    # the field is part of the sealed manifest: a PIL store is refused to a tensor reader, a manifest without it
    _store(tmp_path / "old", photos, "pil")
    assert replay_for_store(LogitStore.open(tmp_path / "old"), photos).pipeline == "pil"
    with pytest.raises(StoreError, match="'pil' replay pipeline.*replays with 'tensor'"):
        LogitStore.open(tmp_path / "old", expect=dict(pipeline="tensor"))
    manifest = json.loads((tmp_path / "old" / "manifest.json").read_text())
    del manifest["pipeline"]
    (tmp_path / "old" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(StoreError, match="field 'pipeline' is missing"):
        LogitStore.open(tmp_path / "old")


def test_unsupported_augmentation_is_refused(photos):
    with pytest.raises(ValueError, match="not implemented.*pipeline='pil'"):
        build_replay("tensor", photos, dict(img_size=32, auto_augment="augmix-m5-w4-d2"))
    with pytest.raises(ValueError, match="must be one of"):
        build_replay("dali", photos, dict(img_size=32))


def test_save_logits_tensor_store_round_trip(tmp_path):
    config = str(REPO / "configs" / "distill" / "save_logits_mobilenetv2_fmnist.py")
    opts = [f"store.path={tmp_path / 's'}", "dataset.limit=8", "augment.img_size=32", "store.chunk_size=4",
            "batch_size=4", "num_workers=0", "epochs=1", "pipeline=tensor"]
    save_logits.main([config, "--cfg-options", *opts])
    store = LogitStore.open(tmp_path / "s", expect=dict(pipeline="tensor"))
    ds = build_dataset(dict(type="FashionMNIST", split="train", limit=8))
    replay = replay_for_store(store, ds)
    batch = replay.finish(replay.collate([replay.dataset.get(i, 0) for i in (6, 1, 3)]), "cpu")
    teacher, _ = build_teacher(dict(type="torchvision", name="mobilenet_v2", weights="asset:mobilenet_v2"))
    with torch.no_grad():
        probs = teacher.eval()(batch["image"]).softmax(-1)
    rec = store.read(0, [6, 1, 3])
    np.testing.assert_array_equal(rec.seeds, batch["seed"].numpy())
    np.testing.assert_array_equal(rec.indices[:, :3], probs.topk(3).indices.numpy())
    np.testing.assert_allclose(rec.values, probs.topk(10).values.numpy(), atol=1e-3)
    with pytest.raises(StoreError, match="'tensor' replay pipeline.*'pil'"):
        save_logits.main([config, "--cfg-options", *opts[:-1], "pipeline=pil"])
    # the store verifier re-runs the teacher through the store's own (tensor) pipeline
    from distill_pretrain import verify
    report = tmp_path / "verify.json"
    assert verify.main([str(tmp_path / "s"), "--num-samples", "8", "--out", str(report)]) == 0
    rerun = json.loads(report.read_text())["rerun"]
    assert rerun["seed_mismatches"] == 0 and rerun["topk_overlap"] == 1.0 and rerun["value_abs_err_max"] < 1e-3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (runs on GPU machines)")
def test_cuda_replay_independent_of_batch_size_and_within_one_ulp_of_cpu(photos):
    """Measured on an H200 (2026-11-28): batch-independent bit for bit; CUDA vs CPU ≤ 9.5e-7 (one ulp of the
    normalised pixels: the two devices' float kernels round differently), so replay is exact per kind of device."""
    replay = build_replay("tensor", photos, FULL_AUG, base_seed=5)
    items = [replay.dataset.get(i, 2) for i in range(len(photos))]
    whole = replay.finish(replay.collate(items), "cuda")["image"]
    for i, item in enumerate(items):
        assert torch.equal(replay.finish(replay.collate([item]), "cuda")["image"][0], whole[i])
    for name in ("crop_flip", "color_jitter", "mixup", "cutmix"):
        aug = build_replay("tensor", photos, AUGS[name], base_seed=5)
        batch = aug.collate([aug.dataset.get(i, 2) for i in range(len(photos))])
        torch.testing.assert_close(aug.finish(batch, "cuda")["image"].cpu(), aug.finish(batch, "cpu")["image"],
                                   atol=2e-6, rtol=0, msg=name)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (runs on GPU machines)")
def test_cuda_device_stage_never_waits_for_the_device():
    from torch.utils.data._utils.pin_memory import pin_memory
    for re_mode in ("pixel", "rand", "const"):
        replay, batch = _every_op_batch(re_mode, n=64)
        batch = pin_memory(batch)  # as a DataLoader with pin_memory=True gives it
        replay.finish(batch, "cuda")  # first call: the noise table goes to the device
        torch.cuda.set_sync_debug_mode("error")
        try:
            outs = [replay.finish(b, "cuda") for b in (batch, pin_memory(replay.collate([replay.dataset.get(0, 2)])))]
        finally:
            torch.cuda.set_sync_debug_mode(0)
        assert outs[0]["image"].shape == (64, 3, 32, 32) and outs[1]["image"].shape == (1, 3, 32, 32)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (runs on GPU machines)")
def test_cuda_whole_batch_ops_equal_cpu_row_loops():
    """The uint8 ops bit for bit (mean 0, std 1: image·255 gives them back), but AFFINE rows (Rotate, Shear,
    Translate: CUDA's fused multiply-add) within 1; the whole stage with every op within one ulp of the
    normalised pixels on the samples (and partners) without an affine op."""
    ds = build_dataset(dict(type="FashionMNIST", split="train", limit=64))
    replay = build_replay("tensor", ds, dict(EVERY_OP, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), re_mode="const",
                                              mixup_alpha=0.0, cutmix_alpha=0.0), base_seed=11)
    batch = replay.collate([replay.dataset.get(i, 1) for i in range(len(ds))])
    affine = (batch["raw"]["ops"] == kernels.AFFINE).any(1)
    for key in ("image", "teacher_image"):
        gpu, cpu = ((replay.finish(batch, d)[key] * 255).round().to(torch.uint8).int().cpu() for d in ("cuda", "cpu"))
        assert torch.equal(gpu[~affine], cpu[~affine]), key
        assert (gpu[affine] - cpu[affine]).abs().max() <= 1, key
    replay, batch = _every_op_batch("pixel", n=64)
    raw = batch["raw"]
    affine = (raw["ops"] == kernels.AFFINE).any(1)
    partner = raw["mix_row"].clamp(min=0)
    plain = ~affine[:64] & ~(affine[partner] & (raw["mix_row"] >= 0))
    assert plain.sum() >= 4
    for key in ("image", "teacher_image"):
        gpu, cpu = (replay.finish(batch, d)[key].cpu() for d in ("cuda", "cpu"))
        torch.testing.assert_close(gpu[plain], cpu[plain], atol=2e-6, rtol=0, msg=key)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (runs on GPU machines)")
def test_cuda_save_logits_records_arrive_intact(tmp_path):
    # each chunk's top-K comes back pinned and non-blocking, written after the next chunk is queued: the records
    # must be the teacher's (re-run on the CPU by the verifier: same seeds, top-K within device rounding)
    config = str(REPO / "configs" / "distill" / "save_logits_mobilenetv2_fmnist.py")
    save_logits.main([config, "--cfg-options", f"store.path={tmp_path / 's'}", "dataset.limit=12",
                      "augment.img_size=32", "store.chunk_size=4", "batch_size=2", "num_workers=0", "epochs=1",
                      "pipeline=tensor", "amp=False"])
    from distill_pretrain import verify
    report = tmp_path / "verify.json"
    assert verify.main([str(tmp_path / "s"), "--num-samples", "12", "--out", str(report)]) == 0
    rerun = json.loads(report.read_text())["rerun"]
    assert rerun["seed_mismatches"] == 0 and rerun["topk_overlap"] >= 0.9 and rerun["value_abs_err_max"] < 1e-2
