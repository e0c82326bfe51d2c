"""The zero-shot detokenizers, rule by rule.

Every expected string is worked out by hand from the rule it names (MDLM's rule sets,
which the MDM-Prime authors use unchanged); near misses check that a rule fires only
where its pattern says.
"""

from dataclasses import replace

import pytest

from benchmarks.data import detokenizers as detok
from benchmarks.data import text as text_module
from benchmarks.data.text_sources import ZERO_SHOT
from benchmarks.data.tokenizers import ByteTokenizer

WIKITEXT_CASES = [
    # plural possessive "s '" -> "s'"
    ("the players ' union", "the players' union"),
    # MDLM's literal "/' d/" rule: the replacement is the text "/'[0-9]/"
    ("a /' 7/ b", "a /'[0-9]/ b"),
    # number separators, then " , " -> ", "
    ("a 1 @,@ 000 @-@ year war , 3 @.@ 5 m", "a 1,000-year war, 3.5 m"),
    # the space before : ; . ! ? , goes when the mark is spaced on both sides
    ("a : b ; c . d ! e ? f , g", "a: b; c. d! e? f, g"),
    ("the end .", "the end ."),  # no space after: untouched
    # whitespace just inside brackets and quotes
    ("in ( 1999 ) and [ 2 ] or { x }", "in (1999) and [2] or {x}"),
    ("( a\n)", "(a)"),
    ('he said " hello there " twice', 'he said "hello there" twice'),
    ("the ' No ' vote", "the 'No' vote"),
    # heading marks; then the space before the newline goes
    (" = = = = Sub = = = = \n", " ==== Sub ====\n"),
    (" = = = Title = = = \n", " === Title ===\n"),
    (" = = T = = \n", " == T ==\n"),
    # degree sign
    ("it was 20 \u00b0 C", "it was 20\u00b0C"),
    # spaces next to a newline
    ("a \n b", "a\nb"),
    # " N " -> " 1 " (spaces kept), clitic " 's"
    ("about N people", "about 1 people"),
    ("the king 's men", "the king's men"),
]

PTB_CASES = [
    ("the company 's shares", "the company's shares"),
    ("the investors ' money", "the investors' money"),
    ("it does n't matter", "it doesn't matter"),
    ("a \n b", "a\nb"),
    ("a \nb", "a \nb"),  # only " \n " with spaces on both sides
    ("the price\\/earnings ratio", "the price/earnings ratio"),
    # every N with a space on each side becomes 1, runs included; spaces stay
    ("N of the N N N stocks rose N", "N of the 1 1 1 stocks rose N"),
    ("the N.V. unit of Nissan", "the N.V. unit of Nissan"),
    # currency and number sign, after N -> 1
    ("it cost $ N million", "it cost $1 million"),
    ("up $ 100 today", "up $100 today"),
    ("ranked # N in sales", "ranked #1 in sales"),
    # out-of-vocabulary words
    ("the <unk> said", "the ? said"),
    (
        "mr. <unk> 's firm does n't expect $ N billion",
        "mr. ?'s firm doesn't expect $1 billion",
    ),
]

LM1B_CASES = [
    ("see http : / / www.x.com now", "see http://www.x.com now"),
    ("see https : / / x.org now", "see https://x.org now"),
    # " 'word" -> "'word"
    ("it 's John 's", "it's John's"),
    # " word . " -> " word. ", and at the end " word ." -> " word."
    ("He left . She stayed .", "He left. She stayed."),
    ("he left .\n", "he left.\n"),  # "$" also matches before a final newline
    ("end .", "end ."),  # no space before the word: untouched
    ("a b . c . d", "a b. c . d"),  # non-overlapping: " c" lost its leading space
    # "?" and "!" inside a line and at its end
    ("why ? Because", "why? Because"),
    ("really ?", "really?"),
    ("wow ! yes !", "wow! yes!"),
    ("a , b : c ; d", "a, b: c; d"),
    ("and / or", "and/or"),
    # quotes and brackets with exactly one space inside
    ('he said " go home " .', 'he said "go home" .'),
    ("the ' big ' one", "the 'big' one"),
    ("( see below )", "(see below)"),
    ("( a ( b ) )", "( a (b) )"),  # one pass: the inner pair only
    ("[ 1 ]", "[1]"),
    ("$ 5 and \u00a3 3", "$5 and \u00a33"),
]

LAMBADA_CASES = [
    ("\u201cHi,\u201d she said.  ", '\n"Hi," she said.'),
    ("\n  some text \n", "\nsome text"),
    ("it\u2019s", "\nit\u2019s"),  # single curly quotes stay
]

SCIENTIFIC_CASES = [
    ("the cells ( n = 5 ) grew .", "the cells (n = 5) grew."),
    ("is it ?", "is it?"),  # the LM1B rule after the WikiText ones
    ("a 1 @.@ 5 ratio", "a 1.5 ratio"),
    # WikiText's " : " -> ": " runs first, so LM1B's "http : / / " no longer matches
    # and only " / " -> "/" applies to the first slash
    ("see http : / / a.org , in [ 2 ] .", "see http:// a.org, in [2] ."),
]


@pytest.mark.parametrize(
    ("fn", "raw", "want"),
    [(detok.wikitext, r, w) for r, w in WIKITEXT_CASES]
    + [(detok.ptb, r, w) for r, w in PTB_CASES]
    + [(detok.lm1b, r, w) for r, w in LM1B_CASES]
    + [(detok.lambada, r, w) for r, w in LAMBADA_CASES]
    + [(detok.scientific_papers, r, w) for r, w in SCIENTIFIC_CASES],
)
def test_each_rule(fn, raw, want):
    assert fn(raw) == want


def test_ptb_numbers_keep_their_spaces_in_long_runs():
    raw = "from" + " N" * 50 + " to"
    assert detok.ptb(raw) == "from" + " 1" * 50 + " to"


def test_zero_shot_sets_take_the_rules_mdlm_assigns():
    assert {name: src.detokenizer for name, src in ZERO_SHOT.items()} == {
        "lambada": "lambada",
        "wikitext": "wikitext",
        "ptb": "ptb",
        "lm1b": "lm1b",
        "ag_news": None,
        "pubmed": "scientific_papers",
        "arxiv": "scientific_papers",
    }
    assert set(detok.DETOKENIZERS) == {s.detokenizer for s in ZERO_SHOT.values()} - {None}
    assert (ZERO_SHOT["ptb"].column, ZERO_SHOT["pubmed"].column) == ("sentence", "article")
    splits = {name: src.split for name, src in ZERO_SHOT.items()}
    assert splits == {
        "lambada": "test",
        "wikitext": "validation",
        "ptb": "validation",
        "lm1b": "test",
        "ag_news": "test",
        "pubmed": "validation",
        "arxiv": "validation",
    }


def _parquet(path, column, texts):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({column: texts}), path)


def test_new_rules_never_reuse_blocks_built_with_old_ones(tmp_path, monkeypatch):
    _parquet(tmp_path / "ptb.parquet", "sentence", ["the <unk> rose N %"])
    _parquet(tmp_path / "ag.parquet", "text", ["plain news text"])
    ptb = replace(ZERO_SHOT["ptb"], path=str(tmp_path / "ptb.parquet"))
    ag = replace(ZERO_SHOT["ag_news"], path=str(tmp_path / "ag.parquet"))
    tok, cache = ByteTokenizer(), tmp_path / "cache"

    first = text_module.tokenized_blocks(ptb, tok, 4, cache_dir=cache)
    body = bytes(int(t) for t in first.blocks[:, 1:-1].ravel() if t != tok.eos_id)
    assert body.decode().startswith("the ? rose 1 %"[: len(body)])
    plain = text_module.tokenized_blocks(ag, tok, 4, cache_dir=cache)
    monkeypatch.setattr(text_module, "RULES_VERSION", detok.RULES_VERSION + 1)
    again = text_module.tokenized_blocks(ptb, tok, 4, cache_dir=cache)
    assert not again.cache_hit and again.path != first.path
    # a set without a detokenizer keeps its key
    kept = text_module.tokenized_blocks(ag, tok, 4, cache_dir=cache)
    assert kept.cache_hit and kept.path == plain.path
