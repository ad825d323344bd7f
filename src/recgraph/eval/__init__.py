"""One evaluator: top-K full sort (Recall, NDCG, Hit, Precision, MRR), sampled (1 + N negatives)
and CTR (AUC, GAUC, Logloss). Metric definitions live in :mod:`recgraph.eval.metrics`, protocols
(candidates, exclusions, tie-breaking) in :mod:`recgraph.eval.protocols`."""

from .metrics import TOPK_METRICS, auc, average_ranks, gauc, gauc_with_count, logloss, topk_metrics
from .protocols import (describe_ctr, describe_full_sort, describe_sampled, evaluate_ctr,
                        evaluate_full_sort, evaluate_sampled, rank_topk, user_item_matrix)

__all__ = ["TOPK_METRICS", "auc", "average_ranks", "gauc", "gauc_with_count", "logloss", "topk_metrics",
           "describe_ctr", "describe_full_sort", "describe_sampled", "evaluate_ctr", "evaluate_full_sort",
           "evaluate_sampled", "rank_topk", "user_item_matrix"]
