"""Helper run by test_resume in a subprocess: `python kill_train.py WHEN [train args ...]` runs
`distill_pretrain.train.main(train args)` and SIGKILLs its own process at a chosen moment, with the real writers:

- `step=N`: inside the N-th optimizer step of this attempt (weights updated, step not counted yet);
- `save=N`: during the N-th write of `resume.pth` (half of the state written to its temp file);
- `rename=N`: right after the N-th `resume.pth` rename.
Not a test module itself."""
import io
import os
import signal
import sys

import torch


def _kill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def arm(when: str) -> None:
    kind, n = when.split("=")
    count = {"n": 0}

    def due() -> bool:
        count["n"] += 1
        return count["n"] == int(n)

    if kind == "step":
        from distill_pretrain.trainer import Trainer
        step = Trainer._optimizer_step

        def optimizer_step(self):
            out = step(self)
            if due():
                _kill()
            return out
        Trainer._optimizer_step = optimizer_step
    elif kind == "save":
        from distill_pretrain.resume import RESUME_FORMAT
        save = torch.save

        def torch_save(obj, f, *args, **kwargs):
            if isinstance(obj, dict) and obj.get("format") == RESUME_FORMAT and due():
                buffer = io.BytesIO()
                save(obj, buffer, *args, **kwargs)
                f.write(buffer.getvalue()[:len(buffer.getvalue()) // 2])
                f.flush()
                _kill()
            return save(obj, f, *args, **kwargs)
        torch.save = torch_save
    elif kind == "rename":
        replace = os.replace

        def os_replace(src, dst, *args, **kwargs):
            replace(src, dst, *args, **kwargs)
            if os.path.basename(str(dst)) == "resume.pth" and due():
                _kill()
        os.replace = os_replace
    else:
        raise SystemExit(f"unknown kill point {when!r}")


if __name__ == "__main__":
    arm(sys.argv[1])
    from distill_pretrain import train
    train.main(sys.argv[2:])
