"""Documents wrapped without their EOS (bd3lms's insert_valid_eos=False): the rows, the
cache key, the text task's held-out rows (task.heldout_doc_eos) and the zero-shot sets
(task.doc_eos)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from benchmarks.config.validation import build_dataclass
from benchmarks.core import ConfigError
from benchmarks.data.blocks import block_count, wrap_blocks
from benchmarks.data.text import tokenized_blocks
from benchmarks.data.text_sources import OPENWEBTEXT
from benchmarks.data.tokenizers import ByteTokenizer
from benchmarks.tasks import zero_shot
from benchmarks.tasks.text import TextLM
from benchmarks.tasks.text_params import TextLMParams
from benchmarks.tasks.zero_shot import TextZeroShot, ZeroShotParams

B, E = 90, 91  # BOS, EOS
DOCS = [[1, 2], [3], [4, 5, 6, 7], [8], [9, 10], [11], [12, 13, 14, 15, 16]]


def test_rows_without_document_eos_are_the_documents_tokens_alone():
    # one stream 1 .. 16 -> bodies of 3, the tail 16 dropped
    blocks = wrap_blocks(DOCS, 5, B, E, doc_eos=False)
    bodies = [[1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 12], [13, 14, 15]]
    assert blocks.tolist() == [[B, *body, E] for body in bodies]
    # groups of 3 documents: 1 .. 7 | 8 .. 11 | 12 .. 16, each cut on its own
    grouped = wrap_blocks(DOCS, 5, B, E, group_docs=3, doc_eos=False)
    assert grouped.tolist() == [
        [B, 1, 2, 3, E],
        [B, 4, 5, 6, E],
        [B, 8, 9, 10, E],
        [B, 12, 13, 14, E],
    ]
    plain = wrap_blocks(DOCS, 4, B, E, group_docs=3, specials=False, doc_eos=False)
    assert plain.tolist() == [[1, 2, 3, 4], [8, 9, 10, 11], [12, 13, 14, 15]]
    assert block_count([len(d) for d in DOCS], 4, 3, specials=False) == 3
    out = np.zeros((4, 5), dtype=np.int64)  # streamed into a preallocated array alike
    wrap_blocks(iter(DOCS), 5, B, E, group_docs=3, doc_eos=False, out=out)
    assert out.tolist() == grouped.tolist()


def _parquet(path, texts):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": texts}), path)


def test_the_cache_is_keyed_by_the_document_eos_only_when_dropped(tmp_path):
    docs = [f"doc {i} " + "x" * (i % 5) for i in range(12)]
    _parquet(tmp_path / "owt.parquet", docs)
    source, tok = replace(OPENWEBTEXT, path=str(tmp_path / "owt.parquet")), ByteTokenizer()
    cache = tmp_path / "cache"
    kept = tokenized_blocks(source, tok, 8, cache_dir=cache, group_docs=3)
    dropped = tokenized_blocks(source, tok, 8, cache_dir=cache, group_docs=3, doc_eos=False)
    assert kept.path != dropped.path and not dropped.cache_hit
    assert "doc_eos" not in kept.meta and dropped.meta["doc_eos"] is False
    ids = tok.encode_batch(docs)
    want = wrap_blocks(ids, 8, tok.bos_id, tok.eos_id, group_docs=3, doc_eos=False)
    assert np.array_equal(dropped.blocks, want)
    assert dropped.meta["tokens"] == sum(len(i) for i in ids) == kept.meta["tokens"] - 12
    again = tokenized_blocks(source, tok, 8, cache_dir=cache, group_docs=3, doc_eos=False)
    assert again.cache_hit and again.path == dropped.path


def test_the_held_out_rows_drop_the_eos_and_the_evaluation_keeps_it(tmp_path, monkeypatch):
    docs = [f"doc {i} " + "x" * (i % 5) for i in range(12)]
    _parquet(tmp_path / "owt.parquet", docs)
    monkeypatch.setenv("PRIMEBENCH_DATA_CACHE", str(tmp_path / "cache"))
    params = TextLMParams(
        dataset="openwebtext",
        path=str(tmp_path / "owt.parquet"),
        block_size=8,
        validation_docs=6,
        block_specials=False,
        heldout_doc_eos=False,
    )
    task, tok = TextLM(params, None), ByteTokenizer()
    ids = tok.encode_batch(docs[-6:])
    held_out = task.validation_rows().array
    want = wrap_blocks(ids, 8, tok.bos_id, tok.eos_id, specials=False, doc_eos=False)
    assert np.array_equal(held_out, want) and tok.eos_id not in held_out
    evaluated = task._blocks("validation")
    assert np.array_equal(evaluated, wrap_blocks(ids, 8, tok.bos_id, tok.eos_id, specials=False))


def test_the_zero_shot_sets_are_read_with_the_setting(monkeypatch):
    seen = {}

    def stop(source, tokenizer, block_size, **kwargs):
        seen.update(kwargs)
        raise RuntimeError("read")

    monkeypatch.setattr(zero_shot, "tokenized_blocks", stop)
    task = TextZeroShot(
        ZeroShotParams(sets=("ptb",), tokenizer="bytes", group_docs=1000, doc_eos=False), None
    )
    with pytest.raises(RuntimeError, match="read"):
        task.evaluate(None, None)
    assert seen["doc_eos"] is False and seen["group_docs"] == 1000


def test_the_settings_are_validated_and_left_out_of_run_ids_at_their_defaults():
    with pytest.raises(ConfigError, match=r"task\.heldout_doc_eos: expected true or false"):
        build_dataclass(TextLMParams, {"heldout_doc_eos": "no"}, "task")
    with pytest.raises(ConfigError, match=r"task\.doc_eos: expected true or false"):
        build_dataclass(ZeroShotParams, {"doc_eos": 0}, "task")
    assert "heldout_doc_eos" in TextLMParams.LATER_FIELDS
    assert "doc_eos" in ZeroShotParams.LATER_FIELDS
    assert TextLMParams().heldout_doc_eos is True and ZeroShotParams().doc_eos is True
