"""float32 against float64 categorical sampling: one trained model, seeds and steps.

Zheng et al. (2024, "Masked diffusion models are secretly time-agnostic masked models
and exploit inaccurate categorical sampling") found that float32 Gumbel noise truncates
the tail of the categorical draws, lowering the effective temperature, so samples have a
lower entropy and a lower gen PPL than the same sampler in float64 (MDM-Prime's sampling
command sets sampling.sampling_dtype=fp64, its config's default being fp32; BD3-LM's
sampler casts its probabilities to float64). Whether it shows here is computed from the
numbers, never assumed.

Two text runs pair when their settings differ in ``task.sampling_dtype`` alone (their
experiment and variant names aside): the same upstream checkpoint, sampler, seeds and
steps. For each of entropy and log gen PPL, d = float32 - float64:

* with per-sample values stored by both runs (:data:`.gen_ppl_paired.PER_SAMPLE_ARTIFACT`;
  sample i of both from one seeded generator), d with its paired SE (entropy:
  sd_i(H32_i - H64_i) / sqrt(N); log gen PPL: the delta method), read at 95%: lower,
  higher, or not resolved;
* otherwise the sign of d alone: lower, higher or equal, not tested against the
  samples' noise (the verdict says so).

The known effect *shows* when float32 is lower in every metric both runs logged, *does
not show* when it is higher in one or equal in one (untested), and is *not resolved*
otherwise (:func:`dtype_verdict`).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict

import pandas as pd

from ..config.run_config import RunConfig, flatten
from .context import ReportContext
from .gen_ppl_paired import load_per_sample, log_ppl_difference
from .paired import paired_difference, verdict
from .tables import run_value
from .text_nfe import sweep_points
from .text_quality import ENTROPY, GEN_PPL

__all__ = ["dtype_verdict", "sampling_dtype"]

_METRICS = {"entropy": ENTROPY, "gen PPL": GEN_PPL}


def _key(cfg: RunConfig) -> str:
    """Every setting of the run but its names and its sampling dtype."""
    flat = flatten(cfg.math_dict())
    for name in ("experiment", "variant", "task.sampling_dtype"):
        flat.pop(name, None)
    return json.dumps(flat, sort_keys=True, default=str)


def _status(d: float, se: float | None) -> str:
    if se is None:
        return "lower" if d < 0 else "higher" if d > 0 else "equal"
    return {"confirmed": "lower", "refuted": "higher"}.get(verdict(d, se), "not resolved")


def dtype_verdict(diffs: dict[str, tuple[float, float | None]]) -> str:
    """Whether the known effect shows, from {metric: (float32 - float64, SE or None)}."""
    if not diffs:
        return "no entropy or gen PPL logged by both runs"
    status = {name: _status(d, se) for name, (d, se) in diffs.items()}
    tested = all(se is not None for _, se in diffs.values())
    names = " and ".join(status)
    higher = [n for n, s in status.items() if s == "higher"]
    equal = [n for n, s in status.items() if s == "equal"]
    if higher:
        return f"does not show: float32 higher in {' and '.join(higher)}"
    if equal:
        return f"does not show: float32 equal in {' and '.join(equal)}"
    if all(s == "lower" for s in status.values()):
        if tested:
            return f"shows: float32 lower in {names}, beyond the 95% interval"
        return (
            f"shows in direction: float32 lower in {names}; not tested against the samples' "
            "noise (no per-sample values stored)"
        )
    return "not resolved at this budget"


def _difference(f32: pd.Series, f64: pd.Series, label: str, per: list | None) -> tuple | None:
    """(d, SE or None) of one metric, float32 - float64; None if either run lacks it.
    ``per``: both runs' per-sample values (their samples pair: one key, one seed)."""
    a, b = (run_value(r, f"metrics.{_METRICS[label]}") for r in (f32, f64))
    if a is None or b is None:
        return None
    if label == "gen PPL":
        if per and all("nll_sum" in p and "tokens" in p for p in per):
            return log_ppl_difference(per[0], per[1], paired=True)
        return math.log(a / b), None
    if per and all("entropy" in p for p in per):
        return paired_difference(per[0]["entropy"], per[1]["entropy"])
    return a - b, None


def _row(ctx: ReportContext, model: str, f32: tuple, f64: tuple) -> dict[str, str]:
    (r32, c32), (r64, _) = f32, f64
    per = [load_per_sample(ctx, r["run_id"]) for r in (r32, r64)]
    both = per if None not in per else None
    diffs = {
        label: d for label in _METRICS if (d := _difference(r32, r64, label, both)) is not None
    }
    cells: dict[str, str] = {"model": model, "run (float32)": ctx.run_name(c32)}
    cells["steps"] = str(c32.task.params.sample_steps)
    cells["NFE (float32 / float64)"] = " / ".join(
        "-" if (v := run_value(r, "metrics.sample_nfe")) is None else f"{v:.0f}" for r in (r32, r64)
    )
    for label, fmt in (("entropy", ".3f"), ("gen PPL", ".2f")):
        values = [run_value(r, f"metrics.{_METRICS[label]}") for r in (r32, r64)]
        cells[f"{label} (float32 / float64)"] = " / ".join(
            "-" if v is None else format(v, fmt) for v in values
        )
        unit = "log ratio" if label == "gen PPL" else "nats"
        d, se = diffs.get(label, (None, None))
        cells[f"{label} difference ({unit})"] = (
            "-" if d is None else f"{d:+.4f}" + ("" if se is None else f" ± {se:.4f}")
        )
    return {**cells, "verdict": dtype_verdict(diffs)}


def sampling_dtype(ctx: ReportContext) -> None:
    """One row per float32 run with a float64 twin; a note counts where the effect shows."""
    models = {p.run["run_id"]: p.model for p in sweep_points(ctx)}
    groups: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for run, cfg in ctx.rows():
        groups[_key(cfg)][cfg.task.params.sampling_dtype].append((run, cfg))
    rows = []
    for group in groups.values():
        if group["float32"] and group["float64"]:
            f64 = group["float64"][0]  # runs of one key are one run, re-run at most
            for f32 in group["float32"]:
                model = models.get(f32[0]["run_id"], f32[1].variant)
                rows.append(_row(ctx, model, f32, f64))
    if not rows:
        return
    shows = sum(r["verdict"].startswith("shows") for r in rows)
    against = sum(r["verdict"].startswith("does not show") for r in rows)
    ctx.write_table(
        pd.DataFrame(rows),
        "text_sampling_dtype",
        "Text: float32 against float64 categorical sampling (same model, seeds and steps)",
        notes=[
            "Difference: float32 - float64 (entropy in nats; gen PPL as the log of the "
            "ratio). Known effect (Zheng et al. 2024): float32 Gumbel noise lowers the "
            "effective temperature, so float32 samples have lower entropy and gen PPL.",
            f"Here: the effect shows in {shows} of {len(rows)} pairs and does not show in "
            f"{against} (a 'shows in direction' verdict is the sign alone, untested "
            "against the samples' noise).",
        ],
    )
