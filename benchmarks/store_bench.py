"""Logit-store benchmark (TinyViT §3.1 / Fig. 5): bytes per sample vs K, compact-format fidelity, read / write
throughput, and the cost of seeded replay.

    python -m benchmarks.store_bench [--quick] [--out-dir results/plots] [--records DIR] [--no-record] [--threads N]

- bytes/sample vs K for our fp16 and compact formats against the official 4 + 4K (goal: compact ≤ 0.75×);
- KL(fp16-recovered ‖ compact-recovered) on real teacher outputs (MobileNetV2 on replayed real photos; goal ≤ 1e-3);
- random-read throughput (random dataset indices read and decoded per second, one thread, best of rounds; goal for
  compact at K=100 ≥ 1M/s; reference: fp16 at the same C and K, same run), write throughput, and the time of an
  epoch's first read (size and per-chunk crc32 check);
- checksum speed on one core: sha256 vs zlib crc32 (why the reader checks chunks with crc32);
- replay cost: seeded augmentation vs the same timm pipeline on the same draws without the seeding (goal ≤ 1.05×);
- a storage-vs-K figure like Fig. 5 (right axes: IN-1k × 300 epochs and IN-21k × 90 epochs storage).
Records: task 'store' (per format and K; dataset imagenet-1k / imagenet-21k = C 1,000 / 21,841) and 'replay'.
"""
from __future__ import annotations

import argparse
import hashlib
import statistics
import tempfile
import zlib
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from benchmarks.common import add_common_flags, interleave, save_record, start_run, stopwatch, timed_rounds
from distill_pretrain import AugmentConfig, LogitStore, ReplayDataset, build_dataset, build_teacher, recover_dense
from distill_pretrain.augment import seeded_global_rngs
from distill_pretrain.store import VALUE_FORMATS, decode_records, encode_records, official_record_bytes, record_layout

KS = (1, 2, 5, 10, 20, 50, 100, 200)
SCALES = {"imagenet-1k": (1000, 1_281_167, 300), "imagenet-21k": (21841, 14_197_122, 90)}  # C, images, epochs
GOALS = {"compact_ratio": 0.75, "kl": 1e-3, "read_per_s": 1e6, "replay_ratio": 1.05}


def storage_rows() -> list[dict[str, Any]]:
    """Bytes per sample for every format, K and class count, with the official layout's size."""
    rows = []
    for dataset, (c, n, epochs) in SCALES.items():
        for k in KS:
            for fmt in VALUE_FORMATS:
                b = record_layout(c, k, fmt)["record_bytes"]
                rows.append({"dataset": dataset, "num_classes": c, "K": k, "format": fmt, "bytes_per_sample": b,
                             "official_bytes": official_record_bytes(k),
                             "ratio_vs_official": b / official_record_bytes(k),
                             "storage_GiB": b * n * epochs / 2**30})
    return rows


def teacher_probs(num: int, img_size: int) -> torch.Tensor:
    """Full softmax of MobileNetV2 (real ImageNet weights) on seeded augmentations of real photos."""
    teacher, ident = build_teacher(dict(type="torchvision", name="mobilenet_v2", weights="asset:mobilenet_v2"))
    photos = build_dataset(dict(type="SkimagePhotos"))
    replay = ReplayDataset(photos, dict(img_size=img_size, mean=ident["mean"], std=ident["std"]), base_seed=0)
    xs = [replay.get(i % len(photos), i // len(photos))["image"] for i in range(num)]
    with torch.no_grad():
        return torch.cat([teacher(torch.stack(xs[s:s + 16])).softmax(-1) for s in range(0, num, 16)])


def kl_rows(probs: torch.Tensor) -> list[dict[str, Any]]:
    """KL(fp16-recovered ‖ compact-recovered) and KL(dense ‖ fp16-recovered) per K (mean over samples)."""
    rows, c = [], probs.shape[1]
    for k in KS:
        values, indices = probs.topk(k, dim=-1)
        seeds = np.zeros(len(probs), np.uint32)
        dense = {}
        for fmt in VALUE_FORMATS:
            rec = decode_records(encode_records(seeds, indices.numpy(), values.numpy(), c, fmt), c, k, fmt)
            dense[fmt] = recover_dense(torch.from_numpy(rec.indices), torch.from_numpy(rec.values), c).double()
        kl = lambda p, q: float((p * (p.clamp_min(1e-30).log() - q.clamp_min(1e-30).log())).sum(-1).mean())  # noqa
        rows.append({"K": k, "kl_fp16_compact": kl(dense["fp16"], dense["compact"]),
                     "kl_dense_fp16": kl(probs.double(), dense["fp16"])})
    return rows


def _fill_store(path: Path, n: int, k: int, fmt: str, c: int = 1000) -> tuple[LogitStore, float]:
    rng = np.random.default_rng(0)
    store = LogitStore.create(path, teacher=dict(name="synthetic", weights_sha256="0" * 64), num_classes=c, topk=k,
                              dataset=dict(length=n, sha256="0" * 64), transform={}, base_seed=0, value_format=fmt,
                              chunk_size=65536)
    idx = np.argsort(rng.random((1024, c)), axis=1)[:, :k]
    val = np.sort(rng.dirichlet(np.ones(c) * 0.05, 1024)[:, :k], axis=1)[:, ::-1]

    def write_epoch() -> None:
        for chunk in store.pending_chunks(0):
            r = store.chunk_range(chunk)
            reps = np.arange(len(r)) % 1024
            store.write_chunk(0, chunk, np.arange(r.start, r.stop, dtype=np.uint32), idx[reps], val[reps])
        store.finalize_epoch(0)
    rate = n / stopwatch(write_epoch)
    return LogitStore.open(path), rate


THROUGHPUT_CASES = ((1000, 10), (1000, 100), (21841, 100))  # (C, K): IN-1k paper K, issue target, IN-21k paper K


def throughput_rows(n: int, batch: int, repeats: int, rounds: int = 5,
                    cases: Sequence[tuple[int, int]] = THROUGHPUT_CASES) -> list[dict[str, Any]]:
    """Write and random-read records/s (one thread), per format and (C, K); reads decode random dataset indices
    (best of `rounds` short rounds of `repeats` batches: on a shared machine the fastest round is the one least
    disturbed). Writes include encoding, sha256/crc32, fsync and the epoch's assembly. Also the time of the epoch's
    first read (size + chunk crc32 check)."""
    torch.set_num_threads(1)
    rows = []
    rng = np.random.default_rng(1)
    for c, k in cases:
        for fmt in VALUE_FORMATS:
            with tempfile.TemporaryDirectory() as tmp:
                store, write_rate = _fill_store(Path(tmp) / "s", n, k, fmt, c)
                batches = [rng.integers(0, n, batch) for _ in range(repeats)]
                first_read_s = stopwatch(lambda: store.read(0, batches[0]))  # maps the file, checks its chunks

                def read_all() -> None:
                    for b in batches:
                        store.read(0, b)
                read_rate = batch * repeats / timed_rounds({"read": read_all}, rounds, warmup=0).best()["read"]
            rows.append({"format": fmt, "num_classes": c, "K": k, "records": n, "batch": batch,
                         "read_per_s": read_rate, "write_per_s": write_rate, "first_read_check_s": first_read_s,
                         "write_MB_per_s": write_rate * record_layout(c, k, fmt)["record_bytes"] / 1e6})
    fp16 = {(r["num_classes"], r["K"]): r["read_per_s"] for r in rows if r["format"] == "fp16"}
    for r in rows:
        r["read_vs_fp16"] = r["read_per_s"] / fp16[(r["num_classes"], r["K"])]
    return rows


def checksum_rows(megabytes: int, rounds: int = 3) -> dict[str, Any]:
    """MB/s of the two checksums the store uses on one core: sha256 (identity: part names, verify, merge) and zlib
    crc32 (the reader's per-chunk check at an epoch's first read); chosen by this measurement."""
    data = np.random.default_rng(2).integers(0, 256, megabytes << 20, dtype=np.uint8).tobytes()
    best = timed_rounds({"sha256": lambda: hashlib.sha256(data).digest(), "crc32": lambda: zlib.crc32(data)}, rounds,
                        warmup=0).best()
    return {"MB": megabytes, "sha256_MB_s": len(data) / 1e6 / best["sha256"],
            "crc32_MB_s": len(data) / 1e6 / best["crc32"]}


def replay_cost(num: int, img_size: int, repeats: int) -> dict[str, Any]:
    """Seconds per image of the timm pipeline seeded (seed, transform, restore: what ReplayDataset does) vs the same
    transform alone on the same random draws (seeded outside the timer), interleaved, median over repeats."""
    photos = build_dataset(dict(type="SkimagePhotos"))
    cfg = AugmentConfig(img_size=img_size, mixup_alpha=0.0, cutmix_alpha=0.0)
    transform = ReplayDataset(photos, cfg, base_seed=0).transform
    images = [photos[i % len(photos)][0] for i in range(num)]

    def plain(rep: int) -> float:
        seconds = 0.0
        for i, img in enumerate(images):
            with seeded_global_rngs(rep * num + i):
                seconds += stopwatch(lambda: transform(img))
        return seconds

    def seeded_all(rep: int) -> None:
        for i, img in enumerate(images):
            with seeded_global_rngs(rep * num + i):
                transform(img)
    seconds = interleave({"plain": plain, "seeded": lambda rep: stopwatch(lambda: seeded_all(rep))}, repeats)
    plain, seeded = (statistics.median(seconds[k]) / num for k in ("plain", "seeded"))
    return {"plain_s_per_img": plain, "seeded_s_per_img": seeded, "ratio": seeded / plain, "img_size": img_size,
            "images": num, "repeats": repeats}


def plot_storage_vs_k(rows: Sequence[Mapping[str, Any]], out_dir: str | Path, name: str = "store_storage_vs_k"
                      ) -> list[Path]:
    """Fig. 5-style plot: bytes/sample vs K for official / fp16 / compact (C = 21,841), with right axes giving the
    storage of IN-21k × 90 epochs and IN-1k × 300 epochs (C = 1,000 shown dotted)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from .plots import save_figure
    fig, ax = plt.subplots(figsize=(6.2, 4.2))
    ks = sorted({r["K"] for r in rows})
    ax.plot(ks, [official_record_bytes(k) for k in ks], "k--", lw=2.5, alpha=0.4,
            label="official 4+4K (= ours fp16, C ≤ 65,536)")
    for i, fmt in enumerate(VALUE_FORMATS):
        for dataset, style in (("imagenet-21k", "-o"), ("imagenet-1k", ":s")):
            pts = sorted((r["K"], r["bytes_per_sample"]) for r in rows
                         if r["format"] == fmt and r["dataset"] == dataset)
            ax.plot(*zip(*pts), style, color=f"C{i}", ms=4, label=f"ours {fmt}, C={SCALES[dataset][0]:,}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("K (stored logits per sample)")
    ax.set_ylabel("bytes per sample")
    ax.grid(alpha=0.3, which="both")
    for offset, dataset in ((1.0, "imagenet-21k"), (1.2, "imagenet-1k")):
        _, n, epochs = SCALES[dataset]
        gib = n * epochs / 2**30
        sec = ax.secondary_yaxis(offset, functions=(lambda b, g=gib: b * g, lambda s, g=gib: s / g))
        sec.set_ylabel(f"GiB, {dataset} × {epochs} epochs")
    for k, dataset in ((10, "imagenet-1k"), (100, "imagenet-21k")):
        ax.axvline(k, color="grey", lw=0.6, alpha=0.6)
        ax.annotate(f"paper: {dataset} K={k}", (k, official_record_bytes(k)), fontsize=7, xytext=(3, 6),
                    textcoords="offset points")
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title("Sparse-logit storage vs K (cf. TinyViT Fig. 5)")
    return save_figure(fig, out_dir, name)


def store_records(storage: list[dict], kls: list[dict], throughput: list[dict], checksums: dict, replay: dict,
                  quick: bool) -> list[dict[str, Any]]:
    """The result records of one run (validated): task 'store' per format, K and C (sizes; KL and read / write
    rates where measured), one 'store' of the checksum speeds and one 'replay'."""
    from contracts.records import make_record
    kl_by_k = {r["K"]: r for r in kls}
    rate = {(r["format"], r["num_classes"], r["K"]): r for r in throughput}
    records = []
    for r in storage:
        metrics = {"bytes_per_sample": r["bytes_per_sample"], "official_bytes": r["official_bytes"],
                   "ratio_vs_official": r["ratio_vs_official"], "storage_GiB": r["storage_GiB"]}
        if r["dataset"] == "imagenet-1k" and r["K"] in kl_by_k:
            metrics["kl_fp16_vs_compact" if r["format"] == "compact" else "kl_dense_vs_fp16"] = (
                kl_by_k[r["K"]]["kl_fp16_compact" if r["format"] == "compact" else "kl_dense_fp16"])
        t = rate.get((r["format"], r["num_classes"], r["K"]))
        if t is not None:
            metrics.update(read_per_s=t["read_per_s"], write_per_s=t["write_per_s"], read_vs_fp16=t["read_vs_fp16"],
                           first_read_check_s=t["first_read_check_s"])
        setting = {"K": r["K"], "format": r["format"], "num_classes": r["num_classes"], "quick": quick,
                   "kl_teacher": "mobilenet_v2 on skimage photos"}
        if t is not None:
            setting.update(records=t["records"], batch=t["batch"], threads=1, timing="best of rounds")
        records.append(make_record("store", dataset=r["dataset"], split="train", metrics=metrics, backbone=None,
                                   setting=setting))
    records.append(make_record(
        "store", dataset="synthetic", split="train", backbone=None,
        metrics={"sha256_MB_s": checksums["sha256_MB_s"], "crc32_MB_s": checksums["crc32_MB_s"]},
        setting={"measure": "checksum", "MB": checksums["MB"], "threads": 1, "quick": quick}))
    records.append(make_record("replay", dataset="skimage-photos", split="train", metrics={
        "seeded_s_per_img": replay["seeded_s_per_img"], "plain_s_per_img": replay["plain_s_per_img"],
        "seeded_over_plain": replay["ratio"]}, backbone=None,
        setting={"img_size": replay["img_size"], "augment": "rand-m9-mstd0.5-inc1 + RE 0.25 + jitter", "quick": quick}))
    return records


def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m benchmarks.store_bench`."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.store_bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_flags(parser, quick="smaller sizes (CI)")
    parser.add_argument("--out-dir", default=None, help="figure folder (default results/plots)")
    return parser


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    start_run(args)
    q = args.quick
    storage = storage_rows()
    print("bytes per sample (ours vs official 4+4K):")
    for r in storage:
        if r["K"] in (10, 100):
            print(f"  {r['dataset']:13s} K={r['K']:3d} {r['format']:8s} {r['bytes_per_sample']:4d} B  "
                  f"official {r['official_bytes']:4d} B  ratio {r['ratio_vs_official']:.3f}  "
                  f"({r['storage_GiB']:.1f} GiB for {SCALES[r['dataset']][2]} epochs)")
    probs = teacher_probs(32 if q else 128, 96 if q else 160)
    kls = kl_rows(probs)
    print(f"KL on {len(probs)} MobileNetV2 softmaxes (goal compact ≤ {GOALS['kl']:g}):")
    for r in kls:
        print(f"  K={r['K']:3d}  KL(fp16‖compact) {r['kl_fp16_compact']:.2e}   "
              f"KL(dense‖fp16 top-K) {r['kl_dense_fp16']:.3f}")
    throughput = throughput_rows(200_000 if q else 1_281_167, 1024, 10, 10 if q else 40)
    print(f"throughput, one thread, best of rounds (goal compact read at K=100 ≥ {GOALS['read_per_s']:.0e}/s):")
    for r in throughput:
        print(f"  C={r['num_classes']:5d} K={r['K']:3d} {r['format']:8s} random read {r['read_per_s'] / 1e6:.2f} "
              f"M rec/s "
              f"({r['read_vs_fp16']:.2f}x fp16, batch {r['batch']})  write {r['write_per_s'] / 1e6:.2f} M rec/s "
              f"({r['write_MB_per_s']:.0f} MB/s)  first read of the epoch {r['first_read_check_s'] * 1e3:.0f} ms "
              f"({r['records']:,} records, crc32 check)")
    checksums = checksum_rows(64 if q else 512)
    print(f"checksums, one core: sha256 {checksums['sha256_MB_s']:.0f} MB/s, crc32 {checksums['crc32_MB_s']:.0f} MB/s "
          f"({checksums['crc32_MB_s'] / checksums['sha256_MB_s']:.1f}x)")
    replay = replay_cost(16 if q else 64, 224, 3 if q else 5)
    print(f"replay cost @224: seeded {replay['seeded_s_per_img'] * 1e3:.2f} ms/img, plain "
          f"{replay['plain_s_per_img'] * 1e3:.2f} ms/img, ratio {replay['ratio']:.3f} "
          f"(goal ≤ {GOALS['replay_ratio']})")
    from .plots import DEFAULT_PLOTS_DIR
    figs = plot_storage_vs_k(storage, args.out_dir or DEFAULT_PLOTS_DIR)
    print("figure:", ", ".join(map(str, figs)))
    result = {"storage": storage, "kl": kls, "throughput": throughput, "checksums": checksums, "replay": replay,
              "figures": figs}
    records = store_records(storage, kls, throughput, checksums, replay, q)
    paths = [save_record(record, args, show=False) for record in records]
    print(f"{len(records)} records " + ("not written (--no-record)" if args.no_record else
                                        f"written to {Path(paths[0]).parent}"))
    return result | {"records": records}


if __name__ == "__main__":
    main()
