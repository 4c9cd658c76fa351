"""Write an evaluation's ``report.md``, PNG plots, ``results.json`` and ``results.csv``.

Plots (matplotlib, Agg backend, no display needed): ``recall_by_regime.png`` (Recall@K per
regime and model, mean with std error bars over seeds), ``user_cold_curve.png`` (Recall@K of
cold users against the number of revealed interactions ``k``) and ``calibration.png`` (the
reliability diagram of kgrec's calibrated probabilities per regime, log-spaced bins).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kgrec.evaluation._names import ABLATIONS
from kgrec.evaluation.plots import plot_regime_metric, plot_reliability, plot_user_cold_curve
from kgrec.evaluation.runner import EvalResults

TABLE_METRICS: tuple[tuple[str, str], ...] = (
    ("recall@10", "R@10"), ("recall@20", "R@20"), ("recall@50", "R@50"),
    ("ndcg@10", "N@10"), ("ndcg@20", "N@20"), ("ndcg@50", "N@50"),
    ("hit_rate@10", "HR@10"), ("hit_rate@20", "HR@20"), ("hit_rate@50", "HR@50"),
    ("mrr", "MRR"), ("gauc", "GAUC"), ("log_loss", "LogLoss"), ("ece", "ECE"), ("citl", "CITL"),
    ("cold_coverage@20", "ColdCov@20"), ("catalog_coverage@20", "CatCov@20"),
    ("popularity@20", "Pop@20"),
)


def _fmt(mean: float, std: float, metric: str) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    digits = 1 if metric.startswith("popularity") else 4
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def results_table(results: EvalResults, metrics: tuple[tuple[str, str], ...] = TABLE_METRICS
                  ) -> str:
    """The one table: a row per (regime, model), ``mean ± std`` over seeds (markdown)."""
    return summary_table(results.summary(), metrics)


def summary_table(summary: pd.DataFrame,
                  metrics: tuple[tuple[str, str], ...] = TABLE_METRICS) -> str:
    """Markdown table of a summary frame (``EvalResults.summary()`` or a ``results.csv``)."""
    if summary.empty:
        return "(no results)\n"
    cols = [(m, label) for m, label in metrics if f"{m}_mean" in summary.columns]
    head = "| regime | model | seeds | " + " | ".join(label for _, label in cols) + " |"
    sep = "|" + "---|" * (3 + len(cols))
    lines = [head, sep]
    for _, row in summary.iterrows():
        cells = [_fmt(row[f"{m}_mean"], row[f"{m}_std"], m) for m, _ in cols]
        lines.append(f"| {row['regime']} | {row['model']} | {int(row['seeds'])} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _save_figure(draw: Any, path: Path, figsize: tuple[float, float]) -> None:
    """Draw with one of :mod:`kgrec.evaluation.plots`' functions on a new figure and save it."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=figsize)
    draw(ax)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(results: EvalResults, out_dir: str | Path, *, command: str = "",
                 k: int = 20) -> Path:
    """Write ``report.md``, the plots, ``results.json`` and ``results.csv`` into ``out_dir``.

    Returns:
        The path of ``report.md``.
    """
    import matplotlib

    matplotlib.use("Agg")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = results.summary()
    summary.to_csv(out / "results.csv", index=False)
    results.frame().to_csv(out / "results_per_seed.csv", index=False)
    payload = {
        "dataset": results.dataset,
        "config": {**results.config.__dict__, "model": results.config.model.to_dict()},
        "timings": results.timings,
        "notes": results.notes,
        "split_stats": results.split_stats,
        "records": results.records,
        "summary": summary.to_dict(orient="records"),
        "reliability": results.reliability,
    }
    (out / "results.json").write_text(json.dumps(_jsonable(payload), indent=1))
    metric, name = f"recall@{k}", results.dataset
    n_regimes = results.summary()["regime"].nunique()
    _save_figure(lambda ax: plot_regime_metric(
        results, metric, ax, title=f"{name}: Recall@{k} per regime, kgrec vs baselines"),
        out / "recall_by_regime.png", (max(8, 1.6 * n_regimes), 4.8))
    _save_figure(lambda ax: plot_user_cold_curve(
        results, metric, ax, title=f"{name}: user cold start, Recall@{k} vs k"),
        out / "user_cold_curve.png", (6.4, 4.4))
    _save_figure(lambda ax: plot_reliability(
        results, "kgrec", ax, title=f"{name}: kgrec reliability diagram (all seeds)"),
        out / "calibration.png", (6.4, 5.2))
    cfg = results.config
    lines = [
        f"# kgrec evaluation: {results.dataset}", "",
        "Protocol: `/work/shared/notes/evaluation.md` (item cold, user cold with k revealed, "
        "warm; full candidate sets; mean ± std over seeds).", "",
    ]
    if cfg.validation:
        lines += ["**Validation split**: carved from the training part of each seed's test "
                  "split (the test part was not read). Use these figures to choose settings.",
                  ""]
    if command:
        lines += ["Command:", "", "```", command, "```", ""]
    lines += [
        f"Seeds: {list(cfg.seeds)}; encoder: {cfg.encoder}; model: {cfg.model.describe()} "
        f"(all settings: {cfg.model.to_dict()}); threads: {cfg.threads}; "
        f"wall time {results.timings.get('total_seconds', float('nan')):.0f} s; load average "
        f"{results.timings.get('load_average_start', float('nan')):.1f} at start, "
        f"{results.timings.get('load_average_end', float('nan')):.1f} at end.", "",
        "## Results", "",
        "R = Recall, N = NDCG, HR = HitRate; LogLoss/ECE/CITL (mean predicted / observed rate) "
        "only for models with calibrated "
        "probabilities (over every candidate pair); ColdCov/CatCov = share of cold/candidate "
        "items in any top-20 list; Pop = mean training interactions of recommended items.",
        "",
        results_table(results), "",
        "![Recall by regime](recall_by_regime.png)", "",
        "![User cold start](user_cold_curve.png)", "",
        "![Calibration](calibration.png)", "",
        "## Ablations", "",
    ]
    lines += [f"- `kgrec-{name}`: {text}" for name, text in ABLATIONS.items()]
    lines += ["", "## Splits", ""]
    lines += [f"- seed {s['seed']}: " + ", ".join(f"{k}={v}" for k, v in s.items() if k != "seed")
              for s in results.split_stats]
    if results.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in results.notes]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
