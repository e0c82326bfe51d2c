"""Block layouts of the text pipeline: grouping per g documents, rows without BOS/EOS,
and caches keyed by both (benchmarks.data.blocks, benchmarks.data.text)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from benchmarks.core import ConfigError
from benchmarks.data.blocks import block_count, wrap_blocks
from benchmarks.data.text import tokenized_blocks
from benchmarks.data.text_sources import OPENWEBTEXT
from benchmarks.data.tokenizers import ByteTokenizer
from benchmarks.tasks.text import TextLM
from benchmarks.tasks.text_params import TextLMParams
from benchmarks.tasks.zero_shot import ZeroShotParams

B, E = 90, 91  # BOS, EOS
# Three groups of three documents (the last group has one); tokens 1-7, 8-11, 12-16.
DOCS = [[1, 2], [3], [4, 5, 6, 7], [8], [9, 10], [11], [12, 13, 14, 15, 16]]


def test_groups_of_three_documents_are_cut_on_their_own():
    blocks = wrap_blocks(DOCS, 5, B, E, group_docs=3)
    # group 0: 1 2 E 3 E 4 5 6 7 E -> [1 2 E] [3 E 4] [5 6 7], the tail E dropped
    # group 1: 8 E 9 10 E 11 E     -> [8 E 9] [10 E 11],       the tail E dropped
    # group 2: 12 13 14 15 16 E    -> [12 13 14] [15 16 E]
    bodies = [[1, 2, E], [3, E, 4], [5, 6, 7], [8, E, 9], [10, E, 11], [12, 13, 14], [15, 16, E]]
    assert blocks.tolist() == [[B, *body, E] for body in bodies]
    # one stream: 23 tokens -> 7 bodies, two of them across a group boundary
    stream = wrap_blocks(DOCS, 5, B, E)
    assert stream[3].tolist() == [B, E, 8, E, E] and stream[5].tolist() == [B, 11, E, 12, E]
    assert block_count([len(d) + 1 for d in DOCS], 5, 3) == 7
    out = np.zeros((7, 5), dtype=np.uint16)  # streamed into a preallocated (memory-mapped) array
    assert wrap_blocks(iter(DOCS), 5, B, E, group_docs=3, out=out) is out
    assert out.tolist() == blocks.tolist()
    with pytest.raises(ValueError, match="out has 6 rows; the documents give more"):
        wrap_blocks(DOCS, 5, B, E, group_docs=3, out=np.zeros((6, 5), dtype=np.int64))
    with pytest.raises(ValueError, match="group_docs must be >= 0"):
        wrap_blocks(DOCS, 5, B, E, group_docs=-1)


def test_no_block_crosses_a_group_boundary_and_the_count_is_per_group():
    rng = np.random.default_rng(0)
    g, body = 4, 6
    # every token of group k is 100 k + 1 .. 100 k + 50, so a block names its groups
    docs = [(100 * (i // g) + rng.integers(1, 50, rng.integers(0, 15))).tolist() for i in range(23)]
    blocks = wrap_blocks(docs, body + 2, B, E, group_docs=g)
    groups = [{t // 100 for t in row[1:-1] if t != E} for row in blocks.tolist()]
    assert all(len(s) <= 1 for s in groups)
    sums = [sum(len(d) + 1 for d in docs[k : k + g]) for k in range(0, len(docs), g)]
    assert (
        len(blocks) == sum(s // body for s in sums) == block_count([len(d) + 1 for d in docs], 8, g)
    )
    assert (
        wrap_blocks(docs, 8, B, E, group_docs=len(docs)).tolist()
        == wrap_blocks(docs, 8, B, E).tolist()
    )  # one group holding every document is the one stream


@pytest.mark.parametrize("num_proc", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_the_default_map_batch_of_datasets_is_a_group_of_1000_documents(num_proc):
    """What the authors' grouping does, rebuilt from its description: Dataset.map with
    batched=True (default batch) concatenates each batch and keeps its whole bodies; with
    num_proc processes the groups restart at each contiguous shard."""
    import datasets

    rng = np.random.default_rng(1)
    docs = [rng.integers(1, 50, rng.integers(0, 6)).tolist() for _ in range(2300)]

    def group(batch):
        stream = [t for doc in batch["ids"] for t in [*doc, E]]
        n = len(stream) // 3 * 3
        return {"row": [[B, *stream[i : i + 3], E] for i in range(0, n, 3)]}

    ds = datasets.Dataset.from_dict({"ids": docs})
    rows = ds.map(group, batched=True, remove_columns=["ids"])["row"]
    assert rows == wrap_blocks(docs, 5, B, E, group_docs=1000).tolist()
    assert rows != wrap_blocks(docs, 5, B, E).tolist()
    if num_proc > 1:  # contiguous shards of 1150 documents, batches counted in each
        sharded = ds.map(group, batched=True, remove_columns=["ids"], num_proc=num_proc)
        halves = [
            wrap_blocks(half, 5, B, E, group_docs=1000) for half in (docs[:1150], docs[1150:])
        ]
        assert sharded["row"] == np.concatenate(halves).tolist() != rows


def test_rows_without_specials_are_the_text_alone():
    blocks = wrap_blocks(DOCS, 4, B, E, specials=False)
    # stream 1 2 E 3 E 4 5 6 7 E 8 E 9 10 E 11 E 12 13 14 15 16 E (23) -> 5 rows of 4
    assert blocks.tolist() == [
        [1, 2, E, 3],
        [E, 4, 5, 6],
        [7, E, 8, E],
        [9, 10, E, 11],
        [E, 12, 13, 14],
    ]
    grouped = wrap_blocks(DOCS, 4, B, E, group_docs=3, specials=False)
    assert grouped.tolist() == [[1, 2, E, 3], [E, 4, 5, 6], [8, E, 9, 10], [12, 13, 14, 15]]
    assert block_count([len(d) + 1 for d in DOCS], 4, 3, specials=False) == 4
    assert wrap_blocks([[5]], 1, B, E, specials=False).tolist() == [[5], [E]]
    with pytest.raises(ValueError, match="block_size must be >= 3"):
        wrap_blocks(DOCS, 2, B, E)


def _parquet(path, texts):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": texts}), path)


def test_caches_are_keyed_by_the_grouping_and_the_specials(tmp_path, monkeypatch):
    docs = [f"doc {i} " + "x" * (i % 5) for i in range(12)]
    _parquet(tmp_path / "owt.parquet", docs)
    source, tok = replace(OPENWEBTEXT, path=str(tmp_path / "owt.parquet")), ByteTokenizer()
    cache = tmp_path / "cache"
    stream = tokenized_blocks(source, tok, 8, cache_dir=cache)
    grouped = tokenized_blocks(source, tok, 8, cache_dir=cache, group_docs=3)
    plain = tokenized_blocks(source, tok, 8, cache_dir=cache, group_docs=3, specials=False)
    assert not (stream.cache_hit or grouped.cache_hit or plain.cache_hit)
    assert len({stream.path, grouped.path, plain.path}) == 3
    # the default layout keeps the key the caches had before these settings existed
    assert "group_docs" not in stream.meta and "specials" not in stream.meta
    assert grouped.meta["group_docs"] == 3 and plain.meta["specials"] is False
    want = wrap_blocks(tok.encode_batch(docs), 8, tok.bos_id, tok.eos_id, group_docs=3)
    assert np.array_equal(grouped.blocks, want) and not np.array_equal(
        grouped.blocks, stream.blocks[: len(want)]
    )
    again = tokenized_blocks(source, tok, 8, cache_dir=cache, group_docs=3)
    assert again.cache_hit and again.path == grouped.path

    # the task passes its settings through: validation and training rows alike
    monkeypatch.setenv("PRIMEBENCH_DATA_CACHE", str(cache))
    params = TextLMParams(
        dataset="openwebtext",
        path=str(tmp_path / "owt.parquet"),
        block_size=8,
        validation_docs=3,
        group_docs=3,
        block_specials=False,
        row_order="epoch_permutation",
    )
    task = TextLM(params, None)
    rows = task.train_rows()
    assert rows.order == "epoch_permutation"
    train_docs = tok.encode_batch(docs[:-3])
    want = wrap_blocks(train_docs, 8, tok.bos_id, tok.eos_id, group_docs=3, specials=False)
    assert np.array_equal(rows.array, want) and rows.array[0, 0] == ord("d")


def test_layout_settings_are_validated_and_left_out_of_run_ids_at_their_defaults():
    with pytest.raises(ConfigError, match=r"task\.group_docs: must be >= 0, got -1"):
        TextLMParams(group_docs=-1)
    with pytest.raises(ConfigError, match=r"task\.group_docs: must be >= 0"):
        ZeroShotParams(group_docs=-5)
    assert {"group_docs", "block_specials", "row_order"} <= set(TextLMParams.LATER_FIELDS)
    assert "group_docs" in ZeroShotParams.LATER_FIELDS
