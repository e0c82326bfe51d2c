"""A decoder head with a mask class: C + 1 logits per token (the image MDM's 257-way head).

For ell = 1 the network may output E in R^{C+1} per token, the last entry for the mask
class m = C, as the authors' ell = 1 image U-Net does (C = 256 pixel values + mask). Two
distributions come from it:

    q(v | y_t) = exp E_v / sum_{v' <= C} exp E_v',            v in {0..C} (mask included);
    p(x | y_t) = q(x | y_t) / (1 - q(m | y_t))
               = exp E_x / sum_{x' < C} exp E_x',            x in {0..C-1},

p being q with the mask class dropped and the rest renormalised: the distribution of the
clean value given that it is one (x_0 is never the mask).

* Training (objective ``cross_entropy_257``): the unweighted mean over all B x L tokens,
  revealed ones included, of -log q(x_0^i | y_t): the network must also learn to copy
  the revealed tokens, and is charged for any mass on the mask class.
* Sampling: the sampler sees the logits E_{0..C-1} (:func:`clean_class_logits`), i.e. p;
  the mask class is never proposed. A temperature commutes with the renormalisation:
  softmax(E_{<C} / tau) is softmax(E / tau) restricted to x < C and renormalised.
* Likelihood, with w(t) = -alpha'_t / (1 - alpha_t) (:func:`mask_class_losses`):

      published(i) = w(t) * -log q(x_0^i | y_t)                    at every token,
      valid(i)     = w(t) * 1[y_t^i = m] * -log p(x_0^i | y_t)     (SUBS on p).

  ``valid`` is the MDLM NELBO of the reverse process whose denoiser is p with revealed
  tokens kept: E_{t, y_t}[sum_i valid(i)] >= -log p_theta(x_0) for any network, with
  equality for the exact posterior. ``published`` is the authors' integrand (all tokens,
  (C+1)-way). As -log q(x | y_t) = -log p(x | y_t) - log(1 - q(m | y_t)) at masked tokens
  and -log q >= 0 = valid(i) at revealed ones, published(i) >= valid(i) pointwise: here
  the published estimator is a looser bound too, by the mask-class mass and copy errors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .decoder.parameterization import subs_log_probs
from .losses import PrimeLosses, published_joint_loss, valid_marginal_bound
from .schedules import Schedule

__all__ = ["clean_class_logits", "mask_class_cross_entropy", "mask_class_losses"]


def _check(logits: torch.Tensor, num_classes: int) -> None:
    if logits.shape[-1] != num_classes + 1:
        raise ValueError(
            f"a mask-class head has C + 1 = {num_classes + 1} logits per token "
            f"(the last the mask class), got {tuple(logits.shape)}"
        )


def clean_class_logits(logits: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(..., C + 1) -> (..., C): logits of p, the mask class dropped (a view, not a copy:
    the sampler copies before it writes)."""
    _check(logits, num_classes)
    return logits[..., :num_classes]


def mask_class_cross_entropy(logits: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """(B, L) -log q(x_0^i | y_t) at every token, in nats (float32 or wider).

    Args:
        logits: (B, L, C + 1) the head's output.
        x0: (B, L) clean tokens in {0..C-1}.
    """
    wide = logits.to(torch.promote_types(logits.dtype, torch.float32))
    nll = F.cross_entropy(wide.flatten(0, -2), x0.flatten(), reduction="none")
    return nll.view(x0.shape)


def mask_class_losses(
    logits: torch.Tensor,
    x0: torch.Tensor,
    y_t: torch.Tensor,
    t: torch.Tensor,
    schedule: Schedule,
    which: tuple[str, ...] = ("published", "valid_bound"),
) -> PrimeLosses:
    """Per-token (B, L) published estimator and valid bound of a mask-class head (module
    docstring), the ones not in ``which`` None.

    Args:
        logits: (B, L, C + 1); the mask id is m = C.
        x0: (B, L) clean tokens.
        y_t: (B, L, 1) noised tokens (ell = 1).
        t: (B,) diffusion times.
    """
    mask_id = logits.shape[-1] - 1
    published = valid = None
    if "published" in which:
        published = published_joint_loss(-mask_class_cross_entropy(logits, x0), t, schedule)
    if "valid_bound" in which:
        wide = logits.to(torch.promote_types(logits.dtype, torch.float32))
        log_p = subs_log_probs(wide, y_t[..., 0], mask_id)  # drops the mask column
        target = log_p.gather(-1, x0.unsqueeze(-1))  # (B, L, 1): the one digit's marginal
        valid = valid_marginal_bound(target, y_t, t, schedule, mask_id)
    return PrimeLosses(published=published, valid_bound=valid)
