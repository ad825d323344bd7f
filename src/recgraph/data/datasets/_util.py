"""Small helpers shared by the dataset loaders."""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from .spec import find_file


def need(folder: Path, name: str, dataset: str) -> Path:
    """The path of a required file (stored or plain/gzip twin), or a DataError saying where to put it."""
    p = find_file(folder, name)
    if p is None:
        raise DataError(f"dataset {dataset!r}: file {name!r} (or its {'plain' if name.endswith('.gz') else '.gz'} "
                        f"twin) is missing in {folder}; put it there, or point --data-dir / RECGRAPH_DATA at a "
                        "folder that holds it", file=str(folder / name))
    return p
