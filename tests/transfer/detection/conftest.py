"""Shared fixtures: the real mini COCO set, built once per session into a tmp dir (never committed)."""
from __future__ import annotations

import pytest
import torch

from transfer.detection import build_mini_coco


@pytest.fixture(scope="session")
def mini_coco(tmp_path_factory):
    """(annotation json, image folder, classes) of the real 4-image set."""
    # One thread: on a shared 2-core box two threads oversubscribe and run ~20× slower.
    torch.set_num_threads(1)
    return build_mini_coco(tmp_path_factory.mktemp("mini_coco"))
