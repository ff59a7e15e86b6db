"""Export the backbone-only weights of a student checkpoint (classifier head dropped).

    python -m distill_pretrain.export work_dirs/run/checkpoint.pth tinyvit_5m_backbone.pth [--keep-head-norm]

The output is again a contract-2 checkpoint (plain types, `weights_only=True`), `meta.num_classes = 0` and
`meta.exported_from` = the source file's sha256, so `backbones.load_pretrained` and mmdet/mmseg
`init_cfg=dict(type='Pretrained', checkpoint=...)` read it as they read the full one.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from contracts.fileio import file_sha256

from backbones import load_checkpoint
from contracts.checkpoint import save_checkpoint


def export_backbone(src: str | Path, dst: str | Path, keep_head_norm: bool = False) -> Path:
    """Write `dst` with `src`'s weights minus the classifier (`head.fc.*`, and `head.norm.*` unless kept)."""
    ckpt = load_checkpoint(src)
    drop = ("head.fc.",) if keep_head_norm else ("head.",)
    state = {k: v for k, v in ckpt["state_dict"].items() if not k.startswith(drop)}
    meta = {**ckpt["meta"], "num_classes": 0, "exported_from": file_sha256(src), "backbone_only": True}
    return save_checkpoint(dst, state, meta)


def main(argv: Sequence[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(prog="python -m distill_pretrain.export", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a checkpoint written by distill_pretrain.train")
    parser.add_argument("out", help="output file")
    parser.add_argument("--keep-head-norm", action="store_true", help="keep the head's LayerNorm (head.norm.*)")
    args = parser.parse_args(argv)
    out = export_backbone(args.checkpoint, args.out, args.keep_head_norm)
    print(f"wrote {out} ({file_sha256(out)[:12]})")
    return out


if __name__ == "__main__":
    main()
