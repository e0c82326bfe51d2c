"""Where a variant's released weights are: the ``weights:`` section of an experiment file.

A paper-scale variant names the checkpoint its authors published (hub repository, file,
revision, the file format, and the authors' epoch or step of it). ``--weights released``
keeps that section in the resolved run: the run then builds the variant's model, loads
those weights into it and evaluates, without training. Under the default ``--weights
trained`` the section is dropped, so it changes no trained run or run id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from ..core import ConfigError

__all__ = ["WEIGHTS_MODES", "WeightsConfig", "WeightsFormat", "NoReleasedWeights"]

WEIGHTS_MODES = ("trained", "released")
WeightsFormat = Literal["mdm-prime-text", "mdm-prime-image", "hub-mdlm", "hub-bd3lm"]
_COMMIT = re.compile(r"[0-9a-f]{40}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class NoReleasedWeights(ConfigError):
    """``--weights released`` for a variant whose authors published no weights."""


@dataclass(frozen=True)
class WeightsConfig:
    """One released checkpoint and how to read it."""

    format: WeightsFormat
    """How the file is laid out: mdm-prime-text (the MDM-Prime / MDLM text code's
    Lightning checkpoint, EMA inside), mdm-prime-image (the MDM-Prime image code's .pth,
    EMA wrapper and run arguments inside), hub-mdlm / hub-bd3lm (a hub model directory:
    config.json and model.safetensors)."""
    file: str
    """The file inside the hub repository, or a local path when ``repo`` is null."""
    repo: str | None = None
    """The hub repository (owner/name); null: ``file`` is a path on this machine."""
    revision: str = "main"
    """The hub revision: a 40-hex commit pins the file; a branch is resolved at download
    and the commit it gave is recorded on the run."""
    companions: tuple[str, ...] = ()
    """Other files of the same repository and revision the format reads beside ``file``
    (a hub model's config.json)."""
    sha256: str | None = None
    """The file's expected sha256; null: recorded on the run, not checked."""
    epoch: int | None = None
    """The authors' training epoch of this checkpoint (their README's table)."""
    step: int | None = None
    """The authors' optimizer step of this checkpoint, where they state it."""
    source: str = ""
    """Where this entry comes from (the README table or model card that lists the file)."""

    def __post_init__(self) -> None:
        if not self.file:
            raise ConfigError("weights.file: expected a file name or path, got ''")
        if self.repo is not None and not re.fullmatch(r"[\w.-]+/[\w.-]+", self.repo):
            raise ConfigError(f"weights.repo: expected 'owner/name', got {self.repo!r}")
        if self.sha256 is not None and not _SHA256.fullmatch(self.sha256):
            raise ConfigError(
                f"weights.sha256: expected 64 lowercase hex digits, got {self.sha256!r}"
            )
        for name in ("epoch", "step"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ConfigError(f"weights.{name}: expected a count >= 0, got {value}")

    @property
    def pinned(self) -> bool:
        """The revision names one commit (a branch can move under the run)."""
        return self.repo is None or bool(_COMMIT.fullmatch(self.revision))

    @property
    def origin(self) -> str:
        """``repo/file@revision``, or ``file:<path>`` for a local file."""
        if self.repo is None:
            return f"file:{self.file}"
        return f"{self.repo}/{self.file}@{self.revision}"
