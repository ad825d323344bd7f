"""Errors and counted skips for bad input.

Every reader reports a bad row either as a :class:`DataError` that names the file, the line
(1-based, as an editor shows it) and the column, or — when the caller passed
``on_bad_rows="skip"`` — as a counted entry in a :class:`SkipReport`. Nothing is dropped silently.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

OnBadRows = Literal["error", "skip"]


class DataError(ValueError):
    """A problem in input data, located as precisely as the reader can.

    Args:
        message: what is wrong and, where possible, what to do about it.
        file: the file the data came from.
        line: 1-based line number in that file (for compressed files: line of the decompressed text).
        column: the column name (or 1-based field number).
    """

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 column: str | None = None):
        self.file, self.line, self.column, self.reason = file, line, column, message
        where = []
        if file is not None:
            where.append(str(file) + (f":{line}" if line is not None else ""))
        elif line is not None:
            where.append(f"line {line}")
        if column is not None:
            where.append(f"column {column!r}")
        super().__init__((", ".join(where) + ": " if where else "") + message)


@dataclass
class SkipReport:
    """Counted skips of bad rows: ``reason -> count`` plus the first few examples of each."""

    counts: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    max_examples: int = 3

    def add(self, reason: str, where: str, n: int = 1) -> None:
        self.counts[reason] += n
        ex = self.examples.setdefault(reason, [])
        if len(ex) < self.max_examples:
            ex.append(where)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def merge(self, other: "SkipReport") -> None:
        for reason, n in other.counts.items():
            self.counts[reason] += n
            ex = self.examples.setdefault(reason, [])
            ex.extend(other.examples.get(reason, [])[: self.max_examples - len(ex)])

    def to_dict(self) -> dict:
        return {"total": self.total, "counts": dict(self.counts), "examples": self.examples}

    def __str__(self) -> str:
        if not self.total:
            return "no rows skipped"
        parts = [f"{n} × {reason} (e.g. {', '.join(self.examples.get(reason, []))})"
                 for reason, n in self.counts.most_common()]
        return f"skipped {self.total} rows: " + "; ".join(parts)


def check_on_bad_rows(on_bad_rows: str) -> None:
    if on_bad_rows not in ("error", "skip"):
        raise ValueError(f"on_bad_rows must be 'error' or 'skip', got {on_bad_rows!r}")
