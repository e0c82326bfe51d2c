"""Detokenizers of the zero-shot sets (docs/method.md §7.2).

Several evaluation sets ship pre-tokenized text ("do n't", " @-@ ", "( x )", "<unk>");
before GPT-2 tokenization it is turned back into ordinary prose so that perplexities are
comparable with published ones. The rule sets are those of MDLM, which the MDM-Prime
authors use unchanged:

- kuleshov-group/mdlm ``dataloader.py`` at commit
  c112c526d193436838c98d81455ee51f90309470: ``wt_detokenizer``, ``ptb_detokenizer``,
  ``lm1b_detokenizer``, ``lambada_detokenizer``, ``scientific_papers_detokenizer``
  (lines 24-103), chosen per set in ``get_dataset`` (lines 385-396);
- chen-hao-chao/mdm-prime ``text/dataloader.py`` at commit
  17b948913d686384f26c66050858dc9ab53e2588: the same five functions, rule for rule
  (lines 25-104), chosen the same way (lines 397-408).

Which set takes which rules there: WikiText -> ``wikitext``; PTB -> ``ptb``; LM1B ->
``lm1b``; LAMBADA -> ``lambada``; PubMed and arXiv -> ``scientific_papers`` (the WikiText
rules, then the LM1B rules); AG News and OpenWebText -> none.

Each detokenizer is an ordered list of rewrites applied once, left to right, to the
whole document. A rewrite is either a literal substitution (every non-overlapping
occurrence, scanning left to right, as ``str.replace``) or a regular expression
substitution (``re.sub``, where ``$`` also matches just before a final newline).
Order matters: a later rule sees the output of the earlier ones.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

__all__ = [
    "DETOKENIZERS",
    "RULES_VERSION",
    "lambada",
    "lm1b",
    "ptb",
    "scientific_papers",
    "wikitext",
]

RULES_VERSION = 2
"""Part of the cache key of detokenized token blocks; raise it whenever a rule changes,
so that blocks built with older rules are never reused."""

Rule = tuple[str | re.Pattern[str], str]
"""(literal or compiled pattern, replacement); a pattern's replacement may use \\1."""


def _apply(text: str, rules: Sequence[Rule]) -> str:
    for find, repl in rules:
        text = find.sub(repl, text) if isinstance(find, re.Pattern) else text.replace(find, repl)
    return text


def _spaced_before(marks: str) -> list[Rule]:
    """' x ' -> 'x ' for each punctuation mark x: the space before it goes."""
    return [(f" {m} ", f"{m} ") for m in marks]


def _inner_trim(open_: str, close: str) -> Rule:
    """'<open> inner <close>' -> '<open>inner<close>': any whitespace just inside a pair
    goes; the pair is the nearest closing mark after an opening one, so the inner part
    holds no closing mark (for quotes, opening and closing are the same character)."""
    o, c = re.escape(open_), re.escape(close)
    return re.compile(rf"{o}\s*([^{c}]*?)\s*{c}"), rf"{open_}\1{close}"


# WikiText (MDLM wt_detokenizer). The second rule is MDLM's as written: the pattern
# reads a literal "/' d/" (d an ASCII digit) and the replacement is the literal text
# "/'[0-9]/", so it almost never fires; it is kept for equality.
_WIKITEXT: list[Rule] = [
    ("s '", "s'"),
    (re.compile(r"/' [0-9]/"), "/'[0-9]/"),
    (" @-@ ", "-"),
    (" @,@ ", ","),
    (" @.@ ", "."),
    *_spaced_before(":;.!?,"),
    _inner_trim("(", ")"),
    _inner_trim("[", "]"),
    _inner_trim("{", "}"),
    _inner_trim('"', '"'),
    _inner_trim("'", "'"),
    ("= = = =", "===="),
    ("= = =", "==="),
    ("= =", "=="),
    (" \u00b0 ", "\u00b0"),
    (" \n", "\n"),
    ("\n ", "\n"),
    (" N ", " 1 "),
    (" 's", "'s"),
]

# Penn Treebank (MDLM ptb_detokenizer). A number is the token "N" there; MDLM
# rewrites " N " to " 1 " repeatedly, since one non-overlapping pass turns only every
# other N of a run "N N N" into 1 (the shared space is used up); a second pass takes the
# rest. The fixed point, every N with a space on both sides turned into 1, is what the
# lookarounds below give in one pass; the spaces stay, the N is not glued to its
# neighbours. "<unk>" (an out-of-vocabulary word) becomes "?", the escaped slash "\/"
# a plain "/".
_PTB: list[Rule] = [
    (" 's", "'s"),
    ("s ' ", "s' "),
    (" n't", "n't"),
    (" \n ", "\n"),
    ("\\/", "/"),
    (re.compile(r"(?<= )N(?= )"), "1"),
    ("$ 1", "$1"),
    ("# 1", "#1"),
    ("<unk>", "?"),
]

# One Billion Word (MDLM lm1b_detokenizer). "?" and "!" lose the space before them both
# inside a line and at its end; "." only after a word (\w+) preceded by a space.
_LM1B: list[Rule] = [
    ("http : / / ", "http://"),
    ("https : / / ", "https://"),
    (re.compile(r" '(\w+)"), r"'\1"),
    (re.compile(r" (\w+) \. "), r" \1. "),
    (re.compile(r" (\w+) \.$"), r" \1."),
    (" ? ", "? "),
    (re.compile(r" \?$"), "?"),
    (" ! ", "! "),
    (re.compile(r" !$"), "!"),
    *_spaced_before(",:;"),
    (" / ", "/"),
    (re.compile(r'" ([^"]+) "'), r'"\1"'),
    (re.compile(r"' ([^']+) '"), r"'\1'"),
    (re.compile(r"\( ([^()]+) \)"), r"(\1)"),
    (re.compile(r"\[ ([^\[\]]+) \]"), r"[\1]"),
    ("$ ", "$"),
    ("\u00a3 ", "\u00a3"),
]

# LAMBADA (MDLM lambada_detokenizer): curly double quotes become straight ones.
_LAMBADA: list[Rule] = [("\u201c", '"'), ("\u201d", '"')]


def wikitext(text: str) -> str:
    """WikiText-2/103 raw (MDLM ``wt_detokenizer``): plural possessives "s '" -> "s'";
    number separators " @-@ " -> "-", " @,@ " -> ",", " @.@ " -> "."; no space before
    : ; . ! ? , when spaced on both sides; whitespace inside (), [], {}, "" and '' trimmed;
    heading marks "= = =" -> "==="; " ° " -> "°"; spaces next to newlines dropped;
    " N " -> " 1 "; " 's" -> "'s"."""
    return _apply(text, _WIKITEXT)


def ptb(text: str) -> str:
    """Penn Treebank, ptb_text_only (MDLM ``ptb_detokenizer``): " 's" -> "'s";
    "s ' " -> "s' "; " n't" -> "n't"; " \\n " -> "\\n"; "\\/" -> "/"; every "N" with a
    space on each side -> "1" (spaces kept); "$ 1" -> "$1"; "# 1" -> "#1";
    "<unk>" -> "?"."""
    return _apply(text, _PTB)


def lm1b(text: str) -> str:
    """One Billion Word (MDLM ``lm1b_detokenizer``): "http : / / " -> "http://" (and
    https); " 'xyz" -> "'xyz"; " word . " -> " word. " and a line-final " word ." ->
    " word."; " ? " -> "? " and a final " ?" -> "?", likewise "!"; " , ", " : ", " ; " ->
    ", ", ": ", "; "; " / " -> "/"; '" x "' -> '"x"', "' x '" -> "'x'", "( x )" -> "(x)",
    "[ x ]" -> "[x]" (nothing of the pair inside); "$ " -> "$", "£ " -> "£"."""
    return _apply(text, _LM1B)


def lambada(text: str) -> str:
    """LAMBADA, OpenAI's test set (MDLM ``lambada_detokenizer``): curly double quotes
    to straight ones, surrounding whitespace stripped, one leading newline."""
    return "\n" + _apply(text, _LAMBADA).strip()


def scientific_papers(text: str) -> str:
    """PubMed / arXiv articles (MDLM ``scientific_papers_detokenizer``): the WikiText
    rules, then the LM1B rules on their output."""
    return lm1b(wikitext(text))


DETOKENIZERS: dict[str, Callable[[str], str]] = {
    "wikitext": wikitext,
    "ptb": ptb,
    "lm1b": lm1b,
    "lambada": lambada,
    "scientific_papers": scientific_papers,
}
