"""Model registry entries: typed parameters -> a model with ``training_loss`` and ``losses``.

@MODELS.register("name")
class Entry(ModelEntry):
    Params = SomeFrozenDataclass
    @classmethod
    def build(cls, params, data): ...
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from baselines import AutoregressiveLM, BlockDiffusion, build_mdm
from prime import MaskedDiffusion, SubTokenizer, masking_problem

from .backbones import ARMParams, BackboneParams, DiTParams, ToyMLPParams, build_backbone
from .core import ConfigError, DataSpec, ModelEntry, Task, require_at_least
from .diffusion_settings import MaskingName, ScheduleName, check_train_time_eps
from .mixture_model import MixtureParams  # registers mdm-mixture
from .registry import MODELS
from .window_search import WindowSearch

__all__ = ["ModelEntry", "PrimeParams", "MDMParams", "ARParams", "BD3LMParams", "MixtureParams"]


@dataclass(frozen=True)
class PrimeParams:
    # Added after run ids were in use: left out of the run id at their defaults.
    LATER_FIELDS: ClassVar[tuple[str, ...]] = ("masking", "train_time_eps")

    ell: int = 2
    """Sub-tokens per token: ell base-b digits, b the smallest integer with b^ell >= C
    (PRIME_SPEC §2); 1: MDM / MDLM, the whole token is one sub-token."""
    decoder: Literal["joint", "independent"] = "joint"
    """p_theta(x_0^i | y_t): joint is one softmax over the C tokens (the paper's); independent
    is a product of ell softmaxes over b digits (PRIME_SPEC §5.3; can yield codes >= C)."""
    carry_over: bool = True
    """Keep revealed digits fixed: the joint softmax covers only the tokens consistent with
    them (PRIME_SPEC §5.2), revealed independent digits are one-hot. Used in training,
    evaluation and (unless the task overrides it) sampling."""
    objective: Literal["published", "valid", "cross_entropy"] = "published"
    """Training loss: published is w(t) (-log p(x_0^i | y_t)), not a bound for ell > 1
    (PRIME_SPEC §3.3); valid is the marginal bound (§3.4); cross_entropy is the unweighted
    -log p(x_0^i | y_t) at every token (the image models). Evaluation reports both estimators."""
    schedule: ScheduleName = "loglinear"
    """alpha_t, the probability that a sub-token is unmasked at time t (PRIME_SPEC §3.1):
    loglinear is 1 - (1 - 1e-3) t (text), polynomial (1 - t)^3 (images), linear 1 - t (toy)."""
    time_eps: float = 1e-3
    """Smallest diffusion time of the likelihood estimates and (unless train_time_eps is
    set) of training, t in [eps, 1); keeps the loss weight w(t) (1/t for linear and
    loglinear) finite. MDLM: 1e-3."""
    train_time_eps: float | None = None
    """Smallest diffusion time of training, t in [train_time_eps, 1); null: time_eps. 0:
    t ~ U[0, 1) (the authors' image training), for the cross-entropy objective only."""
    backbone: BackboneParams = field(default_factory=ToyMLPParams)
    """The denoiser network: ``name`` picks toy-mlp (2-D toy), dit (text) or unet (images)."""
    masking: MaskingName = "independent"
    """Training's y_t at time t: independent masks each sub-token with probability
    1 - alpha_t (MDLM, the paper); at_least_one masks one sub-token of each sequence for
    sure and reweights by the likelihood ratio (prime.mask_at_least_one): the same
    objective, less variance on short sequences. Not with a loss that charges a clean
    sequence (cross_entropy, published without carry-over)."""

    def __post_init__(self) -> None:
        if self.ell < 1:
            raise ConfigError(f"model.ell: must be >= 1, got {self.ell}")
        if not 0.0 <= self.time_eps < 1.0:
            raise ConfigError(f"model.time_eps: must be in [0, 1), got {self.time_eps}")
        check_train_time_eps(self.train_time_eps, self.objective)
        problem = masking_problem(self.masking, self.objective, self.carry_over)
        if problem:
            raise ConfigError(f"model.masking: {problem}")


@MODELS.register("prime")
class Prime(ModelEntry):
    """MDM-Prime: ell sub-tokens per token, joint (carry-over on/off) or independent decoder."""

    Params = PrimeParams

    @classmethod
    def build(cls, params: PrimeParams, data: DataSpec) -> MaskedDiffusion:
        codec = SubTokenizer(data.num_classes, params.ell)
        out_dim = data.num_classes if params.decoder == "joint" else params.ell * codec.base
        network = build_backbone(params.backbone, data, params.ell, codec.base, out_dim)
        return MaskedDiffusion(
            network,
            codec,
            params.schedule,
            decoder=params.decoder,
            carry_over=params.carry_over,
            objective=params.objective,
            time_eps=params.time_eps,
            train_time_eps=params.train_time_eps,
            masking=params.masking,
        )


@dataclass(frozen=True)
class MDMParams:
    # out of run ids at their defaults
    LATER_FIELDS: ClassVar[tuple[str, ...]] = ("masking", "train_time_eps")

    schedule: ScheduleName = "loglinear"
    """alpha_t, the probability that a token is unmasked at time t (PRIME_SPEC §3.1):
    loglinear 1 - (1 - 1e-3) t for MDLM (text), polynomial (1 - t)^3 for the image MDM."""
    time_eps: float = 1e-3
    """Smallest diffusion time of the likelihood estimates and (unless train_time_eps is
    set) of training, t in [eps, 1); keeps the loss weight w(t) finite. MDLM: 1e-3."""
    train_time_eps: float | None = None
    """Smallest diffusion time of training, t in [train_time_eps, 1); null: time_eps. 0:
    t ~ U[0, 1) (the authors' image training), for the cross-entropy objectives only."""
    objective: Literal["valid", "cross_entropy", "cross_entropy_257"] = "valid"
    """Training loss: valid is the continuous-time NELBO (MDLM's; at ell = 1 the published
    estimator is the same); cross_entropy is unweighted -log p at every token (images);
    cross_entropy_257 that over C + 1 outputs, the mask class too (prime.mask_class)."""
    backbone: BackboneParams = field(default_factory=ToyMLPParams)
    """The denoiser network: ``name`` picks toy-mlp (2-D toy), dit (text) or unet (images)."""
    masking: MaskingName = "independent"
    """Training's x_t: independent (MDLM) or at_least_one (one token of each sequence
    masked for sure, reweighted: the same NELBO, less variance; valid objective only)."""

    def __post_init__(self) -> None:
        check_train_time_eps(self.train_time_eps, self.objective)
        problem = masking_problem(self.masking, self.objective, carry_over=True)
        if problem:
            raise ConfigError(f"model.masking: {problem}")


@MODELS.register("mdm")
class MDM(ModelEntry):
    """MDM / MDLM: masked diffusion over whole tokens (Prime with ell = 1)."""

    Params = MDMParams

    @classmethod
    def build(cls, params: MDMParams, data: DataSpec) -> MaskedDiffusion:
        out_dim = data.num_classes + (params.objective == "cross_entropy_257")  # mask class
        network = build_backbone(params.backbone, data, 1, data.num_classes, out_dim)
        return build_mdm(
            network,
            data.num_classes,
            params.schedule,
            time_eps=params.time_eps,
            train_time_eps=params.train_time_eps,
            objective=params.objective,
            masking=params.masking,
        )


@dataclass(frozen=True)
class ARParams:
    backbone: DiTParams | ARMParams = field(default_factory=DiTParams)
    """The causal network: dit is the suite's DiT with causal attention (adaLN-zero from
    t = 0); arm the authors' ARM, a plain pre-LayerNorm transformer (the paper's AR row)."""


@MODELS.register("ar")
class AR(ModelEntry):
    """Autoregressive baseline: a causal transformer, next-token loss."""

    Params = ARParams

    @classmethod
    def build(cls, params: ARParams, data: DataSpec) -> AutoregressiveLM:
        c = data.num_classes
        network = build_backbone(params.backbone, data, 1, c, c, causal=True)
        return AutoregressiveLM(network, c, bos_id=data.bos_id)


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
    them (PRIME_SPEC §5.2), in training, evaluation and sampling."""
    objective: Literal["published", "valid"] = "valid"
    """Per-block training loss: published is the paper's joint estimator, valid the marginal
    bound (PRIME_SPEC §3.4); at ell = 1 both are the MDLM NELBO."""
    schedule: ScheduleName = "loglinear"
    """alpha_t inside a block (PRIME_SPEC §3.1); BD3-LM and MDLM: loglinear, 1 - (1 - 1e-3) t."""
    time_eps: float = 1e-3
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
        if not 0.0 <= self.time_eps < 1.0:
            raise ConfigError(f"model.time_eps: must be in [0, 1), got {self.time_eps}")
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
    def build(cls, params: BD3LMParams, data: DataSpec) -> BlockDiffusion:
        if params.block_size > data.seq_len:
            raise ConfigError(
                f"model.block_size: {params.block_size} exceeds the sequence length {data.seq_len}"
            )
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
