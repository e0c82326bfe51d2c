"""A judge loaded from a Hugging Face model name: GPT-2 Large at paper scale.

``transformers`` is not a dependency of the suite: it is imported when a HubJudge is
built, and its absence is a :class:`JudgeUnavailableError` naming the package. The
tokenizer and the causal LM are loaded with ``AutoTokenizer`` / ``AutoModelForCausalLM``
(safetensors weights only, no remote code), in float32 as MDLM's evaluation loads them.
Weights come from the local cache: nothing here reaches a network when ``HF_HUB_OFFLINE``
is set or ``local_files_only`` is given, and a model missing from the cache is a
:class:`JudgeUnavailableError` naming the model and the cache.

* encode: ``tokenizer(texts, truncation=True, max_length=...)``, MDLM's call without its
  padding (:mod:`.retokenize` pads with EOS, which MDLM sets as GPT-2's pad token);
* token_nll: the model's logits with the attention mask, next-token cross-entropy;
* features: MAUVE's own featurizer (mauve-text utils.py, ``featurize_tokens_from_model``):
  each text cut to the context (1024), the last entry of ``hidden_states`` (GPT-2: after
  the final LayerNorm ln_f) at the text's last token.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .judge import JudgeUnavailableError
from .retokenize import pad_right

__all__ = ["PAPER_JUDGE", "HubJudge", "import_transformers"]

PAPER_JUDGE = "gpt2-large"  # MDLM, BD3-LM and MDM-Prime: eval.gen_ppl_eval_model_name_or_path


def import_transformers() -> Any:
    try:
        import transformers
    except ImportError as err:
        raise JudgeUnavailableError(
            "HubJudge needs the 'transformers' package, which primebench does not install: "
            "pip install transformers (or judge with SuiteJudge)"
        ) from err
    return transformers


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


class HubJudge:
    """Judge from a hub model name (``"gpt2-large"`` at paper scale).

    Args:
        model_name: hub name or local directory of a causal LM and its tokenizer.
        revision: branch, tag or commit to load.
        cache_dir: the Hugging Face cache to read (default: the usual one, ``HF_HOME``).
        local_files_only: never reach the network; default: True when HF_HUB_OFFLINE is set.
        device: where the model runs.
        batch_size: texts per model call in :meth:`features`.
    """

    def __init__(
        self,
        model_name: str = PAPER_JUDGE,
        *,
        revision: str = "main",
        cache_dir: str | None = None,
        local_files_only: bool | None = None,
        device: str | torch.device = "cpu",
        batch_size: int = 8,
    ):
        transformers = import_transformers()
        offline = _offline() if local_files_only is None else local_files_only
        kwargs = {"revision": revision, "cache_dir": cache_dir, "local_files_only": offline}
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(model_name, **kwargs)
            model = transformers.AutoModelForCausalLM.from_pretrained(
                model_name, use_safetensors=True, trust_remote_code=False, **kwargs
            )
        except (OSError, ValueError) as err:
            where = cache_dir or "the default Hugging Face cache (HF_HOME)"
            raise JudgeUnavailableError(
                f"cannot load judge model {model_name!r} (revision {revision!r}) from {where} "
                f"with local_files_only={offline} (HF_HUB_OFFLINE="
                f"{os.environ.get('HF_HUB_OFFLINE', 'unset')}): it must be in that cache with "
                f"safetensors weights; download it where a network is available and copy the "
                f"cache here, or judge with SuiteJudge. Cause: {err}"
            ) from err
        if tokenizer.pad_token is None:  # as MDLM: GPT-2 pads with EOS
            tokenizer.pad_token = tokenizer.eos_token
        self.tokenizer = tokenizer
        self.model = model.float().eval().to(device)
        self.eos_id = int(tokenizer.eos_token_id)
        config = model.config
        self.context_size = int(
            getattr(config, "n_positions", None) or config.max_position_embeddings
        )
        self.batch_size = batch_size
        commit = getattr(config, "_commit_hash", None)
        version = f"commit {commit}" if commit else f"revision {revision!r}, no commit hash"
        self.name = f"{model_name} ({version}) + its tokenizer ({type(tokenizer).__name__})"

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def encode(self, texts: Sequence[str], max_length: int | None = None) -> list[list[int]]:
        out = self.tokenizer(list(texts), truncation=max_length is not None, max_length=max_length)
        return [list(r) for r in out["input_ids"]]

    @torch.no_grad()
    def token_nll(self, ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        ids = ids.to(self.device)
        logits = self.model(ids, attention_mask=attention_mask.to(self.device)).logits
        return F.cross_entropy(logits[:, :-1].float().transpose(1, 2), ids[:, 1:], reduction="none")

    @torch.no_grad()
    def features(self, texts: Sequence[str]) -> np.ndarray:
        rows = self.encode(texts, self.context_size)
        empty = [i for i, r in enumerate(rows) if not r]
        if empty:
            raise ValueError(f"texts {empty[:5]}: no token to take a feature from")
        feats = []
        for start in range(0, len(rows), self.batch_size):
            batch = pad_right(rows[start : start + self.batch_size], self.eos_id)
            out = self.model(
                batch.ids.to(self.device),
                attention_mask=batch.attention_mask.to(self.device),
                output_hidden_states=True,
            )
            hidden = out.hidden_states[-1].float()
            last = (batch.lengths - 1).to(hidden.device)
            feats.append(hidden[torch.arange(hidden.shape[0]), last].cpu())
        return torch.cat(feats).numpy()
