"""Dataset descriptions: files with checksums, official sources, loaders, and the loaded result."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import SkipReport
from ..schema import Interactions
from ..split import Split


@dataclass(frozen=True)
class FileSpec:
    """One file of a dataset folder as the project keeps it (from the folder README).

    ``name`` is the stored name (often ``.gz``); ``content_sha256`` is the sha256 of the
    uncompressed content (equal to ``sha256`` for files kept uncompressed). A loader accepts the
    stored name or the uncompressed name (``name`` without ``.gz``), e.g. after a download."""

    name: str
    sha256: str
    content_sha256: str | None = None
    required: bool = True

    @property
    def plain_name(self) -> str:
        return self.name[:-3] if self.name.endswith(".gz") else self.name

    @property
    def content_checksum(self) -> str:
        return self.content_sha256 or self.sha256


@dataclass(frozen=True)
class Source:
    """An official place to download from.

    ``kind``: ``"file"`` (the content itself), ``"gzip"`` (a gzip of the content) or ``"zip"``
    (an archive). ``members`` maps archive member paths (for ``zip``; ignored otherwise) to
    ``(target plain file name, sha256 of its content)``; the content checksum is always verified
    (archive checksums of upstream releases are not known here)."""

    url: str
    kind: str = "file"
    members: tuple[tuple[str, str, str], ...] = ()  # (member, target plain name, content sha256)
    sha256: str | None = None  # of the downloaded artifact, when known


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    folder: str
    description: str
    files: tuple[FileSpec, ...]
    loader: Callable[..., "Dataset"]
    sources: tuple[Source, ...] = ()
    citation: str = ""
    license: str = ""
    partial: bool = False
    stats: dict = field(default_factory=dict)  # precomputed numbers from the folder README
    download_note: str = ""

    def required_files(self) -> tuple[FileSpec, ...]:
        return tuple(f for f in self.files if f.required)


@dataclass(frozen=True, eq=False)
class Dataset:
    """A loaded dataset: all events, the official split when there is one, counted skips, extras."""

    name: str
    interactions: Interactions
    predefined: Split | None = None
    skipped: SkipReport = field(default_factory=SkipReport)
    meta: dict = field(default_factory=dict)

    def describe(self) -> dict:
        out = {"name": self.name, **self.interactions.describe(),
               "n_users": self.interactions.n_users, "n_items": self.interactions.n_items}
        if self.predefined is not None:
            out["predefined"] = self.predefined.describe()
        if self.skipped.total:
            out["skipped"] = self.skipped.to_dict()
        if self.meta.get("partial"):
            out["partial"] = self.meta.get("missing", True)
        return out


def find_file(folder: Path, name: str) -> Path | None:
    """``folder/name``, or its gzip / plain twin (``x.gz`` ↔ ``x``), or None."""
    cands = [name, name[:-3]] if name.endswith(".gz") else [name, name + ".gz"]
    for c in cands:
        p = folder / c
        if p.is_file():
            return p
    return None
