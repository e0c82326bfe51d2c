"""What the text report tests share: stored configs of table1-cpu's trained runs and of
runs that sample their checkpoints (an ``upstream:`` section), and runs with the sample
metrics, their cards and per-sample judge values in the in-memory store of
:mod:`tests.benchmarks.reports.report_store`."""

from __future__ import annotations

import io
import json
from functools import cache

import numpy as np

from benchmarks.config.experiments import load_experiment
from benchmarks.reports.gen_ppl_paired import PER_SAMPLE_ARTIFACT
from tests.benchmarks.reports.report_store import Store

# (name, setting) as the text task's cards give them
SUITE_JUDGE = (
    "suite AR model text-judge/ar-judge (run 1a2b3c4d5e6f, step 2000, EMA weights) (DiT) + "
    "tokenizer bytes (b1)",
    "run:text-judge/ar-judge",
)
PAPER_JUDGE = ("gpt2-large (607a30d) + its tokenizer (GPT2TokenizerFast)", "gpt2-large")


@cache
def _table1() -> dict[str, dict]:
    return {c.variant: c.to_dict() for c in load_experiment("table1-cpu").resolve("cpu")}


def trained(variant: str, seed: int = 1) -> dict:
    """The stored config of table1-cpu's ``variant``."""
    return {**json.loads(json.dumps(_table1()[variant])), "seed": seed}


def sampled(
    variant: str, steps: int, dtype: str = "float64", seed: int = 1, name: str | None = None
) -> dict:
    """A run sampling table1-cpu's ``variant`` checkpoint at ``steps`` in ``dtype``."""
    raw = trained(variant, seed)
    raw["task"].update(sample_steps=steps, sampling_dtype=dtype, sample_count=8)
    return {
        **raw,
        "experiment": "text-nfe-sweep",
        "variant": name or f"{variant}-steps{steps}-{dtype}",
        "model": None,
        "upstream": {"experiment": "table1-cpu", "variant": variant, "overrides": []},
    }


def add(
    store: Store,
    config: dict,
    metrics: dict[str, float],
    judge: tuple[str, str] | None = SUITE_JUDGE,
    device: str = "cpu",
    per_sample: dict[str, np.ndarray] | None = None,
) -> str:
    """A complete run with ``metrics``, the cards of its gen PPL (``judge``: name and
    setting) and speed (``device``), and its per-sample judge values when given."""
    run_id = store.add(config, metrics)
    row = store.rows[-1]
    if judge is not None:
        name, setting = judge
        row["tags.card.sample_gen_ppl"] = json.dumps({"judge": name, "judge_setting": setting})
    row["tags.card.perf/samples_per_s"] = json.dumps({"device": device, "ranks": 1})
    if per_sample is not None:
        buffer = io.BytesIO()
        np.savez(buffer, **per_sample)
        store.files[run_id, "/".join(PER_SAMPLE_ARTIFACT)] = buffer.getvalue()
    return run_id


def quality(gen_ppl: float, entropy: float, nfe: float = 17.0, rate: float = 2.5) -> dict:
    """The sample metrics of a text run (tokens/s = samples/s x 256)."""
    return {
        "sample_gen_ppl": gen_ppl,
        "sample_entropy": entropy,
        "sample_nfe": nfe,
        "perf/samples_per_s": rate,
        "perf/tokens_per_s": rate * 256,
    }
