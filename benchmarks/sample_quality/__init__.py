"""Sample quality of text: generative perplexity under a judge, unigram entropy, MAUVE.

Conventions follow the MDLM / BD3-LM / MDM-Prime code bases; each module's docstring
gives its source and what differs.
"""

from .entropy import EntropyResult, judge_unigram_entropy, sample_entropy, unigram_entropy
from .gen_ppl import GenPPLResult, generative_perplexity, scored_positions
from .hub_judge import PAPER_JUDGE, HubJudge
from .judge import Judge, JudgeUnavailableError
from .mauve_metric import MAUVE_DEFAULTS, MauveResult, mauve_score
from .retokenize import Retokenized, retokenize
from .suite_judge import SuiteJudge

__all__ = [
    "MAUVE_DEFAULTS",
    "PAPER_JUDGE",
    "EntropyResult",
    "GenPPLResult",
    "HubJudge",
    "Judge",
    "JudgeUnavailableError",
    "MauveResult",
    "Retokenized",
    "SuiteJudge",
    "generative_perplexity",
    "judge_unigram_entropy",
    "mauve_score",
    "retokenize",
    "sample_entropy",
    "scored_positions",
    "unigram_entropy",
]
