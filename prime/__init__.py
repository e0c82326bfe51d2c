"""MDM-Prime: masked discrete diffusion with partial masking of sub-tokens.

Pure-torch building blocks: the sub-token codec, masking schedules, the forward
process, decoder parameterizations (the restricted softmax as reductions over the
digit grid; a head with a mask class), the two losses (published estimator and valid
bound), the reverse samplers (on a time grid with idle-step counting, and first-hitting),
and the closed-form idle analysis.
"""

from .codec import SubTokenizer, smallest_base
from .decoder.grid_draws import grid_sample
from .decoder.grid_softmax import GridSoftmax, grid_softmax
from .decoder.parameterization import (
    independent_log_probs,
    joint_log_probs,
    subs_log_probs,
    subtoken_log_marginals,
)
from .diffusion import MaskedDiffusion
from .losses import PrimeLosses, joint_decoder_losses, published_joint_loss, valid_marginal_bound
from .mask_class import clean_class_logits, mask_class_cross_entropy, mask_class_losses
from .noising import BatchShard, mask_at_least_one, mask_subtokens, masking_problem, sample_times
from .sampling.config import SamplerConfig
from .sampling.first_hitting import time_of_alpha
from .sampling.idle import (
    expected_batch_idle_steps,
    expected_idle_ratio,
    expected_idle_steps,
    expected_nfe_with_cache,
    idle_step_probabilities,
)
from .sampling.proposals import propose, sample_categorical, top_p_filter
from .sampling.sampler import Sampler
from .sampling.state import SampleResult
from .sampling.step_schedules import (
    corrector_schedule,
    temperature_schedule,
    time_grid,
    warped_grid,
)
from .schedules import (
    CosineSchedule,
    LinearSchedule,
    LogLinearSchedule,
    PolynomialSchedule,
    Schedule,
    get_schedule,
)

__all__ = [
    "SubTokenizer",
    "smallest_base",
    "MaskedDiffusion",
    "Schedule",
    "LinearSchedule",
    "LogLinearSchedule",
    "PolynomialSchedule",
    "CosineSchedule",
    "get_schedule",
    "BatchShard",
    "sample_times",
    "mask_subtokens",
    "mask_at_least_one",
    "masking_problem",
    "joint_log_probs",
    "grid_softmax",
    "GridSoftmax",
    "grid_sample",
    "independent_log_probs",
    "subs_log_probs",
    "subtoken_log_marginals",
    "published_joint_loss",
    "valid_marginal_bound",
    "joint_decoder_losses",
    "PrimeLosses",
    "clean_class_logits",
    "mask_class_cross_entropy",
    "mask_class_losses",
    "Sampler",
    "SamplerConfig",
    "time_of_alpha",
    "propose",
    "SampleResult",
    "sample_categorical",
    "time_grid",
    "top_p_filter",
    "warped_grid",
    "temperature_schedule",
    "corrector_schedule",
    "idle_step_probabilities",
    "expected_idle_steps",
    "expected_idle_ratio",
    "expected_batch_idle_steps",
    "expected_nfe_with_cache",
]
