"""The judge of the text task's samples (task.judge): which model, whether it can be had.

``task.judge`` names a hub model (:class:`HubJudge`: gpt2-large at the paper scale, with
transformers) or ``run:<experiment>/<variant>``, the suite's trained AR run of that
variant at the run's scale and seed (:class:`SuiteJudge`: run:text-judge/ar-judge at the
cpu scale), read from the runs directory with :func:`load_trained_model` (EMA weights when
the run kept them). :func:`check_judge` fails early, naming the field and what is
missing: the text task calls it before training (packages, a hub model's files when
offline, the judge run's config) and before its evaluation draws a sample (the judge run's
finished checkpoint).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import try_to_load_from_cache

from ..config.experiments import resolve_variant
from ..config.run_config import RunConfig
from ..core import ConfigError
from ..data.tokenizers import get_tokenizer
from ..metrics.hub_judge import HubJudge, import_transformers
from ..metrics.judge import Judge, JudgeUnavailableError
from ..metrics.suite_judge import EOS_TEXT, SuiteJudge
from ..training.checkpoints import last_checkpoint, load_trained_model, read_checkpoint
from .text_params import TextLMParams

__all__ = ["HUB_FILES", "BOSJudge", "build_judge", "check_judge", "judge_config"]

HUB_FILES = ("config.json", "model.safetensors")  # what HubJudge loads besides the tokenizer


class BOSJudge(SuiteJudge):
    """A suite judge whose rows start with its tokenizer's BOS, as the blocks it was
    trained on do ([BOS] + text + [EOS]). The bytes tokenizer's decode drops its NUL BOS
    from the samples (a GPT-2 sample keeps its BOS as <|endoftext|>, read back as the
    EOS = BOS id); without it a byte-level judge mispredicts every early token (measured:
    16.4 nats per token on samples it scores at 2.6 with it). The BOS is the row's first
    EOS, so it is context and no EOS of the row is scored, as for a GPT-2 sample."""

    def encode(self, texts: Sequence[str], max_length: int | None = None) -> list[list[int]]:
        rows = [[self.tokenizer.bos_id, *row] for row in super().encode(texts)]
        return [row[:max_length] for row in rows] if max_length is not None else rows


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def judge_config(params: TextLMParams, config: RunConfig) -> RunConfig:
    """The resolved config of a ``run:<experiment>/<variant>`` judge: that variant at
    ``config``'s scale and seed; ConfigError naming task.judge unless it is a text-lm run
    of an autoregressive model."""
    experiment, variant = params.judge_run
    try:
        judge = resolve_variant(experiment, config.scale, {}, variant, config.seed)
    except ConfigError as err:
        raise ConfigError(f"task.judge {params.judge}: {err}") from None
    model = judge.model.name if judge.model is not None else None
    if judge.task.name != "text-lm" or model != "ar" or judge.weights is not None:
        raise ConfigError(
            f"task.judge {params.judge}: expected a trained text-lm run of an autoregressive "
            f"model (model.name ar), got task {judge.task.name}, model {model}"
        )
    return judge


def _train_command(judge: RunConfig, runs_dir: Path) -> str:
    return (
        f"primebench run {judge.experiment} --variant {judge.variant} --scale {judge.scale} "
        f"--runs-dir {runs_dir} (reproduce and sweep plan it before the runs it judges)"
    )


def _check_hub(model: str, revision: str) -> None:
    """transformers is installed; offline, the model's files are in the local cache."""
    import_transformers()
    if Path(model).is_dir():
        missing = [name for name in HUB_FILES if not (Path(model) / name).is_file()]
        where = f"directory {model}"
    elif _offline():
        found = {name: try_to_load_from_cache(model, name, revision=revision) for name in HUB_FILES}
        missing = [name for name, path in found.items() if not isinstance(path, str)]
        where = "the Hugging Face cache (HF_HOME), HF_HUB_OFFLINE set"
    else:
        return  # the hub is reachable: HubJudge fetches the model at evaluation
    if missing:
        raise JudgeUnavailableError(
            f"task.judge {model} (revision {revision}): {', '.join(missing)} not in {where}; "
            "download the model where a network is available and copy the cache here, or "
            "judge with a suite run (task.judge: run:<experiment>/<variant>)"
        )


def _judge_step(params: TextLMParams, spec: RunConfig, runs_dir: Path | None) -> int:
    """The optimizer step of the judge run's last checkpoint; JudgeUnavailableError naming
    the run and the command that trains it unless the run has finished."""
    if runs_dir is None:
        raise JudgeUnavailableError(
            f"task.judge {params.judge}: this evaluation has no runs directory to read the "
            f"judge run {spec.run_id} from"
        )
    path = last_checkpoint(runs_dir, spec.run_id)
    if not path.is_file():
        raise JudgeUnavailableError(
            f"task.judge {params.judge}: the judge run {spec.run_id} has no checkpoint "
            f"({path}); train it first: {_train_command(spec, runs_dir)}"
        )
    step = read_checkpoint(path).get("global_step")
    if not isinstance(step, int) or step < spec.train.steps:
        raise JudgeUnavailableError(
            f"task.judge {params.judge}: the judge run {spec.run_id} is at step {step} of "
            f"{spec.train.steps} ({path}); let it finish: {_train_command(spec, runs_dir)}"
        )
    return step


def check_judge(
    params: TextLMParams,
    config: RunConfig,
    runs_dir: Path | None = None,
    *,
    evaluation: bool = False,
) -> None:
    """Raise, naming task.judge or task.mauve_references, if the judge cannot be had: the
    packages (transformers for a hub judge, mauve-text for MAUVE), a hub model's files
    when offline, a judge run's config and, for an ``evaluation`` (whose ``runs_dir``
    holds it), the judge run's finished checkpoint."""
    if params.judge is None:
        return
    if params.mauve_references and importlib.util.find_spec("mauve") is None:
        raise JudgeUnavailableError(
            "task.mauve_references: MAUVE needs the 'mauve-text' package (GPL-3.0, an "
            "optional extra): pip install 'primebench[quality]', or set mauve_references: 0"
        )
    if params.judge_run is None:
        _check_hub(params.judge, params.judge_revision)
    elif evaluation:
        _judge_step(params, judge_config(params, config), runs_dir)
    else:
        judge_config(params, config)


def build_judge(
    params: TextLMParams, config: RunConfig, runs_dir: Path | None, device: torch.device
) -> tuple[Judge, dict[str, Any]]:
    """The judge of ``params`` on ``device``, and what its cards say of it besides its name."""
    check_judge(params, config, runs_dir, evaluation=True)
    if params.judge_run is None:
        judge = HubJudge(
            params.judge,
            revision=params.judge_revision,
            device=device,
            batch_size=params.judge_batch,
        )
        return judge, {"judge_kind": "hub model", "judge_revision": params.judge_revision}
    spec = judge_config(params, config)
    step = _judge_step(params, spec, runs_dir)
    model, ema = load_trained_model(spec, runs_dir, device)
    label = f"{params.judge} (run {spec.run_id}, step {step}, {'EMA' if ema else 'raw'} weights)"
    tokenizer = get_tokenizer(spec.task.params.tokenizer)
    # A tokenizer whose decoded text keeps no BOS (bytes), for a judge trained on [BOS] + ...
    bos = spec.task.params.block_specials and EOS_TEXT.get(tokenizer.name, "") is None
    judge = (BOSJudge if bos else SuiteJudge)(
        model,
        tokenizer,
        context_size=spec.task.params.block_size,
        label=label,
        batch_size=params.judge_batch,
    )
    about = {
        "judge_kind": "the suite's own AR model, not GPT-2 Large: compare runs judged by the "
        "same run only",
        "judge_run": spec.run_id,
    }
    if bos:
        about["judge_rows"] = (
            f"each row starts with the judge's BOS ({tokenizer.bos_id}), as its training "
            "blocks; the decoded samples lost theirs; no EOS is scored"
        )
    return judge, about
