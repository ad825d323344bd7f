"""Check a dataset folder's files against the published sha256 sums, on every load.

A file edited after download would otherwise load as if it were the official data. Hashing the
bundled datasets takes about a second in all, so the verdict is cached per file by
``(size, mtime_ns)`` in ``<cache dir>/verified-datasets.json`` (see :func:`recgraph.config.cache_dir`):
a later load re-hashes only files that changed on disk. ``verify=False`` (CLI:
``--no-verify-data``; environment: ``RECGRAPH_VERIFY_DATA=0``) skips the check for users who
changed files on purpose.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from pathlib import Path

from ...config import cache_dir
from ...io import atomic_write_json, sha256_file
from ..errors import DataError
from .spec import DatasetSpec, find_file

VERIFY_ENV = "RECGRAPH_VERIFY_DATA"
_CACHE_NAME = "verified-datasets.json"


def verify_default() -> bool:
    """Whether loads verify checksums when not told: yes unless ``$RECGRAPH_VERIFY_DATA`` is 0/false/no."""
    return os.environ.get(VERIFY_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def _expected(f, path: Path) -> tuple[str, bool]:
    """(sha256 that ``path`` must have, whether it is the sha256 of the gunzipped content)."""
    if path.name == f.name:
        return f.sha256, False
    if path.name == f.plain_name:  # stored .gz, found the plain twin
        return f.content_checksum, False
    return f.content_checksum, True  # stored plain, found a .gz twin: compare its content


def _sha256_gunzip(path: Path) -> str:
    h = hashlib.sha256()
    try:
        with gzip.open(path, "rb") as fh:
            while block := fh.read(1 << 20):
                h.update(block)
    except (EOFError, OSError, gzip.BadGzipFile) as exc:
        raise DataError(f"file {path} is not a complete gzip ({exc}); it does not match the published "
                        "checksum — fetch it again", file=str(path)) from None
    return h.hexdigest()


def _load_cache() -> tuple[Path, dict]:
    p = cache_dir() / _CACHE_NAME
    try:
        data = json.loads(p.read_text())
        return p, data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return p, {}


def verify_files(spec: DatasetSpec, folder: Path) -> list[Path]:
    """Hash every present file of ``spec`` in ``folder`` (cached by size + mtime) and compare with the
    published sha256. Returns the files checked.

    Raises:
        DataError: ``file X does not match the published checksum`` naming the file, both sums and
            the way out (restore the file, or ``verify=False`` / ``--no-verify-data``).
    """
    cache_path, cache = _load_cache()
    changed = False
    checked = []
    for f in spec.files:
        path = find_file(folder, f.name)
        if path is None:
            continue
        want, gunzip = _expected(f, path)
        st = path.stat()
        key = str(path.resolve())
        hit = cache.get(key)
        if hit and hit.get("size") == st.st_size and hit.get("mtime_ns") == st.st_mtime_ns \
                and hit.get("sha256") == want and hit.get("gunzip", False) == gunzip:
            checked.append(path)
            continue
        got = _sha256_gunzip(path) if gunzip else sha256_file(path)
        if got != want:
            raise DataError(f"file {path} does not match the published checksum of dataset {spec.name!r} "
                            f"(sha256{' of its content' if gunzip else ''} {got}, expected {want}): it was "
                            "changed or damaged after download. Delete it and load again to re-download (or "
                            "copy a fresh one in), or pass verify=False (CLI: --no-verify-data) if you changed "
                            "it on purpose", file=str(path))
        cache[key] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": want, "gunzip": gunzip}
        changed = True
        checked.append(path)
    if changed:
        try:
            atomic_write_json(cache_path, cache)
        except OSError:  # an unwritable cache only costs re-hashing next time
            pass
    return checked
