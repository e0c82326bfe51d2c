"""The ``bd3lm`` model entry: block diffusion (:class:`baselines.BlockDiffusion`; the paper's
BD3-LM row), autoregressive over blocks of L' tokens and masked diffusion inside a block,
over the block's ell sub-tokens when ell > 1."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from baselines import BlockDiffusion
from prime import SubTokenizer

from ..core import ConfigError, DataSpec, ModelEntry, Task, require_at_least
from ..registry import MODELS
from .backbone_params import DiTParams, build_backbone
from .diffusion_settings import TIME_EPS_RANGE, ScheduleName, check_ell
from .window_search import WindowSearch

__all__ = ["BD3LMParams", "BD3LM"]


@dataclass(frozen=True)
class BD3LMParams:
    """Block diffusion: BD3-LM (ell = 1) or block diffusion over ell sub-tokens."""

    LATER_FIELDS: ClassVar[tuple[str, ...]] = (
        "resample",
        "window_search_batch",
        "ignore_bos",
        "window_search_strata",
    )

    block_size: int = 4
    """L', tokens per block: autoregressive across blocks, masked diffusion inside one
    (the paper's BD3-LM row: 4); L' = L is MDLM / MDLM-Prime."""
    ell: int = 1
    """Sub-tokens per token inside a block, with the joint decoder; 1: BD3-LM itself."""
    carry_over: bool = True
    """Keep revealed digits fixed: the joint softmax covers only the tokens consistent with
    them (docs/method.md §5.2), in training, evaluation and sampling."""
    objective: Literal["published", "valid"] = "valid"
    """Per-block training loss: published is the paper's joint estimator, valid the marginal
    bound (docs/method.md §3.4); at ell = 1 both are the MDLM NELBO."""
    schedule: ScheduleName = "loglinear"
    """alpha_t inside a block (docs/method.md §3.1): loglinear is MDLM's 1 - (1 - 1e-3) t.
    BD3-LM's code, though it calls its schedule log-linear, masks with probability t
    (alpha_t = 1 - t, the linear schedule here); loglinear differs from it by 1e-3 t."""
    time_eps: float = field(default=1e-3, metadata=TIME_EPS_RANGE)
    """Smallest diffusion time of training and evaluation, t in [eps, 1); keeps the loss
    weight w(t) (1/t for loglinear) finite."""
    window: tuple[float, float] | None = None
    """Training times [beta, omega], BD3-LM's clipped schedule (beta is raised to time_eps);
    null: [time_eps, 1], the unbiased NELBO. Evaluation always uses [time_eps, 1]."""
    window_search_every: int = 0
    """Every this many optimizer steps, set the window to the candidate of least per-block
    loss variance on held-out rows (:mod:`baselines.clipped_windows`); 0: never."""
    window_search_rows: int = 64
    """Held-out rows (the first of the validation split) the window search scores on."""
    window_search_batch: int = 0
    """Rows of one search batch: variances are taken per batch and summed; 0: one batch."""
    window_search_strata: int | None = None
    """The search's block times are stratified over each run of n rows x blocks of a
    search batch (bd3lms: each GPU's validation call of 16 rows); n divides the rows of
    every search batch. null: over the whole batch's rows x blocks."""
    resample: bool = False
    """Redraw each block's mask until its masked fraction lies in the training window
    (BD3-LM's training.resample; :mod:`baselines.block_masks`)."""
    ignore_bos: bool = False
    """Position 0 is given: never masked in training and evaluation, not scored (the NLL
    per token is over L - 1 tokens), and the BOS token in samples (BD3-LM's
    algo.ignore_bos; :mod:`baselines.first_token`)."""
    attention: Literal["auto", "sdpa", "flex"] = "auto"
    """How the block-causal training mask is applied: flex is a flex-attention BlockMask that
    skips masked tiles (CUDA), sdpa dense boolean masks; auto: flex on CUDA, else sdpa."""
    backbone: DiTParams = field(default_factory=DiTParams)
    """The transformer; time_conditioned must be false (a sequence's blocks have different
    times)."""

    def __post_init__(self) -> None:
        require_at_least(self, "model", ("block_size", "ell", "window_search_rows"))
        for name in ("window_search_every", "window_search_batch"):
            if getattr(self, name) < 0:
                raise ConfigError(f"model.{name}: must be >= 0, got {getattr(self, name)}")
        strata, batch = self.window_search_strata, self.window_search_batch
        if strata is not None and not (strata >= 1 and (batch or strata) % strata == 0):
            divides = f" dividing model.window_search_batch={batch}" if batch else ""
            raise ConfigError(
                f"model.window_search_strata: expected null or an n >= 1{divides}, got {strata}"
            )
        if self.window is not None and not 0.0 <= self.window[0] < self.window[1] <= 1.0:
            raise ConfigError(
                f"model.window: expected [beta, omega] with 0 <= beta < omega <= 1, "
                f"got {list(self.window)}"
            )
        if self.backbone.time_conditioned:
            raise ConfigError(
                "model.backbone.time_conditioned: block diffusion needs false "
                "(the blocks of a sequence have different times)"
            )


@MODELS.register("bd3lm")
class BD3LM(ModelEntry):
    """BD3-LM: autoregressive over blocks of L' tokens, masked diffusion inside a block;
    with ell > 1 the diffusion runs over the block's sub-tokens (joint decoder)."""

    Params = BD3LMParams

    @classmethod
    def training_callbacks(cls, params: BD3LMParams, task: Task, seed: int) -> list[Any]:
        """BD3-LM's data-driven schedule: the window search on the task's held-out rows."""
        if not params.window_search_every:
            return []
        rows = task.validation_rows()
        every, count = params.window_search_every, params.window_search_rows
        batch, strata = params.window_search_batch, params.window_search_strata
        return [WindowSearch(rows, every, count, seed, batch, strata)]

    @classmethod
    def check_data(cls, params: BD3LMParams, data: DataSpec) -> None:
        check_ell(params.ell, data.num_classes)
        if params.block_size > data.seq_len:
            raise ConfigError(
                f"model.block_size: {params.block_size} exceeds the sequence length {data.seq_len}"
            )
        if params.ignore_bos and data.bos_id is None:
            raise ConfigError("model.ignore_bos: the task's data has no BOS token to start from")

    @classmethod
    def build(cls, params: BD3LMParams, data: DataSpec) -> BlockDiffusion:
        cls.check_data(params, data)
        codec = SubTokenizer(data.num_classes, params.ell)
        network = build_backbone(params.backbone, data, params.ell, codec.base, data.num_classes)
        return BlockDiffusion(
            network,
            codec,
            params.block_size,
            params.schedule,
            carry_over=params.carry_over,
            objective=params.objective,
            time_eps=params.time_eps,
            window=params.window,
            attention=params.attention,
            resample=params.resample,
            ignore_bos=params.ignore_bos,
            bos_id=data.bos_id,
        )
