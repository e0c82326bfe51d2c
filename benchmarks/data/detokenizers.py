"""Detokenizers of the zero-shot sets (PRIME_SPEC §7.2).

Several evaluation sets ship pre-tokenized text ("don 't", " @-@ ", "( x )"); before
GPT-2 tokenization it is turned back into ordinary prose, as MDLM and its predecessors
do, so that perplexities are comparable with theirs.
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = ["DETOKENIZERS", "wikitext", "ptb", "lm1b", "lambada", "scientific_papers"]


def _replace_all(text: str, pairs: list[tuple[str, str]]) -> str:
    for old, new in pairs:
        text = text.replace(old, new)
    return text


def _tighten_brackets(text: str, pairs: str) -> str:
    """'( x )' -> '(x)' for each opening/closing pair in ``pairs`` (e.g. '()[]{}')."""
    for open_, close in zip(pairs[::2], pairs[1::2], strict=True):
        o, c = re.escape(open_), re.escape(close)
        text = re.sub(rf"{o}\s*([^{c}]*?)\s*{c}", rf"{open_}\1{close}", text)
    return text


def wikitext(text: str) -> str:
    """WikiText-2/103 raw: number separators @-@ @,@ @.@, spaced punctuation, headings."""
    text = text.replace("s '", "s'")
    text = re.sub(r"/' [0-9]/", r"/'[0-9]/", text)
    text = _replace_all(text, [(" @-@ ", "-"), (" @,@ ", ","), (" @.@ ", ".")])
    text = _replace_all(
        text,
        [(" : ", ": "), (" ; ", "; "), (" . ", ". "), (" ! ", "! "), (" ? ", "? "), (" , ", ", ")],
    )
    text = _tighten_brackets(text, "()[]{}")
    text = re.sub(r"\"\s*([^\"]*?)\s*\"", r'"\1"', text)
    text = re.sub(r"'\s*([^']*?)\s*'", r"'\1'", text)
    text = _replace_all(text, [("= = = =", "===="), ("= = =", "==="), ("= =", "==")])
    text = _replace_all(text, [(" \u00b0 ", "\u00b0"), (" \n", "\n"), ("\n ", "\n")])
    return _replace_all(text, [(" N ", " 1 "), (" 's", "'s")])


def ptb(text: str) -> str:
    """Penn Treebank (ptb_text_only): split clitics, 'N' for numbers, spaced currency."""
    return _replace_all(
        text,
        [
            (" '", "'"),
            (" \n", "\n"),
            ("\n ", "\n"),
            (" n't", "n't"),
            (" N ", "1 "),
            ("$ 1", "$1"),
            ("# 1", "#1"),
        ],
    )


def lm1b(text: str) -> str:
    """One Billion Word: spaced URLs, clitics, punctuation, quotes and brackets."""
    text = _replace_all(text, [("http : / / ", "http://"), ("https : / / ", "https://")])
    text = re.sub(r" '(\w+)", r"'\1", text)
    text = re.sub(r" (\w+) \. ", r" \1. ", text)
    text = re.sub(r" (\w+) \.$", r" \1.", text)
    text = _replace_all(
        text,
        [(" ? ", "? "), (" ! ", "! "), (" , ", ", "), (" : ", ": "), (" ; ", "; "), (" / ", "/")],
    )
    text = re.sub(r"\" ([^\"]+) \"", r'"\1"', text)
    text = re.sub(r"' ([^']+) '", r"'\1'", text)
    text = re.sub(r"\( ([^()]+) \)", r"(\1)", text)
    text = re.sub(r"\[ ([^\[\]]+) \]", r"[\1]", text)
    return _replace_all(text, [("$ ", "$"), ("\u00a3 ", "\u00a3")])


def lambada(text: str) -> str:
    """LAMBADA (OpenAI's version): curly quotes to straight ones, a leading newline."""
    text = text.replace("\u201c", '"').replace("\u201d", '"')
    return "\n" + text.strip()


def scientific_papers(text: str) -> str:
    """PubMed / arXiv articles: the WikiText rules, then the LM1B rules."""
    return lm1b(wikitext(text))


DETOKENIZERS: dict[str, Callable[[str], str]] = {
    "wikitext": wikitext,
    "ptb": ptb,
    "lm1b": lm1b,
    "lambada": lambada,
    "scientific_papers": scientific_papers,
}
