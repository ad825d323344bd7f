"""Interaction logs: schema, readers with validation, splits, negative sampling, bundled datasets."""

from .errors import DataError, SkipReport
from .schema import Interactions, Vocab, concat
from .split import Split, leave_last_out, random_ratio, time_quantile

__all__ = ["DataError", "SkipReport", "Interactions", "Vocab", "concat", "Split", "leave_last_out",
           "random_ratio", "time_quantile"]
