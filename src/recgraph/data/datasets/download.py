"""Download a dataset's files from its official source, verify sha256, write atomically.

- Every written file's *content* sha256 is checked against the registry (the folder READMEs
  give them); for archives, all members are verified before any is moved into place, so a bad
  download leaves nothing behind (temporary ``*.part`` files are removed).
- Files land in ``<data dir>/<folder>/`` under their plain (uncompressed) names; the loaders read
  the plain or the ``.gz`` form.
- ``mirror`` (or ``$RECGRAPH_MIRROR``) replaces the source host: ``https://host/path`` is fetched
  from ``<mirror>/host/path`` (a ``wget -x``-style mirror layout).
- Offline (connection refused, DNS failure, timeout) → :class:`DataError` listing exactly which
  files to put where and how to point recgraph at another data folder.
"""

from __future__ import annotations

import gzip
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

from ...config import DATA_ENV, resolve_data_dir
from ...io import StagedFile, sha256_file
from ..errors import DataError
from .spec import DatasetSpec, find_file

MIRROR_ENV = "RECGRAPH_MIRROR"
_CHUNK = 1 << 20


def source_url(url: str, mirror: str | None = None) -> str:
    """The URL to fetch: ``url`` itself, or its host+path under ``mirror`` / ``$RECGRAPH_MIRROR``."""
    mirror = mirror if mirror is not None else os.environ.get(MIRROR_ENV) or None
    if not mirror:
        return url
    p = urllib.parse.urlsplit(url)
    return mirror.rstrip("/") + "/" + p.netloc + p.path


def manual_instructions(spec: DatasetSpec, folder: Path, missing: list[str], reason: str) -> str:
    lines = [f"dataset {spec.name!r}: {reason}. Put these files into {folder}:"]
    for f in spec.files:
        if f.name in missing:
            lines.append(f"  - {folder / f.name}  (or uncompressed {f.plain_name}; sha256 of content "
                         f"{f.content_checksum})")
    if spec.sources:
        lines.append("Official source(s): " + ", ".join(s.url for s in spec.sources))
    if spec.download_note:
        lines.append("Note: " + spec.download_note)
    lines.append(f"Or point recgraph at a folder that already holds '{spec.folder}/': pass --data-dir DIR "
                 f"(data_dir=DIR) or set {DATA_ENV}=DIR; set {MIRROR_ENV}=URL to download from a mirror.")
    return "\n".join(lines)


def _fetch(url: str, dest: Path, timeout: float) -> None:
    """Stream ``url`` into ``dest`` (a temp path). Network failures propagate as OSError/URLError."""
    req = urllib.request.Request(url, headers={"User-Agent": "recgraph-data-download"})
    with urllib.request.urlopen(req, timeout=timeout) as resp, open(dest, "wb") as out:
        shutil.copyfileobj(resp, out, _CHUNK)


def download_dataset(name: str, data_dir: str | os.PathLike | None = None, *, mirror: str | None = None,
                     timeout: float = 30.0, force: bool = False) -> list[Path]:
    """Fetch the missing files of dataset ``name`` into ``<data dir>/<folder>``. Returns the paths
    written. Raises :class:`DataError` when offline, when no source is known, or on a checksum
    mismatch (nothing is left behind in that case)."""
    from . import DATASETS

    spec = DATASETS[name]
    folder = resolve_data_dir(data_dir) / spec.folder
    wanted = {f.plain_name for f in spec.files if force or find_file(folder, f.name) is None}
    missing = [f.name for f in spec.files if f.required and (force or find_file(folder, f.name) is None)]
    if not spec.sources:
        raise DataError(manual_instructions(spec, folder, missing, "files are missing and there is no "
                                            "automatic download for this dataset"), file=str(folder))
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for src in spec.sources:
        targets = [m for m in src.members if m[1] in wanted]
        if not targets:
            continue
        url = source_url(src.url, mirror)
        raw_file = StagedFile(folder / Path(urllib.parse.urlsplit(src.url).path).name)  # never committed
        raw = raw_file.path
        staged: list[StagedFile] = []
        try:
            try:
                _fetch(url, raw, timeout)
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
                if isinstance(exc, urllib.error.HTTPError):
                    reason = f"download of {url} failed: HTTP {exc.code} {exc.reason}"
                else:
                    reason = f"cannot download {url} (offline? {getattr(exc, 'reason', exc)})"
                raise DataError(manual_instructions(spec, folder, missing, reason), file=str(folder)) from exc
            if src.sha256 is not None and sha256_file(raw) != src.sha256:
                raise DataError(f"checksum mismatch for the download {url}: expected sha256 {src.sha256}; the "
                                "file is corrupt or not the official one — nothing was written", file=str(folder))
            for member, target, sha in targets:
                stage = StagedFile(folder / target)
                staged.append(stage)
                part = stage.path
                if src.kind == "zip":
                    try:
                        with zipfile.ZipFile(raw) as zf:
                            names = zf.namelist()
                            match = member if member in names else next(
                                (n for n in names if n.endswith("/" + member) or n == member), None)
                            if match is None:
                                raise DataError(f"archive {url} has no member {member!r}", file=str(folder))
                            with zf.open(match) as fin, open(part, "wb") as fout:
                                shutil.copyfileobj(fin, fout, _CHUNK)
                    except zipfile.BadZipFile as exc:
                        raise DataError(f"download {url} is not a valid zip ({exc}); nothing was written",
                                        file=str(folder)) from exc
                elif src.kind == "gzip":
                    try:
                        with gzip.open(raw, "rb") as fin, open(part, "wb") as fout:
                            shutil.copyfileobj(fin, fout, _CHUNK)
                    except (EOFError, gzip.BadGzipFile, OSError) as exc:
                        raise DataError(f"download {url} is not a complete gzip ({exc}); nothing was written",
                                        file=str(folder)) from exc
                else:
                    shutil.copyfile(raw, part)
                got = sha256_file(part)
                if got != sha:
                    raise DataError(f"checksum mismatch for {target} from {url}: sha256 {got}, expected {sha}. "
                                    "The download is corrupt or differs from the official file — nothing was "
                                    "written; retry, or place a verified copy by hand", file=str(folder / target))
            for stage in staged:  # all verified: move into place atomically
                written.append(stage.commit())
            staged = []
        finally:
            raw_file.discard()
            for stage in staged:
                stage.discard()
    still = [f.name for f in spec.required_files() if find_file(folder, f.name) is None]
    if still:
        raise DataError(manual_instructions(spec, folder, still, "files still missing after download"),
                        file=str(folder))
    return written
