"""benchmarks/gpu_session.sh: the one prepared GPU run lists its steps in priority order and every command parses."""
from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

from benchmarks import backbone_speed, distill_speed, vit_objective_speed

REPO = Path(__file__).resolve().parents[2]


def test_dry_run_lists_steps_in_priority_order_with_valid_arguments(tmp_path: Path) -> None:
    """`DRY_RUN=1 bash benchmarks/gpu_session.sh`: every step printed, nothing run; the checks on the CUDA paths
    come first, then the measurements of this code's new GPU paths; every benchmark command line parses and the
    pytest line names existing test files."""
    out = subprocess.run(["bash", "benchmarks/gpu_session.sh", "480"], cwd=REPO, capture_output=True, text=True,
                         env={**os.environ, "DRY_RUN": "1", "OUT": str(tmp_path)}, check=True).stdout
    steps = [line.split()[1] for line in out.splitlines() if line.startswith("== ") and "(limit" in line]
    assert steps[:8] == ["machine", "cuda_tests", "backbone_21m_ablation", "distill_speed_eager",
                         "distill_speed_compile_default", "distill_data_photos", "profile_21m", "backbone_21m_compile"]
    commands = {line.split()[1]: shlex.split(line.split("): ", 1)[1]) for line in out.splitlines()
                if line.startswith("== ") and "): " in line}
    parsers = {"benchmarks.distill_speed": distill_speed.build_parser(),
               "benchmarks.backbone_speed": backbone_speed.build_parser(),
               "benchmarks.vit_objective_speed": vit_objective_speed.build_parser()}
    parsed = {name: parsers[argv[2]].parse_args(argv[3:]) for name, argv in commands.items()
              if argv[:2] == ["python3", "-m"] and argv[2] in parsers}
    assert parsed["backbone_21m_ablation"].ablation and parsed["backbone_21m_ablation"].batch == 1024
    assert [parsed[f"distill_speed_{m}"].compile for m in ("eager", "compile_default", "compile_reduce-overhead")] \
        == [None, "default", "reduce-overhead"]
    benchmarks = [name for name, argv in commands.items()
                  if argv[:2] == ["python3", "-m"] and argv[2].startswith("benchmarks.")]
    assert set(benchmarks) <= set(parsed)  # every benchmark step's command line was parsed
    assert all(parsed[name].records == str(tmp_path / "records") for name in benchmarks)  # one flag for all
    tests = [f for f in commands["cuda_tests"] if f.startswith("tests/")]
    assert len(tests) == 4 and all((REPO / f).is_file() for f in tests)
    assert not (tmp_path / "session.log").exists()  # nothing ran
