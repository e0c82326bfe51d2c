"""Sample quality of text in the tables: generative perplexity, unigram entropy, MAUVE,
and the notes that name the judge.

The text task logs, for its samples (:mod:`benchmarks.metrics`):

* ``sample_gen_ppl`` = exp( sum of the judge's NLL over the scored tokens / their
  number ), pooled over all samples; its card names the judge (``judge``);
* ``sample_entropy``: the mean over samples of each sample's unigram entropy (nats);
* ``sample_mauve``: MAUVE against reference texts, when it was computed.

The judge is read from the cards, never assumed (``judge``: its name; ``judge_setting``:
the task's ``judge``): GPT-2 Large at the paper scale, and at the cpu scale the suite's
own AR model (a setting ``run:EXPERIMENT/VARIANT``), whose run is resolved from this
installation's experiment files to say how long it trained. Values under two judges are
never one column's: with several judges each cell is marked ``[j1]``, ``[j2]``, ... and
the notes name them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import pandas as pd

from ..config.experiments import resolve_variant
from ..config.run_config import RunConfig
from ..core import ConfigError
from .cards import metric_card
from .tables import run_value

__all__ = [
    "ENTROPY",
    "GEN_PPL",
    "MAUVE",
    "QUALITY_NOTE",
    "Judges",
    "entropy_cell",
    "gen_ppl_cell",
    "judge_notes",
    "mauve_cell",
]

GEN_PPL, ENTROPY, MAUVE = "sample_gen_ppl", "sample_entropy", "sample_mauve"

QUALITY_NOTE = (
    "gen PPL: exp of the judge's NLL per scored token, pooled over all samples (the MDLM "
    "code base's retokenization, chunking and first-EOS rule). entropy: the mean over "
    "samples of each sample's unigram entropy of the judge's token ids, in nats; a "
    "repetitive sample has a low entropy and often a low gen PPL, so read the two together. "
    "MAUVE (when computed): the samples against reference texts, in [0, 1]."
)

_RUN_REF = re.compile(r"run:([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+)")


class Judges:
    """The judges of the gen PPL values of a table, in the order the rows name them."""

    def __init__(self, rows: Iterable[tuple[pd.Series, RunConfig]]):
        self.used: dict[str, tuple[dict, RunConfig]] = {}  # name -> a card and its run
        for run, cfg in rows:
            name = self.of(run)
            if name is not None:
                self.used.setdefault(name, (metric_card(run, GEN_PPL), cfg))

    @staticmethod
    def of(run: pd.Series) -> str | None:
        """The judge named on the run's gen PPL card (None: no gen PPL)."""
        if run_value(run, f"metrics.{GEN_PPL}") is None:
            return None
        return str(metric_card(run, GEN_PPL).get("judge") or "judge not recorded")

    def mark(self, run: pd.Series) -> str:
        """`` [j2]`` after a cell when the table has several judges, else ``""``."""
        name = self.of(run)
        if name is None or len(self.used) < 2:
            return ""
        return f" [j{list(self.used).index(name) + 1}]"


def gen_ppl_cell(run: pd.Series, judges: Judges) -> str:
    value = run_value(run, f"metrics.{GEN_PPL}")
    return "-" if value is None else f"{value:.2f}{judges.mark(run)}"


def entropy_cell(run: pd.Series) -> str:
    value = run_value(run, f"metrics.{ENTROPY}")
    if value is None:
        return "-"
    unit = metric_card(run, ENTROPY).get("unit", "nats")
    return f"{value:.3f}" + ("" if unit == "nats" else f" {unit}")


def mauve_cell(run: pd.Series) -> str:
    value = run_value(run, f"metrics.{MAUVE}")
    return "-" if value is None else f"{value:.3f}"


def _suite_judge(card: dict, cfg: RunConfig) -> tuple[str, str] | None:
    """(experiment, variant) of a judge that is the suite's own AR model: the card's
    ``judge_setting`` (or, on a card without one, its name, or the run's task.judge)
    run:EXPERIMENT/VARIANT; None for any other judge."""
    setting = card.get("judge_setting")
    if not isinstance(setting, str):
        setting = card.get("judge") if "judge" in card else getattr(cfg.task.params, "judge", None)
    found = _RUN_REF.search(setting) if isinstance(setting, str) else None
    return (found[1], found[2]) if found else None


def _trained(ref: tuple[str, str], cfg: RunConfig, ar_steps: int | None) -> str:
    """How long the judge run trained, against Table 1's AR row, from its config."""
    try:
        judge = resolve_variant(ref[0], cfg.scale, {}, ref[1], cfg.seed)
    except (ConfigError, OSError) as err:
        reason = " ".join(str(err).split(";")[0].split())
        return (
            f", trained longer than Table 1's AR row (its config: {reason} here, so its steps "
            "are not shown)"
        )
    steps = judge.train.steps
    if ar_steps is None:
        return f", trained {steps:,} steps"
    if steps > ar_steps:
        return f", trained longer than Table 1's AR row ({steps:,} steps against {ar_steps:,})"
    return f", trained {steps:,} steps, not longer than Table 1's AR row ({ar_steps:,})"


def judge_notes(judges: Judges, ar_steps: int | None = None) -> list[str]:
    """One note per judge: its name from the cards, and for the suite's own AR model that
    it is not GPT-2 Large and how long it trained (``ar_steps``: Table 1's AR row's)."""
    notes = []
    several = len(judges.used) > 1
    for i, (name, (card, cfg)) in enumerate(judges.used.items()):
        mark = f"[j{i + 1}] " if several else ""
        ref = _suite_judge(card, cfg)
        if ref is None:
            notes.append(f"{mark}gen PPL judge (from the metric cards): {name}.")
            continue
        notes.append(
            f"{mark}gen PPL judge: {name} (run:{ref[0]}/{ref[1]}), the suite's own AR model"
            f"{_trained(ref, cfg, ar_steps)}, not GPT-2 Large (the paper's judge): its gen "
            "PPL ranks this corpus's samples against each other and is not comparable with "
            "published values."
        )
    return notes
