"""distill_pretrain.dist.slurm_environment: torch.distributed's variables from a SLURM step's (the 2-task job run
end to end is in tests/benchmarks/test_suite_slurm.py)."""
from __future__ import annotations

import shutil

import pytest

from distill_pretrain.dist import slurm_environment

STEP = {"SLURM_PROCID": "3", "SLURM_LOCALID": "1", "SLURM_STEP_NUM_TASKS": "4", "SLURM_STEP_NODELIST": "gpu7",
        "SLURM_JOB_NODELIST": "gpu7", "SLURM_JOB_ID": "123456"}


def test_a_task_of_a_multi_task_step_gets_torchruns_variables():
    assert slurm_environment(STEP) == {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "MASTER_ADDR": "gpu7",
                                       "MASTER_PORT": str(20000 + 123456 % 20000)}
    assert slurm_environment({**STEP, "MASTER_PORT": "29400", "MASTER_ADDR": "10.0.0.1"})["MASTER_PORT"] == "29400"


def test_torchrun_single_tasks_and_batch_steps_are_left_alone():
    assert slurm_environment({**STEP, "WORLD_SIZE": "8"}) == {}  # torchrun inside the allocation decides
    assert slurm_environment({**STEP, "SLURM_STEP_NUM_TASKS": "1"}) == {}
    assert slurm_environment({k: v for k, v in STEP.items() if k != "SLURM_STEP_NUM_TASKS"}) == {}  # sbatch's shell
    assert slurm_environment({}) == {}


@pytest.mark.skipif(shutil.which("scontrol") is None, reason="scontrol expands compressed node lists")
def test_the_master_is_the_first_node_of_a_compressed_list(tmp_path, monkeypatch):
    (tmp_path / "slurm.conf").write_text("ClusterName=test\nSlurmctldHost=localhost\n")  # as on a SLURM node
    monkeypatch.setenv("SLURM_CONF", str(tmp_path / "slurm.conf"))
    assert slurm_environment({**STEP, "SLURM_STEP_NODELIST": "node[07-09],gpu1"})["MASTER_ADDR"] == "node07"
