"""MDM-Mixture (Hayakawa et al., 2024), as in the paper's image baselines (PRIME_SPEC §7.3).

A label-conditioned denoiser p_theta(x | y_t, k) with K auxiliary labels k ~ U{1..K}:
training conditions every sample on a fresh uniform label; sampling uses the mixture

    p_theta(x | y_t) = (1/K) sum_k p_theta(x | y_t, k),

i.e. the probabilities averaged over the K labels. (The released code builds the wrapper
with ``num_classes=None`` and drops the label, so it degenerates to MDM; here the label is
really fed to the network.) The wrapper returns log-probabilities, which are valid logits
for the joint decoder, so MDM-Mixture is MaskedDiffusion with this network and ell = 1.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["LabelMixture"]


class LabelMixture(nn.Module):
    """Wraps ``network(y_t, t, label)`` into ``(y_t, t) -> logits`` (PRIME_SPEC §7.3)."""

    def __init__(self, network: nn.Module, num_labels: int = 4):
        super().__init__()
        if num_labels < 2:
            raise ValueError(f"a mixture needs num_labels >= 2, got {num_labels}")
        self.network = network
        self.num_labels = num_labels
        self.time_conditioned = bool(getattr(network, "time_conditioned", True))

    def forward(self, y_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.training:
            # The step's global RNG is seeded by the trainer, so resumed runs replay it.
            label = torch.randint(0, self.num_labels, (y_t.shape[0],), device=y_t.device)
            return self.network(y_t, t, label)
        log_probs = [
            torch.log_softmax(self.network(y_t, t, torch.full_like(y_t[:, 0, 0], k)).float(), -1)
            for k in range(self.num_labels)
        ]
        return torch.logsumexp(torch.stack(log_probs), dim=0) - math.log(self.num_labels)
