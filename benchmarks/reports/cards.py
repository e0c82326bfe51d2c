"""A metric's identity card, read back from the runs table of the store.

Every metric is logged with a card (:mod:`benchmarks.tracking.tracker`): the JSON tag
``card.<metric>``, which the runs table holds as the column ``tags.card.<metric>``. A
report reads it to say how a number was measured (the judge of a generative perplexity,
the device of a sampling speed), never to compute the number.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

__all__ = ["metric_card"]


def metric_card(run: pd.Series, metric: str) -> dict[str, Any]:
    """The card of ``metric`` on ``run`` (a row of the runs table); ``{}`` when the run
    has none (pandas fills the missing tags of a mixed set of runs with NaN) or the tag is
    not a JSON mapping."""
    raw = run.get(f"tags.card.{metric}")
    if not isinstance(raw, str):
        return {}
    try:
        card = json.loads(raw)
    except ValueError:
        return {}
    return card if isinstance(card, dict) else {}
