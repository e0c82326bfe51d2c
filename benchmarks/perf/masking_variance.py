"""Gradient noise of training under independent and at-least-one masking.

For each model of the 2-D toy (L = 2 coordinates over C = 512) and for a longer sequence
(L = 64 bytes, ell = 2, where the two maskings should hardly differ), the network is first
trained briefly with independent masking (``--warmup`` steps) so that its losses are
those of a model in training, then one batch of clean data x0 is held fixed and the
training gradient is drawn ``--draws`` times, each time with fresh (t, y_t):

    noise = mean_r ||g_r - mean(g)||^2 / ||mean(g)||^2,

the share of the gradient's power that the time and mask draws add on this batch. The
loss column is the mean training loss over the draws with its standard error: both
maskings estimate the same objective, so the two agree within their errors given enough
draws (independent masking's draws are heavy-tailed: a rare sequence masked at a small t
carries a weight up to 1 / eps, so few draws can stray by more than their SE suggests).

    python -m benchmarks.perf.masking_variance --draws 32
"""

from __future__ import annotations

import argparse
import math

import torch

from benchmarks.config.validation import build_dataclass
from benchmarks.core import DataSpec
from benchmarks.registry import MODELS
from benchmarks.tasks.toy2d import target_pmf

TOY = {
    "toy MDM": {"name": "mdm", "schedule": "linear", "time_eps": 0.005},
    "toy Prime l=2 independent": {
        "name": "prime",
        "ell": 2,
        "decoder": "independent",
        "objective": "valid",
        "schedule": "linear",
        "time_eps": 0.005,
    },
    "toy Prime l=2 joint (published)": {
        "name": "prime",
        "ell": 2,
        "schedule": "linear",
        "time_eps": 0.005,
    },
}


def build(params: dict, data: DataSpec, masking: str) -> torch.nn.Module:
    name, rest = params["name"], {k: v for k, v in params.items() if k != "name"}
    entry = MODELS.get(name)
    backbone = {"name": "toy-mlp", "emb_dim": 32, "hidden": 256, "dropout": 0.0}
    cfg = build_dataclass(entry.Params, {**rest, "backbone": backbone, "masking": masking}, "m")
    torch.manual_seed(0)
    return entry.build(cfg, data)


def gradient(model: torch.nn.Module, x0: torch.Tensor, seed: int) -> tuple[float, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    loss, _ = model.training_loss(x0, torch.Generator().manual_seed(seed))
    loss.backward()
    flat = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    return float(loss.detach()), flat


def measure(params: dict, data: DataSpec, draw, batch: int, draws: int, warmup: int) -> list[str]:
    warm = build(params, data, "independent")
    opt = torch.optim.Adam(warm.parameters(), lr=1e-3)
    for step in range(warmup):
        opt.zero_grad(set_to_none=True)
        loss, _ = warm.training_loss(draw(batch, step), torch.Generator().manual_seed(step))
        loss.backward()
        opt.step()
    x0 = draw(batch, 10**6)
    cells = []
    for masking in ("independent", "at_least_one"):
        model = build(params, data, masking)
        model.load_state_dict(warm.state_dict())
        drawn = [gradient(model, x0, 10**6 + r) for r in range(draws)]
        losses = torch.tensor([loss for loss, _ in drawn])
        grads = torch.stack([g for _, g in drawn])
        mean = grads.mean(0)
        noise = float((grads - mean).pow(2).sum(-1).mean() / mean.pow(2).sum())
        se = float(losses.std()) / math.sqrt(len(losses))
        cells.append(f"{float(losses.mean()):8.4f} ± {se:.4f}  noise {noise:7.3f}")
    return cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--draws", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=300, help="training steps first")
    args = parser.parse_args()
    pmf = target_pmf("chelsea", 512, 4.0).flatten()

    def toy_draw(n: int, seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        flat = torch.multinomial(pmf, n, replacement=True, generator=g)
        return torch.stack([flat // 512, flat % 512], dim=-1)

    def bytes_draw(n: int, seed: int) -> torch.Tensor:
        # Sequences with structure to learn: a random walk over byte values.
        g = torch.Generator().manual_seed(seed)
        steps = torch.randint(-2, 3, (n, 64), generator=g)
        return (steps.cumsum(-1) + 128).clamp(0, 255)

    rows = [(name, params, DataSpec(512, 2), toy_draw) for name, params in TOY.items()]
    long = {**TOY["toy Prime l=2 independent"], "schedule": "loglinear", "time_eps": 1e-3}
    rows.append(("L=64 bytes Prime l=2 independent", long, DataSpec(256, 64), bytes_draw))
    print(
        f"batch {args.batch}, {args.draws} draws of (t, y_t) on one fixed batch, after "
        f"{args.warmup} steps; {torch.get_num_threads()} threads"
    )
    print(f"{'model':36s} {'independent: loss ± SE, noise':>36s} {'at-least-one':>36s}")
    for name, params, data, draw in rows:
        batch = args.batch if data.seq_len == 2 else max(args.batch // 32, 8)
        cells = measure(params, data, draw, batch, args.draws, args.warmup)
        print(f"{name:36s} {cells[0]:>36s} {cells[1]:>36s}")


if __name__ == "__main__":
    main()
