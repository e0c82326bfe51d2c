"""The training loader's workers under the signals a job receives."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from benchmarks.data.loader import ArrayRows, StepSampler, training_loader
from benchmarks.runtime.preemption import WARNING_SIGNAL


def _exit_like_submitit(signum, frame):
    os._exit(255)  # submitit's handler requeues the job and leaves with sys.exit(-1)


@pytest.mark.parametrize("signum", [WARNING_SIGNAL, signal.SIGINT])
def test_loader_workers_leave_the_warning_and_ctrl_c_to_the_training_process(signum):
    """Slurm's warning reaches every process of a job step, Ctrl-C the whole process
    group. A worker that ran the handler it inherited (here one that exits, as submitit's
    does) would die, and the training process fail with "DataLoader worker exited
    unexpectedly"; the workers ignore both, and batches keep coming."""
    rows = ArrayRows(np.arange(64 * 4, dtype=np.int32).reshape(64, 4))
    sampler = StepSampler(len(rows), 8, 8, 1, 0, 1, lambda step: step)
    previous = signal.signal(signum, _exit_like_submitit)
    try:
        batches = iter(training_loader(rows, sampler, 1, 2, pin_memory=False))
        first = next(batches)
        (worker,) = batches._workers
        os.kill(worker.pid, signum)
        later = [next(batches) for _ in range(6)]
        assert worker.is_alive() and worker.exitcode is None
    finally:
        signal.signal(signum, previous)
        del batches
    assert [b["step"] for b in [first, *later]] == list(range(7))
