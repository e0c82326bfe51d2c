import itertools

import pytest
import torch

from benchmarks.perf.memory import peak_cpu_bytes
from prime import SubTokenizer, smallest_base

BASES = [
    (50257, 1, 50257),
    (50257, 2, 225),
    (50257, 3, 37),
    (50257, 4, 15),
    (50257, 6, 7),
    (50257, 8, 4),
    (256, 1, 256),
    (256, 2, 16),
    (256, 3, 7),
    (256, 4, 4),
    (256, 8, 2),
    (512, 2, 23),
    (512, 3, 8),
]


@pytest.mark.parametrize(("num_classes", "ell", "base"), BASES)
def test_base_and_round_trip_of_every_token(num_classes, ell, base):
    codec = SubTokenizer(num_classes, ell)
    assert codec.base == base
    assert base**ell >= num_classes > (base - 1) ** ell
    x = torch.arange(num_classes)
    y = codec.encode(x)
    assert y.shape == (num_classes, ell)
    assert int(y.min()) >= 0 and int(y.max()) < base
    assert torch.equal(codec.decode(y), x)


def test_digits_are_most_significant_first():
    codec = SubTokenizer(512, 3)  # b = 8: octal digits
    assert codec.encode(torch.tensor(0o123)).tolist() == [1, 2, 3]
    assert codec.encode(torch.tensor([[511]])).tolist() == [[[7, 7, 7]]]
    assert codec.mask_id == 8


def test_smallest_base_is_exact_near_float_roots():
    # 3**ell exactly; float roots of perfect powers are where rounding bites.
    for ell in range(1, 12):
        assert smallest_base(3**ell, ell) == 3
        assert smallest_base(3**ell + 1, ell) == 4
    assert smallest_base(2, 20) == 2


def test_invalid_code_counts_match_the_spec():
    assert SubTokenizer(50257, 2).num_invalid_codes == 368
    assert SubTokenizer(50257, 6).num_invalid_codes == 67392
    assert SubTokenizer(512, 2).num_invalid_codes == 17
    codec = SubTokenizer(512, 2)
    codes = codec.decode(torch.tensor([[22, 5], [22, 6]]))
    assert codec.is_valid(codes).tolist() == [True, False]


def test_bad_inputs_name_the_problem():
    codec = SubTokenizer(10, 2)
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 10\)"):
        codec.encode(torch.tensor([10]))
    with pytest.raises(TypeError, match="integer"):
        codec.encode(torch.tensor([1.0]))
    with pytest.raises(ValueError, match="ell=2"):
        codec.decode(torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="unmasked"):
        codec.decode(torch.tensor([4, 0]))  # b = 4 is the mask id
    with pytest.raises(ValueError, match="num_classes"):
        SubTokenizer(1, 2)
    with pytest.raises(ValueError, match="ell"):
        SubTokenizer(10, 0)


def _brute_force_consistent(codec: SubTokenizer, y_t: torch.Tensor) -> torch.Tensor:
    out = torch.zeros(*y_t.shape[:-1], codec.num_classes, dtype=torch.bool)
    for idx in itertools.product(*(range(s) for s in y_t.shape[:-1])):
        revealed = [(j, int(v)) for j, v in enumerate(y_t[idx]) if v != codec.mask_id]
        for x in range(codec.num_classes):
            digits, rest = [], x
            for _ in range(codec.ell):
                digits.append(rest % codec.base)
                rest //= codec.base
            digits.reverse()
            out[idx + (x,)] = all(digits[j] == v for j, v in revealed)
    return out


@pytest.mark.parametrize(("num_classes", "ell"), [(50, 2), (27, 3), (100, 3), (16, 4), (7, 1)])
def test_consistent_mask_matches_brute_force(num_classes, ell):
    g = torch.Generator().manual_seed(num_classes * 10 + ell)
    codec = SubTokenizer(num_classes, ell)
    x0 = torch.randint(0, num_classes, (3, 7), generator=g)
    keep = torch.rand(3, 7, ell, generator=g) < 0.5
    y_t = torch.where(keep, codec.encode(x0), codec.mask_id)
    # Also some arbitrary digit combinations, including ones that match no valid token.
    y_t[0, 0] = torch.randint(0, codec.base + 1, (ell,), generator=g)
    y_t[0, 1] = codec.base - 1
    expected = _brute_force_consistent(codec, y_t)
    for chunk in (None, 1, 5):
        assert torch.equal(codec.consistent_mask(y_t, chunk_size=chunk), expected)
    # The true token is always allowed.
    assert expected[1:].gather(-1, x0[1:, :, None]).all()


def test_restrict_logits_sets_exactly_the_inconsistent_entries_to_minus_inf():
    g = torch.Generator().manual_seed(0)
    codec = SubTokenizer(300, 3)
    y_t = torch.randint(0, codec.base + 1, (2, 11, 3), generator=g)
    logits = torch.randn(2, 11, 300, generator=g)
    restricted = codec.restrict_logits_(logits.clone(), y_t, chunk_size=4)
    keep = codec.consistent_mask(y_t)
    assert torch.equal(restricted[keep], logits[keep])
    assert torch.isneginf(restricted[~keep]).all()


def test_consistency_check_allocates_at_most_one_boolean_of_the_full_size():
    # GPT-2 vocabulary: the official accumulator is a float (B, L, C) (4 bytes per entry)
    # per digit. Here the whole call may hold one bool (B, L, C) plus ~4 MiB of chunk.
    codec = SubTokenizer(50257, 4)
    g = torch.Generator().manual_seed(0)
    y_t = torch.randint(0, codec.base + 1, (2, 1024, 4), generator=g)
    full_bool = 2 * 1024 * 50257
    _ = codec.tables  # built once, cached, not part of the per-call cost
    peak = peak_cpu_bytes(lambda: codec.consistent_mask(y_t), method="profiler")
    assert full_bool <= peak <= full_bool + 5 * 2**20
    logits = torch.randn(2, 1024, 50257, generator=g)
    peak_restrict = peak_cpu_bytes(lambda: codec.restrict_logits_(logits, y_t), method="profiler")
    assert peak_restrict <= 16 * 2**20  # a few ~4 MiB chunk temporaries, nothing full-size
