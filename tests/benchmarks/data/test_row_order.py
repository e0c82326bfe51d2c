"""Training rows without replacement: per-epoch permutations cut into steps, the same on
any number of ranks and after a resume (benchmarks.data.row_order, StepSampler)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from benchmarks.data.loader import ArrayRows, StepSampler, training_loader
from benchmarks.data.row_order import EpochPermutations

SEED_OF_STEP = lambda step: 7000 + step  # noqa: E731
SEED_OF_EPOCH = lambda epoch: 9000 + epoch  # noqa: E731


def _sampler(num_rows, global_batch, rank=0, world=1, accumulation=1, seed_of_epoch=SEED_OF_EPOCH):
    micro = global_batch // (world * accumulation)
    return StepSampler(
        num_rows,
        global_batch,
        micro,
        accumulation,
        rank,
        world,
        SEED_OF_STEP,
        order="epoch_permutation",
        seed_of_epoch=seed_of_epoch,
    )


def _steps(sampler, start, count):
    """step -> (indices, salts) of this rank's rows, in row_start order."""
    sampler.start_step = start
    out: dict[int, list] = {}
    for key in itertools.islice(iter(sampler), count * sampler.accumulation):
        out.setdefault(key.step, []).append((key.row_start, key.indices, key.salts))
    return {
        step: (
            np.concatenate([i for _, i, _ in sorted(parts, key=lambda p: p[0])]),
            np.concatenate([s for _, _, s in sorted(parts, key=lambda p: p[0])]),
        )
        for step, parts in out.items()
    }


@pytest.mark.parametrize("num_rows, batch", [(50, 10), (23, 5), (7, 3)])
def test_every_row_is_used_exactly_once_per_epoch(num_rows, batch):
    steps = _steps(_sampler(num_rows, batch), 0, 3 * num_rows // batch + 1)
    order = np.concatenate([steps[s][0] for s in sorted(steps)])
    for epoch in range(3):
        seen = order[epoch * num_rows : (epoch + 1) * num_rows]
        assert sorted(seen.tolist()) == list(range(num_rows))
    assert not np.array_equal(order[:num_rows], order[num_rows : 2 * num_rows])
    # a step across the epoch boundary: the end of one permutation, the start of the next
    perms = EpochPermutations(num_rows, SEED_OF_EPOCH)
    step = num_rows // batch  # positions [step batch, (step + 1) batch) hold num_rows
    head = num_rows - step * batch
    want = np.concatenate([perms.permutation(0)[step * batch :], perms.permutation(1)])[:batch]
    assert head < batch and steps[step][0].tolist() == want.tolist()


def test_a_resumed_run_sees_the_rows_of_an_uninterrupted_run():
    fresh = _steps(_sampler(31, 8), 0, 12)
    for k in (1, 3, 4, 11):  # step 3 crosses the first epoch boundary (24 < 31 < 32)
        resumed = _steps(_sampler(31, 8), k, 12 - k)
        for step in range(k, 12):
            assert np.array_equal(resumed[step][0], fresh[step][0])
            assert np.array_equal(resumed[step][1], fresh[step][1])  # salts too
    # through the checkpointed sampler state
    sampler = _sampler(31, 8)
    sampler.start_step = 5
    restored = _sampler(31, 8)
    restored.load_state_dict(sampler.state_dict())
    assert np.array_equal(_steps(restored, restored.start_step, 1)[5][0], fresh[5][0])


@pytest.mark.parametrize("world, accumulation", [(2, 1), (2, 2), (4, 1)])
def test_the_shards_of_the_ranks_concatenate_to_the_single_process_step(world, accumulation):
    batch = 8
    single = _steps(_sampler(29, batch), 2, 4)
    for step in range(2, 6):
        rows, salts = {}, {}
        for rank in range(world):
            sampler = _sampler(29, batch, rank, world, accumulation)
            sampler.start_step = step
            for key in itertools.islice(iter(sampler), accumulation):
                for offset in range(len(key.indices)):
                    rows[key.row_start + offset] = int(key.indices[offset])
                    salts[key.row_start + offset] = int(key.salts[offset])
        assert sorted(rows) == list(range(batch))  # every row of the step once
        assert [rows[i] for i in range(batch)] == single[step][0].tolist()
        assert [salts[i] for i in range(batch)] == single[step][1].tolist()


def test_permutations_follow_the_run_seed_and_batches_read_their_rows():
    a = _steps(_sampler(40, 40), 0, 2)
    b = _steps(_sampler(40, 40, seed_of_epoch=lambda e: 1 + e), 0, 2)
    assert not np.array_equal(a[0][0], b[0][0])  # another seed, another order
    assert not np.array_equal(a[0][0], a[1][0])  # another epoch, another order
    data = np.arange(40 * 3, dtype=np.int32).reshape(40, 3)
    rows = ArrayRows(data, order="epoch_permutation")
    sampler = _sampler(40, 8)
    (batch,) = itertools.islice(iter(training_loader(rows, sampler, 0, 2, False)), 1)
    assert torch.equal(batch["x0"], torch.from_numpy(data[a[0][0][:8]]))


def test_bad_orders_are_refused():
    with pytest.raises(ValueError, match="row order must be one of replacement, epoch_perm"):
        ArrayRows(np.zeros((2, 2)), order="shuffled")
    with pytest.raises(ValueError, match="unweighted rows and seed_of_epoch"):
        StepSampler(4, 4, 4, 1, 0, 1, SEED_OF_STEP, torch.ones(4), order="epoch_permutation")
    with pytest.raises(ValueError, match="positions must be >= 0"):
        EpochPermutations(3, SEED_OF_EPOCH).rows(-1, 2)
