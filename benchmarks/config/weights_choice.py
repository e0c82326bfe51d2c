"""Which weights a resolved run evaluates: its own training, or the released checkpoint."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .weights_section import NoReleasedWeights

__all__ = ["choose_weights"]

UpstreamWeights = Callable[[dict[str, Any], str, str, int], Any]


def choose_weights(
    merged: dict[str, Any], mode: str, where: str, upstream_weights: UpstreamWeights
) -> None:
    """Keep ``merged``'s ``weights`` section under ``--weights released``, drop it
    otherwise (in place).

    A released evaluation of an upstream run takes the upstream variant's section
    (``upstream_weights(upstream, variant, scale, seed)``), with any ``weights.*``
    overrides of its own on top; a run that evaluates no model
    (a simulation) is the same in both modes; any other run without a section raises
    :class:`NoReleasedWeights` naming ``where``."""
    section = merged.pop("weights", None)
    if mode != "released":
        return
    up = merged.get("upstream")
    # Overrides of an evaluation (--set weights.file=PATH) apply to the upstream's section.
    if up and (section is None or "format" not in section):
        variant = up.get("variant") or merged["variant"]
        try:
            inherited = upstream_weights(up, variant, merged["scale"], merged.get("seed", 0))
        except NoReleasedWeights:
            raise NoReleasedWeights(
                f"{where}: no released weights: its upstream {up['experiment']}/{variant} "
                "names none"
            ) from None
        section = {**(inherited or {}), **(section or {})} or None
    if section is None and (merged.get("model") or up):
        raise NoReleasedWeights(
            f"{where}: no released weights: the authors published none for this variant"
        )
    if section is not None:
        merged["weights"] = section
