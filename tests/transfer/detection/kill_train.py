"""Helper run by test_resume in a subprocess: `python kill_train.py WHEN [transfer.detection.train args ...]` trains
with the real harness and SIGKILLs its own process at WHEN:

- `iter=N`: when the training loop is about to run iteration N;
- `save=NAME`: while checkpoint NAME is written (its temp file complete, not yet renamed);
- `none`: no kill.
Not a test module itself."""
import os
import signal
import sys


def _kill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def arm(when: str) -> None:
    kind, _, value = when.partition("=")
    if kind == "iter":
        from mmengine.runner.loops import IterBasedTrainLoop
        run_iter = IterBasedTrainLoop.run_iter

        def killing_run_iter(self, data_batch):
            if self._iter == int(value):
                _kill()
            return run_iter(self, data_batch)
        IterBasedTrainLoop.run_iter = killing_run_iter
    elif kind == "save":
        replace = os.replace

        def killing_replace(src, dst, *args, **kwargs):
            if os.path.basename(str(dst)) == value:
                _kill()
            return replace(src, dst, *args, **kwargs)
        os.replace = killing_replace
    elif kind != "none":
        raise SystemExit(f"unknown kill point {when!r}")


if __name__ == "__main__":
    arm(sys.argv[1])
    from transfer.detection import train
    train.main(sys.argv[2:])
