"""Every config under configs/{detection,segmentation,linear_probe,few_shot,finetune,demo} says how to run it and builds."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from mmengine.config import Config

import transfer.detection  # noqa: F401 - registers the harness (and mmdet's models on first use)
import transfer.segmentation  # noqa: F401
from transfer.openmmlab.config import check_model_keys

REPO = Path(__file__).resolve().parents[2]
FOLDERS = ("detection", "segmentation", "linear_probe", "few_shot", "finetune", "demo")
CONFIGS = sorted(p for folder in FOLDERS for p in (REPO / "configs" / folder).rglob("*.py"))
SCOPES = {"detection": "mmdet", "segmentation": "mmseg"}
RUN_COMMAND = re.compile(r"(python -m [\w.]+|torchrun .*-m [\w.]+|tools/[\w/]+\.py) ")


def test_the_folders_hold_configs() -> None:
    assert {p.parent.name for p in CONFIGS} >= {*FOLDERS, "_base_"} and len(CONFIGS) >= 25


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(REPO / "configs")))
def test_config_has_a_run_command_in_its_docstring_and_builds(path: Path) -> None:
    doc = ast.get_docstring(ast.parse(path.read_text()))
    assert doc, f"{path}: no module docstring"
    assert RUN_COMMAND.search(doc), f"{path}: the docstring has no run command (python -m ... / tools/...py)"
    cfg = Config.fromfile(str(path))
    assert "__doc__" not in cfg and len(cfg.keys()) > 0
    if path.parent.name in SCOPES:  # the harness's up-front key check accepts every shipped model
        check_model_keys(cfg, SCOPES[path.parent.name])
