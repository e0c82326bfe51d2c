"""Time and peak memory of the carry-over softmax: the floor, the digit-grid op, the
released algorithm.

For B x L tokens over the GPT-2 vocabulary (C = 50257) with half of the digits revealed:

* floor: the token loss through one plain ``log_softmax`` over C (no restriction);
* grid: ``prime.grid_softmax`` -- the restricted token loss plus the marginals of the
  token's digits (the valid bound), the whole training-time need of MDLM-Prime; the same
  with every digit's full (ell, b) marginals; and ``prime.grid_sample``, the sampler's
  restricted draw (forward only);
* released: :func:`released_filter_reference`, the released text code's algorithm
  (a float (N, C) count of matching digits accumulated digit by digit from a lookup
  table, -inf where the count is below ell, then ``log_softmax``). The released text code
  computes no digit marginals; its image code's marginal broadcasts a (N, ell, C, b)
  product, 185 GB at this size, so the reference row covers the restricted loss only.

Rounds alternate between the ops; medians are printed, ratios to the floor first.

    python -m benchmarks.perf.carry_over --batch 2 --seq-len 1024 --ells 2 4 8 --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from prime import SubTokenizer, grid_sample, grid_softmax

from .memory import peak_cpu_bytes

GPT2_VOCAB = 50257


def released_filter_reference(
    logits: torch.Tensor, y_t: torch.Tensor, codec: SubTokenizer
) -> torch.Tensor:
    """(N, C) restricted log-probabilities the released way: count[x] = sum_j T_j[y_j, x]
    in a float accumulator, -inf where count < ell, then log_softmax."""
    tables = codec.tables.to(logits.dtype)  # (ell, b + 1, C): 1 where digit j matches
    count = torch.zeros_like(logits)
    for j in range(codec.ell):
        count += tables[j][y_t[:, j]]
    return torch.log_softmax(logits.masked_fill(count < codec.ell, float("-inf")), dim=-1)


def floor_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return -torch.log_softmax(logits, -1).gather(-1, targets[:, None]).sum()


def grid_loss(logits, y_t, targets, codec) -> torch.Tensor:
    """Published token loss plus the valid bound's masked-digit terms, from one op."""
    out = grid_softmax(logits, y_t, codec, targets=targets)
    digit = out.digit_log_probs.masked_fill(y_t != codec.mask_id, 0.0)
    return -(out.token_log_prob.sum() + digit.sum())


def grid_all_marginals(logits, y_t, targets, codec) -> torch.Tensor:
    """As :func:`grid_loss`, and every digit's full marginal (N, ell, b) as well (what a
    sub-token sampler reads), with a gradient through all of them."""
    out = grid_softmax(logits, y_t, codec, targets=targets, marginals=True)
    digit = out.digit_log_probs.masked_fill(y_t != codec.mask_id, 0.0)
    marginals = out.log_marginals.where(torch.isfinite(out.log_marginals), 0.0)
    return -(out.token_log_prob.sum() + digit.sum() + marginals.sum())


def released_loss(logits, y_t, targets, codec) -> torch.Tensor:
    return -released_filter_reference(logits, y_t, codec).gather(-1, targets[:, None]).sum()


def measure(ops: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Median seconds per op over ``rounds`` alternated rounds (after one warm-up)."""
    times: dict[str, list[float]] = {name: [] for name in ops}
    for r in range(rounds + 1):
        for name, op in ops.items():
            start = time.perf_counter()
            op()
            if r:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def cases(logits: torch.Tensor, targets: torch.Tensor, ell: int, generator: torch.Generator):
    """{name: (forward, forward + backward or None)} for one ell."""
    codec = SubTokenizer(GPT2_VOCAB, ell)
    y0 = codec.encode(targets)
    y_t = torch.where(torch.rand(y0.shape, generator=generator) < 0.5, y0, codec.mask_id)

    def with_grad(loss_fn):
        def run():
            leaf = logits.detach().requires_grad_()
            loss_fn(leaf).backward()

        return run

    floor = lambda x: floor_loss(x, targets)  # noqa: E731
    grid = lambda x: grid_loss(x, y_t, targets, codec)  # noqa: E731
    full = lambda x: grid_all_marginals(x, y_t, targets, codec)  # noqa: E731
    released = lambda x: released_loss(x, y_t, targets, codec)  # noqa: E731
    draw = lambda: grid_sample(logits, y_t, codec, generator=generator)  # noqa: E731
    ops = {
        "floor: log_softmax": (lambda: floor(logits), with_grad(floor)),
        "grid: token + digit losses": (lambda: grid(logits), with_grad(grid)),
        "grid: + all ell x b marginals": (lambda: full(logits), with_grad(full)),
        "grid: restricted draw": (draw, None),
    }
    if ell > 1:  # at ell = 1 the released code is MDLM's SUBS: the floor and a one-hot
        ops["released: filter + log_softmax"] = (lambda: released(logits), with_grad(released))
    return ops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--ells", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    args = parser.parse_args()

    g = torch.Generator().manual_seed(0)
    n = args.batch * args.seq_len
    dtype = getattr(torch, args.dtype)
    logits = torch.randn(n, GPT2_VOCAB, generator=g, dtype=dtype)
    targets = torch.randint(0, GPT2_VOCAB, (n,), generator=g)
    print(
        f"B={args.batch}, L={args.seq_len}, C={GPT2_VOCAB}, {args.dtype}, half the digits "
        f"revealed, {torch.get_num_threads()} threads, medians of {args.rounds} alternated rounds"
    )
    header = f"{'ell':>3}  {'op':<32} {'fwd/floor':>9} {'fwd s':>7} {'f+b/floor':>9} {'f+b s':>7}"
    print(header + f" {'peak/floor':>10} {'peak MiB':>9}")
    for ell in args.ells:
        ops = cases(logits, targets, ell, g)
        forward = measure({name: fb[0] for name, fb in ops.items()}, args.rounds)
        both = measure({name: fb[1] for name, fb in ops.items() if fb[1]}, args.rounds)
        peaks = {name: peak_cpu_bytes(fb[1] or fb[0]) for name, fb in ops.items()}
        base = "floor: log_softmax"
        for name in ops:
            f, fb = forward[name], both.get(name)
            row = f"{ell:>3}  {name:<32} {f / forward[base]:>9.2f} {f:>7.3f} "
            row += f"{fb / both[base]:>9.2f} {fb:>7.3f} " if fb else f"{'-':>9} {'-':>7} "
            row += f"{peaks[name] / peaks[base]:>10.2f} {peaks[name] / 2**20:>9.0f}"
            print(row)
    print(
        "peak: CPU bytes allocated during forward + backward (forward for the draw), "
        "the gradient of the logits included"
    )


if __name__ == "__main__":
    main()
