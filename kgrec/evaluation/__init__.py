"""Evaluation: the cold-start protocol, baselines, metrics and report (``evaluation.md``).

Public API (imported lazily, so ``kgrec --help`` stays fast)::

    from kgrec.evaluation import EvalConfig, run_evaluation, write_report
    from kgrec.graph.adapters import load_tables
    results = run_evaluation(load_tables("amazon"), EvalConfig(seeds=(0, 1, 2)))
    write_report(results, "eval/amazon")

* :func:`make_split` / :class:`EvalSplit` -- item-cold, user-cold (k revealed) and warm splits;
* :class:`MetricAccumulator` / :func:`evaluate_matrix` -- Recall/NDCG/HitRate@K, MRR, GAUC,
  log-loss, ECE, coverage and popularity over full candidate sets;
* baselines :class:`RandomScores`, :class:`Popularity`, :class:`ContentKNN`,
  :class:`LightFMBaseline`, :class:`ALSBaseline` (the last two are optional extras),
  :class:`TfidfKNN`, :class:`TfidfBertBlend`, :class:`EASE`, :class:`ItemKNN`;
* :func:`score_ranked` / :func:`score_files` -- score a ranked file against truth (BYO split).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "EvalSplit": "splits", "make_split": "splits", "leakage": "splits",
    "MetricAccumulator": "metrics", "evaluate_matrix": "metrics",
    "TrainData": "baselines", "RandomScores": "baselines", "Popularity": "baselines",
    "ContentKNN": "baselines", "LightFMBaseline": "baselines", "ALSBaseline": "baselines",
    "available_baselines": "baselines",
    "TfidfKNN": "baselines_content", "TfidfBertBlend": "baselines_content",
    "EASE": "baselines_cf", "ItemKNN": "baselines_cf",
    "EvalConfig": "runner", "EvalResults": "runner", "run_evaluation": "runner",
    "write_report": "report", "results_table": "report",
    "score_ranked": "scorerun", "score_files": "scorerun",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(f"kgrec.evaluation.{_EXPORTS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'kgrec.evaluation' has no attribute {name!r}")
