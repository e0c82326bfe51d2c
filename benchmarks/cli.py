"""The ``primebench`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _demo(args: argparse.Namespace) -> int:
    from benchmarks.idle_demo import run_idle_demo

    run_idle_demo(
        seq_len=args.seq_len,
        num_steps=args.steps,
        ells=args.ell,
        runs=args.runs,
        seed=args.seed,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="primebench",
        description="Reproducibility suite for MDM-Prime (masked diffusion with partial masking).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="idle-step ratio: closed form vs simulated sampler vs the paper's Table 1",
        description=(
            "Simulate the MDM-Prime reverse sampler with a dummy network and compare its "
            "idle-step ratio with the closed form sum_k (1 - delta_alpha_k)^(L*ell) and "
            "the ISR column of the paper's Table 1."
        ),
    )
    demo.add_argument("--seq-len", type=int, default=1024, help="tokens per sequence L")
    demo.add_argument("--steps", type=int, default=1024, help="sampling steps T")
    demo.add_argument(
        "--ell", type=int, nargs="+", default=[1, 2, 3, 4, 6, 8], help="sub-tokens per token"
    )
    demo.add_argument("--runs", type=int, default=10, help="simulated sequences per ell")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
