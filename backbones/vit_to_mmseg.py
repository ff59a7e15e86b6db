"""`python -m backbones.vit_to_mmseg IN OUT`: write a ViT checkpoint (ours / official MAE / timm) in the names of
mmseg's `MAE` backbone, for the UperNet ViT configs (`--pretrained OUT`)."""
from __future__ import annotations

import argparse
from typing import Sequence

import torch

from contracts.fileio import atomic_write

from .vit import to_mmseg_mae


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m backbones.vit_to_mmseg", description=__doc__)
    parser.add_argument("src", help="ViT checkpoint: ours (contract 2), official MAE or timm")
    parser.add_argument("dst", help="output .pth ({'state_dict': ...} in mmseg MAE names), written atomically")
    args = parser.parse_args(argv)
    sd = to_mmseg_mae(args.src)
    atomic_write(args.dst, lambda f: torch.save({"state_dict": sd}, f))
    print(f"{args.src} → {args.dst}: {len(sd)} tensors in mmseg MAE names", flush=True)


if __name__ == "__main__":
    main()
