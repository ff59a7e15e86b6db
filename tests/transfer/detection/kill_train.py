"""Helper run by test_resume in a subprocess: `python kill_train.py ITER [transfer.detection.train args ...]` trains
with the real harness and SIGKILLs its own process when the training loop is about to run iteration ITER (0: no
kill). Not a test module itself."""
import os
import signal
import sys

from mmengine.runner.loops import IterBasedTrainLoop


def arm(kill_at: int) -> None:
    run_iter = IterBasedTrainLoop.run_iter

    def killing_run_iter(self, data_batch):
        if self._iter == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return run_iter(self, data_batch)
    IterBasedTrainLoop.run_iter = killing_run_iter


if __name__ == "__main__":
    if int(sys.argv[1]):
        arm(int(sys.argv[1]))
    from transfer.detection import train
    train.main(sys.argv[2:])
