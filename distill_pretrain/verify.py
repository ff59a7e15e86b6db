"""Verify a logit store: the manifest against itself (each field against its digest, record size and dtypes from
C/K/format, classes vs the teacher, the epoch table), every epoch file's size and sha256 (naming the corrupt chunk),
completeness per epoch, and (given the teacher) a re-run of the teacher on N random replayed samples, reporting
top-K index agreement and value error (the official --check-saved-logits).

    python -m distill_pretrain.verify STORE [--teacher-config CONFIG] [--num-samples 64] [--out report.json]

Without ``--teacher-config`` the teacher, dataset and augmentation are rebuilt from the store's manifest. Exit
status 1 when the manifest is inconsistent, an epoch file is missing, truncated, extended or fails its checksum, an
epoch is incomplete, a replayed seed differs, or the top-K agreement is below ``--min-agreement``.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Sequence

import numpy as np
import torch

from .data import build_dataset
from .replay import replay_for_store, teacher_view
from .store import LogitStore, StoreError
from .teachers import build_teacher


def completeness(store: LogitStore, planned: int | None) -> dict[str, Any]:
    """Finalized epochs, missing epochs of the planned range, and chunks already written of unfinished ones."""
    planned = planned if planned is not None else store.manifest["extra"].get("epochs")
    finalized = store.epochs
    missing = [e for e in range(planned)] if planned else []
    missing = [e for e in missing if e not in finalized]
    partial = {e: f"{len(store.finalized_chunks(e))}/{store.num_chunks} chunks" for e in missing
               if store.finalized_chunks(e)}
    return {"planned": planned, "finalized": finalized, "missing": missing, "partial": partial}


def rerun_teacher(store: LogitStore, num_samples: int, seed: int, teacher_cfg: dict, dataset_cfg: dict,
                  batch_size: int = 16) -> dict[str, Any]:
    """Re-run the teacher on random (epoch, index) replays (through the store's replay pipeline) and compare with
    the stored top-K."""
    from .save_logits import TeacherRunner
    teacher, identity = build_teacher(teacher_cfg)
    store.check(teacher=identity)
    replay = replay_for_store(store, build_dataset(dataset_cfg))  # the store's pipeline: pil or tensor
    runner = TeacherRunner(teacher, identity, replay.dataset.cfg, torch.device("cpu"), amp=False)
    rng = np.random.default_rng(seed)
    epochs = np.array(store.epochs)
    picks = [(int(rng.choice(epochs)), int(rng.integers(store.length))) for _ in range(num_samples)]
    exact, overlap, value_err, seed_bad = 0, [], [], 0
    for s in range(0, len(picks), batch_size):
        part = picks[s:s + batch_size]
        batch = replay.finish(replay.collate([replay.dataset.get(i, e) for e, i in part]), runner.device)
        idx, val = (t.cpu().numpy() for t in runner.topk(teacher_view(batch), store.topk))
        for j, (e, i) in enumerate(part):
            rec = store.read(e, [i])
            seed_bad += int(rec.seeds[0] != batch["seed"][j])
            exact += int(np.array_equal(rec.indices[0], idx[j]))
            overlap.append(len(set(rec.indices[0].tolist()) & set(idx[j].tolist())) / store.topk)
            fresh = dict(zip(idx[j].tolist(), val[j].tolist()))
            value_err.extend(abs(v - fresh[c]) for c, v in zip(rec.indices[0].tolist(), rec.values[0].tolist())
                             if c in fresh)
    return {"num_samples": len(picks), "seed_mismatches": seed_bad, "topk_exact": exact / len(picks),
            "topk_overlap": float(np.mean(overlap)), "value_abs_err_max": float(np.max(value_err)),
            "value_abs_err_mean": float(np.mean(value_err))}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m distill_pretrain.verify", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("store", help="store directory")
    parser.add_argument("--teacher-config", help="save_logits config whose teacher/dataset to use "
                                                 "(default: those recorded in the manifest)")
    parser.add_argument("--num-samples", type=int, default=0, help="re-run the teacher on N random samples")
    parser.add_argument("--epochs-planned", type=int, default=None, help="expected epoch count (default: manifest)")
    parser.add_argument("--min-agreement", type=float, default=0.9, help="minimum mean top-K overlap")
    parser.add_argument("--seed", type=int, default=0, help="seed for choosing the samples")
    parser.add_argument("--out", help="write the report as JSON here")
    args = parser.parse_args(argv)
    try:
        store = LogitStore.open(args.store, check_files=False)  # the manifest is checked first; files below
    except StoreError as err:
        print(f"FAIL: {err}", file=sys.stderr)
        return 1
    report: dict[str, Any] = {"store": str(store.path), "manifest": {k: v for k, v in store.manifest.items()
                                                                     if k != "epochs"}}
    checks = store.verify_checksums()
    report["checksums"] = {str(e): errs or "ok" for e, errs in checks.items()}
    report["completeness"] = completeness(store, args.epochs_planned)
    report["unlisted_files"] = store.unlisted_files()
    ok = not any(checks.values()) and not report["completeness"]["missing"]
    print(f"{store}")
    print("  manifest: consistent")
    for e, errs in checks.items():
        print(f"  epoch {e}: " + ("checksum ok" if not errs else "FAIL " + "; ".join(errs)))
    if report["unlisted_files"]:
        print(f"  note: {report['unlisted_files']} not in the manifest (a finalisation was killed; rerunning "
              f"save_logits rewrites them)")
    c = report["completeness"]
    print(f"  completeness: {len(c['finalized'])}/{c['planned'] or '?'} epochs finalized"
          + (f", missing {c['missing']}" if c["missing"] else "")
          + (f", partial {c['partial']}" if c["partial"] else ""))
    if args.num_samples > 0 and not any(checks.values()):
        if args.teacher_config:
            from .save_logits import load_config
            cfg = load_config(args.teacher_config)
            teacher_cfg, dataset_cfg = cfg.teacher.to_dict(), cfg.dataset.to_dict()
        else:
            teacher_cfg = store.manifest["extra"].get("teacher_cfg")
            dataset_cfg = store.manifest["extra"].get("dataset_cfg")
            if not teacher_cfg or not dataset_cfg:
                print("FAIL: the manifest records no teacher/dataset config; pass --teacher-config", file=sys.stderr)
                return 1
        try:
            rerun = rerun_teacher(store, args.num_samples, args.seed, teacher_cfg, dataset_cfg)
        except StoreError as err:
            print(f"FAIL: {err}", file=sys.stderr)
            return 1
        report["rerun"] = rerun
        print(f"  teacher re-run on {rerun['num_samples']} replayed samples: top-K exact {rerun['topk_exact']:.3f}, "
              f"overlap {rerun['topk_overlap']:.3f}, |value err| max {rerun['value_abs_err_max']:.2e} "
              f"mean {rerun['value_abs_err_mean']:.2e}, seed mismatches {rerun['seed_mismatches']}")
        ok = ok and rerun["seed_mismatches"] == 0 and rerun["topk_overlap"] >= args.min_agreement
    report["ok"] = ok
    if args.out:
        from contracts.fileio import atomic_write_text
        atomic_write_text(args.out, json.dumps(report, indent=2, default=str) + "\n")
    print("OK" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
