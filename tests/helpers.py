"""Independent references for the tests (exact posteriors of enumerable distributions),
and the tiny run settings the harness tests share."""

from __future__ import annotations

import itertools

import torch

from benchmarks.config.experiments import load_experiment
from benchmarks.config.overrides import deep_merge
from benchmarks.tracking.tracker import RUN_ID_TAG, Tracker
from prime import SubTokenizer
from prime.backbones import UNetConfig

# A toy2d run of a few seconds: 6 steps of a tiny MLP, small evaluation.
TINY_TOY = {
    "train": {
        "steps": 6,
        "global_batch_size": 64,
        "checkpoint_every": 4,
        "log_every": 1,
        "loader_workers": 0,
    },
    "model": {"backbone": {"emb_dim": 4, "hidden": 16, "depth": 1}},
    "task": {
        "resolution": 64,
        "eval_samples": 64,
        "eval_passes": 2,
        "eval_batch": 64,
        "sample_count": 100,
        "sample_steps": 4,
        "sample_batch": 100,
        "tv_bins": 16,
        "sweep_steps": [1, 2],
        "sweep_replicates": 2,
        "sweep_samples": 50,
    },
}


def authors_unet_config(cfg: dict) -> UNetConfig:
    """The suite's U-Net sizes of an authors' ``MODEL_CONFIGS`` entry (as the fixtures
    store it)."""
    return UNetConfig(
        cfg["model_channels"],
        tuple(cfg["channel_mult"]),
        cfg["num_res_blocks"],
        tuple(cfg["attention_resolutions"]),
        cfg["num_head_channels"],
        cfg["dropout"],
    )


def as_overrides(tree: dict, prefix: str = "") -> list[str]:
    """A nested settings dict as the ``--set key=value`` overrides that produce it."""
    out = []
    for key, value in tree.items():
        if isinstance(value, dict):
            out += as_overrides(value, f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key}={'null' if value is None else value}")
    return out


def sqlite(path) -> str:
    """The tracking URI of a sqlite store at ``path``."""
    return f"sqlite:///{path}"


def mlflow_runs(uri: str, config) -> list:
    """Every MLflow run of ``config``'s run id in the store at ``uri``."""
    tracker = Tracker(uri)
    exp = tracker.experiment_id(config.experiment)
    return tracker.client.search_runs([exp], f"tags.`{RUN_ID_TAG}` = '{config.run_id}'")


# An idle-steps run of a few seconds: two sequence lengths' worth of steps, two runs.
TINY_IDLE = {"task": {"seq_len": 1024, "steps": [256, 1024], "runs": 2}}


def tiny_idle(variants=("mdm", "prime-l2")):
    """The idle-steps configs of ``variants`` with :data:`TINY_IDLE`."""
    return load_experiment("idle-steps").resolve("cpu", TINY_IDLE, list(variants))


def tiny_toy(variants=None, overrides=None):
    """The toy2d configs of ``variants`` with :data:`TINY_TOY` (and ``overrides``)."""
    return load_experiment("toy2d").resolve("cpu", deep_merge(TINY_TOY, overrides), variants)


class ExactPosterior:
    """The exact denoiser of a distribution p over sequences of L tokens in {0..C-1}.

    Given partially masked sub-tokens y_t, the posterior of token i is

        p(x^i = x | y_t) = sum_{s : s consistent with y_t, s_i = x} p(s) / sum_{s consistent} p(s),

    computed by enumerating all C**L sequences (written without the codec's lookup
    tables: digits come from repeated division, consistency from a direct comparison).
    ``logits(y_t)`` returns log p as (B, L, C): the "network" of a perfect model.
    """

    def __init__(self, probs: torch.Tensor, codec: SubTokenizer, seq_len: int):
        c = codec.num_classes
        if probs.shape != (c**seq_len,):
            raise ValueError(f"probs must have C**L = {c**seq_len} entries")
        self.codec = codec
        self.seq_len = seq_len
        self.probs = probs.double() / probs.sum()
        self.states = torch.tensor(list(itertools.product(range(c), repeat=seq_len)))
        digits = []
        for j in range(codec.ell):
            place = codec.base ** (codec.ell - 1 - j)
            digits.append((self.states // place) % codec.base)
        self.state_digits = torch.stack(digits, dim=-1)  # (S, L, ell)

    def log_prob(self, x0: torch.Tensor) -> torch.Tensor:
        """log p(x0) for (B, L) sequences."""
        c = self.codec.num_classes
        index = torch.zeros(x0.shape[0], dtype=torch.long)
        for i in range(self.seq_len):
            index = index * c + x0[:, i]
        return self.probs[index].log()

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        idx = torch.multinomial(self.probs, n, replacement=True, generator=generator)
        return self.states[idx]

    def logits(self, y_t: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        m = self.codec.mask_id
        agree = (y_t[:, None] == m) | (y_t[:, None] == self.state_digits[None])  # (B,S,L,ell)
        weight = self.probs[None] * agree.flatten(2).all(-1)  # (B, S)
        out = torch.zeros(y_t.shape[0], self.seq_len, self.codec.num_classes, dtype=torch.float64)
        for i in range(self.seq_len):
            out[:, i].index_add_(1, self.states[:, i], weight)
        return (out / out.sum(-1, keepdim=True)).log()


def entropy(probs: torch.Tensor) -> float:
    p = probs[probs > 0].double()
    return float(-(p * p.log()).sum())


class StandInFeatures:
    """A small fixed feature extractor with the interface of ``benchmarks.metrics.fid``'s
    Inception extractors (``name``, ``__call__(images, desc)``), for tests of the FID
    plumbing: 4 x 4 average pools of every channel through a fixed random projection."""

    name = "test-stand-in-features"

    def __init__(self, *args, dim: int = 32, **kwargs):
        self.dim = dim

    def __call__(self, images, desc: str = "features"):
        import numpy as np

        x = torch.as_tensor(np.asarray(images)).double() / 255.0
        if x.shape[1] == 1:  # gray images are fed to Inception as RGB too
            x = x.expand(-1, 3, -1, -1)
        pooled = torch.nn.functional.adaptive_avg_pool2d(x, 4).flatten(1)
        g = torch.Generator().manual_seed(0)
        projection = torch.randn(pooled.shape[1], self.dim, generator=g, dtype=torch.float64)
        return torch.tanh(pooled @ projection).numpy()
