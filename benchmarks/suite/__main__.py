"""python -m benchmarks.suite SPEC [--out DIR] [--dry-run] [--launcher local|slurm] [--max-parallel N] [...]

Runs every cell of a suite spec (configs/suites/*.py) through the existing CLIs, skips the done ones, reruns the
failed and the interrupted ones, then prints the spec's tables and the cells that did not finish with their logs.
Exit status: 0 when every cell is done (a dry run: when the spec has no problem), 1 when some are not, 2 when
the spec, SLURM or OUT/slurm/jobs.json refused to start, 128 + N when signal N (SIGINT, SIGTERM) stopped it.
"""
from __future__ import annotations

import argparse
import signal
import sys

from contracts.resume import ANYWAY_HELP, accepted_by

from .runner import SuiteFailure, run_suite


def main(argv: list[str] | None = None) -> int:
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(prog="python -m benchmarks.suite", description=__doc__.splitlines()[0])
    parser.add_argument("spec", help="suite spec (configs/suites/*.py)")
    parser.add_argument("--out", help="output root: records/, cells/, work/, tables_<spec name>.md (default "
                                      "results/suite/<spec name>)")
    parser.add_argument("--dry-run", action="store_true", help="print every cell's state, records folder and exact "
                                                               "command; run nothing, download nothing")
    parser.add_argument("--launcher", choices=["local", "slurm"], default="local",
                        help="local: subprocesses here; slurm: job arrays through submitit (the spec's slurm)")
    parser.add_argument("--max-parallel", type=int, default=1, help="local launcher: cells at once (default 1)")
    parser.add_argument("--cells", nargs="+", metavar="PATTERN", help="only the cells whose id matches one of "
                                                                      "these fnmatch patterns")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, help="override spec keys, e.g. "
                                                                            "datasets.cifar100.root=/data/cifar")
    parser.add_argument("--resume-anyway", nargs="*", metavar="FIELD",
                        help="--launcher slurm, where OUT/slurm/jobs.json names another run (out, cluster): "
                             + ANYWAY_HELP)
    args = parser.parse_args(argv)
    try:
        result = run_suite(args.spec, args.out, launcher=args.launcher, max_parallel=args.max_parallel,
                           cfg_options=args.cfg_options, dry_run=args.dry_run, only=args.cells,
                           accept=accepted_by(args.resume_anyway))
    except SuiteFailure as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.dry_run:
        return 2 if result.suite.problems else 0
    if result.interrupted:
        return 128 + int(getattr(signal.Signals, result.interrupted))
    return 0 if result.complete else 1


if __name__ == "__main__":
    sys.exit(main())
