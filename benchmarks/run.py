"""The benchmark suite: every benchmark script's `main(argv)` in turn, then the comparison tables.

    python -m benchmarks.run [--quick] [--only NAME ...] [--records DIR] [--no-record] [--threads N] [--no-tables]

The flags every benchmark script shares (`benchmarks.common`: `--quick`, `--records DIR`, `--no-record`,
`--threads N`, `--allocator`) are handed on to each script as given. Modules are imported lazily by name, so a
missing or failing one is reported and the others still run; the exit code is non-zero when any failed. Each
script writes its own result records (default `results/records/`), which the tables then read.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from typing import Sequence

from benchmarks.common import add_common_flags, forwarded_flags

SCRIPTS = ("backbone_speed", "store_bench", "distill_speed", "detection_speed", "segmentation_speed",
           "probe_speed")


def run_one(name: str, argv: Sequence[str]) -> tuple[str, float, str]:
    """Import `benchmarks.<name>` and call its `main(argv)`; returns (status, seconds, detail)."""
    start = time.perf_counter()
    try:
        module = importlib.import_module(f"benchmarks.{name}")
    except ModuleNotFoundError as err:
        if err.name and err.name.startswith(f"benchmarks.{name}"):
            return "missing", time.perf_counter() - start, f"no module benchmarks.{name}"
        return "failed", time.perf_counter() - start, traceback.format_exc()
    except Exception:  # noqa: BLE001 - an import error in one script must not stop the suite
        return "failed", time.perf_counter() - start, traceback.format_exc()
    try:
        module.main(list(argv))
    except SystemExit as err:
        if err.code not in (0, None):
            return "failed", time.perf_counter() - start, f"exit code {err.code}"
    except Exception:  # noqa: BLE001
        return "failed", time.perf_counter() - start, traceback.format_exc()
    return "ok", time.perf_counter() - start, ""


def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m benchmarks.run`."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    add_common_flags(parser, quick="every script's smoke run")
    parser.add_argument("--only", nargs="+", default=None, metavar="NAME", help=f"subset of {', '.join(SCRIPTS)}")
    parser.add_argument("--no-tables", action="store_true", help="skip printing the comparison tables")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    names = args.only or list(SCRIPTS)
    unknown = [n for n in names if n not in SCRIPTS]
    if unknown:
        parser.error(f"--only: unknown {unknown}; known: {list(SCRIPTS)}")
    script_argv = forwarded_flags(args)
    results = []
    for i, name in enumerate(names, 1):
        print(f"[{i}/{len(names)}] benchmarks.{name} {' '.join(script_argv)}".rstrip(), flush=True)
        status, seconds, detail = run_one(name, script_argv)
        results.append((name, status, seconds))
        print(f"[{i}/{len(names)}] {name}: {status} in {seconds:.1f} s", flush=True)
        if detail:
            print(detail, file=sys.stderr, flush=True)
    print("\nsuite summary")
    for name, status, seconds in results:
        print(f"  {name:<20} {status:<8} {seconds:8.1f} s")
    if not args.no_tables:
        from . import table
        table_argv = ["--layout", "tab4", "fig5", "distill", "other"]
        if args.records:
            table_argv += ["--records", args.records]
        try:
            table.main(table_argv)
        except SystemExit as err:  # no records folder yet
            print(f"tables skipped: {err}", file=sys.stderr)
    return 0 if all(status == "ok" for _, status, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
