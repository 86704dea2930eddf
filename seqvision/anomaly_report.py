"""Anomaly scores as files: per-clip CSV, score-distribution and ROC plots, a text report."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from seqvision.evaluation import new_figure, save_figure
from seqvision.io import atomic_write_text


def write_scores_csv(path: str | Path, rows: list[dict], scores, flags) -> Path:
    """``rows`` (the embedding folder's row columns) with ``score`` and ``flag`` (0/1) appended, atomically."""
    from seqvision.anomaly import ROW_COLUMNS

    columns = list(rows[0]) if rows else list(ROW_COLUMNS)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(columns + ["score", "flag"])
    for row, score, flag in zip(rows, scores, flags):
        writer.writerow([row.get(c, "") for c in columns] + [repr(float(score)), int(flag)])
    return atomic_write_text(path, text.getvalue())


def plot_score_distributions(scored: dict, threshold: float, path: str | Path) -> Path:
    """Histograms of normal vs anomalous scores, one panel per split, with the threshold line.

    ``scored``: ``{split: (scores [N], y [N])}``.
    """
    fig, axes = new_figure(1, len(scored), figsize=(4.5 * len(scored), 3.6), squeeze=False)
    for ax, (name, (scores, y)) in zip(axes[0], scored.items()):
        finite = np.isfinite(scores)
        bins = np.histogram_bin_edges(np.append(scores[finite], threshold), bins=40)
        for label, colour, cls in (("normal", "tab:blue", 0), ("anomalous", "tab:red", 1)):
            chosen = scores[finite & (y == cls)]
            if len(chosen):
                ax.hist(chosen, bins=bins, alpha=0.6, color=colour, label=f"{label} ({len(chosen)})")
        ax.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.3g}")
        ax.set_title(name)
        ax.set_xlabel("anomaly score")
        ax.set_ylabel("clips")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_roc_curves(scored: dict, path: str | Path) -> Path | None:
    """ROC curve of each split that holds both classes (None when none does)."""
    from sklearn.metrics import roc_auc_score, roc_curve

    usable = {name: (s, y) for name, (s, y) in scored.items() if (y == 0).any() and (y == 1).any()}
    if not usable:
        return None
    fig, ax = new_figure(figsize=(4.5, 4.5))
    for name, (scores, y) in usable.items():
        fpr, tpr, _ = roc_curve(y, scores)
        ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(y, scores):.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("ROC")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return save_figure(fig, path)


def format_report(results: dict) -> str:
    """One line per split: ROC-AUC, PR-AUC, counts and the accuracies at the threshold."""
    def number(value):
        return "n/a" if value is None else f"{value:.4f}"

    lines = []
    for name, m in results.items():
        if name == "files":
            continue
        lines.append(f"{name}: ROC-AUC {number(m['roc_auc'])}  PR-AUC {number(m['pr_auc'])}  "
                     f"threshold {m['threshold']:.4g}  normal {m['n_normal']} (accuracy {number(m['accuracy_normal'])})"
                     f"  anomalous {m['n_anomalous']} (accuracy {number(m['accuracy_anomalous'])})")
    lines.extend(f"wrote {f}" for f in results.get("files", []))
    return "\n".join(lines)
