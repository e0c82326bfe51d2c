"""Where the text corpora come from: OpenWebText and the seven zero-shot sets (hub ids,
configs, splits, text columns and detokenizers, docs/method.md §7.1-7.2)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TextSource", "OPENWEBTEXT", "ZERO_SHOT"]


@dataclass(frozen=True)
class TextSource:
    """Where the documents of one split come from."""

    name: str
    path: str  # hub dataset id, or a local file / directory
    config: str | None = None
    split: str = "train"
    column: str = "text"
    detokenizer: str | None = None
    revision: str | None = None


OPENWEBTEXT = TextSource("openwebtext", "Skylion007/openwebtext", split="train")

ZERO_SHOT: dict[str, TextSource] = {
    "lambada": TextSource(
        "lambada", "EleutherAI/lambada_openai", "default", "test", "text", "lambada"
    ),
    "wikitext": TextSource(
        "wikitext", "Salesforce/wikitext", "wikitext-2-raw-v1", "validation", "text", "wikitext"
    ),
    "ptb": TextSource("ptb", "ptb-text-only/ptb_text_only", None, "validation", "sentence", "ptb"),
    "lm1b": TextSource("lm1b", "dvruette/lm1b", None, "test", "text", "lm1b"),
    "ag_news": TextSource("ag_news", "fancyzhx/ag_news", None, "test", "text", None),
    "pubmed": TextSource(
        "pubmed", "armanc/scientific_papers", "pubmed", "validation", "article", "scientific_papers"
    ),
    "arxiv": TextSource(
        "arxiv", "armanc/scientific_papers", "arxiv", "validation", "article", "scientific_papers"
    ),
}
