import math

import pytest

import prime
from prime import (
    expected_batch_idle_steps,
    expected_idle_ratio,
    expected_idle_steps,
    expected_nfe_with_cache,
    idle_step_probabilities,
)

PAPER_ISR = {1: 36.77, 2: 13.52, 3: 4.97, 4: 1.83, 6: 0.25, 8: 0.03}  # Table 1, L = T = 1024


def test_exported_from_prime():
    assert prime.expected_idle_steps is expected_idle_steps


@pytest.mark.parametrize(("ell", "isr"), sorted(PAPER_ISR.items()))
def test_closed_form_gives_the_papers_isr_column(ell, isr):
    assert round(100 * expected_idle_ratio(1024, 1024, ell), 2) == isr
    assert math.isclose(
        expected_idle_steps(1024, 1024, ell), 1024 * (1 - 1 / 1024) ** (1024 * ell), rel_tol=1e-9
    )


def test_closed_form_gives_the_figure_one_curves():
    steps = [32, 64, 128, 256, 512, 768, 1024, 1536, 2048]
    figure_1 = {  # docs/method.md §6.4: expected idle steps at L = 1024
        1: [0, 0, 0, 4.7, 69.2, 202.3, 376.5, 788.4, 1242.0],
        2: [0, 0, 0, 0.1, 9.3, 53.3, 138.4, 404.7, 753.2],
        4: [0, 0, 0, 0, 0.2, 3.7, 18.7, 106.6, 277.0],
        8: [0, 0, 0, 0, 0, 0, 0.3, 7.4, 37.5],
    }
    for ell, expected in figure_1.items():
        got = [round(expected_idle_steps(t, 1024, ell), 1) for t in steps]
        assert got == pytest.approx(expected, abs=0.051), ell


def test_idle_probability_decreases_with_ell_and_with_batch_size():
    one = idle_step_probabilities(256, 64, 1, "cosine")
    two = idle_step_probabilities(256, 64, 2, "cosine")
    inner = (one > 0) & (one < 1)
    assert (two[inner] < one[inner]).all()
    batch = expected_batch_idle_steps(256, 64, 1, batch_size=4)
    assert math.isclose(batch, expected_idle_steps(256, 4 * 64, 1), rel_tol=1e-12)
    assert math.isclose(expected_nfe_with_cache(256, 64, 1, batch_size=4), 257 - batch)


def test_polynomial_schedule_idles_where_alpha_is_flat():
    # alpha = (1 - t)^3 barely moves near t = 1 (the first reverse steps) and moves
    # fastest near t = 0 (the last ones): idling becomes steadily less likely.
    probs = idle_step_probabilities(128, 32, 1, "polynomial")
    assert probs[0] > 0.99 and (probs[1:] < probs[:-1]).all()
    last_delta_alpha = 1 - (127 / 128) ** 3
    assert math.isclose(float(probs[-1]), (1 - last_delta_alpha) ** 32, rel_tol=1e-12)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="num_steps"):
        expected_idle_steps(0, 10, 1)
    with pytest.raises(ValueError, match="seq_len"):
        expected_idle_steps(10, 0, 1)
    with pytest.raises(ValueError, match="unknown schedule"):
        expected_idle_steps(10, 10, 1, schedule="nope")
