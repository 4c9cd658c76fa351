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

from kgrec.ranking.evaluation._names import ABLATIONS
from kgrec.ranking.evaluation.runner import EvalResults

TABLE_METRICS: tuple[tuple[str, str], ...] = (
    ("recall@10", "R@10"), ("recall@20", "R@20"), ("recall@50", "R@50"),
    ("ndcg@10", "N@10"), ("ndcg@20", "N@20"), ("ndcg@50", "N@50"),
    ("hit_rate@10", "HR@10"), ("hit_rate@20", "HR@20"), ("hit_rate@50", "HR@50"),
    ("mrr", "MRR"), ("gauc", "GAUC"), ("log_loss", "LogLoss"), ("ece", "ECE"),
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


def _plot_recall(results: EvalResults, path: Path, k: int) -> None:
    import matplotlib.pyplot as plt

    s = results.summary()
    regimes = list(dict.fromkeys(s["regime"]))
    models = list(dict.fromkeys(s["model"]))
    width = 0.8 / max(len(models), 1)
    fig, ax = plt.subplots(figsize=(max(8, 1.6 * len(regimes)), 4.8))
    x = np.arange(len(regimes))
    for j, model in enumerate(models):
        part = s[s["model"] == model].set_index("regime").reindex(regimes)
        ax.bar(x + (j - (len(models) - 1) / 2) * width, part[f"recall@{k}_mean"].fillna(0),
               width, yerr=part[f"recall@{k}_std"].fillna(0), capsize=2, label=model)
    ax.set_xticks(x, regimes)
    ax.set_xlabel("regime")
    ax.set_ylabel(f"Recall@{k} (mean ± std over seeds)")
    ax.set_title(f"{results.dataset}: Recall@{k} per regime, kgrec vs baselines")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_user_cold(results: EvalResults, path: Path, k: int) -> None:
    import matplotlib.pyplot as plt

    s = results.summary()
    s = s[s["regime"].str.startswith("user_cold_k")].copy()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    if len(s):
        s["k"] = s["regime"].str.removeprefix("user_cold_k").astype(int)
        for model, part in s.groupby("model", sort=False):
            part = part.sort_values("k")
            ax.errorbar(part["k"], part[f"recall@{k}_mean"], yerr=part[f"recall@{k}_std"],
                        marker="o", capsize=3, label=str(model))
        ax.set_xticks(sorted(s["k"].unique()))
    ax.set_xlabel("revealed interactions per cold user (k)")
    ax.set_ylabel(f"Recall@{k}")
    ax.set_title(f"{results.dataset}: user cold start, Recall@{k} vs k")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_calibration(results: EvalResults, path: Path, model: str = "kgrec") -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 5.2))
    lo, hi = 1e-6, 1.0
    for key, bins in results.reliability.items():
        name, regime = key.split("/", 1)
        if name != model:
            continue
        n = np.sum([b["count"] for b in bins], axis=0)
        y = np.sum([b["sum_label"] for b in bins], axis=0)
        p = np.sum([b["sum_proba"] for b in bins], axis=0)
        ok = n > 0
        mean_p, mean_y = p[ok] / n[ok], y[ok] / n[ok]
        ax.plot(mean_p, np.maximum(mean_y, lo), marker="o", ms=3, label=regime)
    ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="perfect calibration")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("mean predicted probability (log-spaced bins)")
    ax.set_ylabel("observed positive rate")
    ax.set_title(f"{results.dataset}: {model} reliability diagram (all seeds)")
    ax.legend(fontsize=7)
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
        "config": {**results.config.__dict__},
        "timings": results.timings,
        "notes": results.notes,
        "split_stats": results.split_stats,
        "records": results.records,
        "summary": summary.to_dict(orient="records"),
        "reliability": results.reliability,
    }
    (out / "results.json").write_text(json.dumps(_jsonable(payload), indent=1))
    _plot_recall(results, out / "recall_by_regime.png", k)
    _plot_user_cold(results, out / "user_cold_curve.png", k)
    _plot_calibration(results, out / "calibration.png")
    cfg = results.config
    lines = [
        f"# kgrec evaluation: {results.dataset}", "",
        "Protocol: `/work/shared/notes/evaluation.md` (item cold, user cold with k revealed, "
        "warm; full candidate sets; mean ± std over seeds).", "",
    ]
    if command:
        lines += ["Command:", "", "```", command, "```", ""]
    lines += [
        f"Seeds: {list(cfg.seeds)}; encoder: {cfg.encoder}; model: {cfg.model_params}; "
        f"wall time {results.timings.get('total_seconds', float('nan')):.0f} s; load average "
        f"{results.timings.get('load_average_start', float('nan')):.1f} at start, "
        f"{results.timings.get('load_average_end', float('nan')):.1f} at end.", "",
        "## Results", "",
        "R = Recall, N = NDCG, HR = HitRate; LogLoss/ECE only for models with calibrated "
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


def summary_frame(path: str | Path) -> pd.DataFrame:
    """Read back a ``results.csv``."""
    return pd.read_csv(path)
