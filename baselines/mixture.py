"""MDM-Mixture (Hayakawa et al., 2024), as in the paper's image baselines (docs/method.md §7.3).

A label-conditioned denoiser p_theta(x | y_t, k) with K auxiliary labels k ~ U{1..K}:
training conditions every sample on a fresh uniform label; sampling uses the mixture

    p_theta(x | y_t) = (1/K) sum_k p_theta(x | y_t, k),

i.e. the probabilities averaged over the K labels. The wrapper returns log-probabilities,
which are valid logits for the joint decoder, so MDM-Mixture is MaskedDiffusion with this
network and ell = 1.

A sampling temperature tau can act in two places. Dividing this wrapper's output by tau
tempers the mixture, p = (mean_k p_k)^(1/tau) renormalised; passing ``temperature``
tempers each component first, p = mean_k softmax(logits_k / tau), as the authors' image
solver does (it averages the K outputs of its wrapper, each softmax(logits / tau)). The
two agree at tau = 1 and when the components coincide.

The authors' released network never sees the label (its U-Net is built without classes,
and the label passed in is ignored), so their MDM-Mixture is MDM trained and sampled with
a label no layer reads. ``label_input=False`` is that model: the components coincide, so
training draws no label and evaluation makes one network call instead of K.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["LabelMixture"]


class LabelMixture(nn.Module):
    """Wraps ``network(y_t, t, label)`` into ``(y_t, t) -> logits`` (docs/method.md §7.3).

    Args:
        network: maps (y_t (B, L, 1), t (B,), label (B,) long or None) to logits (B, L, V).
        num_labels: K >= 2.
        label_input: the network reads the label; False: it ignores it (the authors'
            released model), and it is called with None.
    """

    def __init__(self, network: nn.Module, num_labels: int = 4, *, label_input: bool = True):
        super().__init__()
        if num_labels < 2:
            raise ValueError(f"a mixture needs num_labels >= 2, got {num_labels}")
        self.network = network
        self.num_labels = num_labels
        self.label_input = label_input
        self.time_conditioned = bool(getattr(network, "time_conditioned", True))

    def forward(
        self, y_t: torch.Tensor, t: torch.Tensor, temperature: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Training: the network's logits (B, L, V) under a uniform label per row.
        Evaluation: log (1/K) sum_k softmax(logits_k / tau) (B, L, V), float32, with
        tau = ``temperature`` (B,) per row (None: 1)."""
        if self.training:
            if not self.label_input:
                return self.network(y_t, t, None)
            # The step's global RNG is seeded by the trainer, so resumed runs replay it.
            label = torch.randint(0, self.num_labels, (y_t.shape[0],), device=y_t.device)
            return self.network(y_t, t, label)
        tau = 1.0 if temperature is None else temperature.float().view(-1, 1, 1)
        labels = range(self.num_labels) if self.label_input else [None]
        log_probs = [
            torch.log_softmax(self.network(y_t, t, self._label(y_t, k)).float() / tau, -1)
            for k in labels
        ]
        return torch.logsumexp(torch.stack(log_probs), dim=0) - math.log(len(log_probs))

    @staticmethod
    def _label(y_t: torch.Tensor, k: int | None) -> torch.Tensor | None:
        return None if k is None else torch.full_like(y_t[:, 0, 0], k)
