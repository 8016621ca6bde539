"""The plots of one evaluation, drawn once as PNG files: ROC curve, calibration (reliability)
curve and confusion matrix, from the metrics dict `ml.engine.judge.metrics.evaluate_predictions`
returns. Drawn with matplotlib's Agg canvas on a Figure of its own (no pyplot state), so this is
safe in worker processes and threads.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from .metrics import value_with_interval


def _figure(width=4.5, height=4.0):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _set_title(axes, title: str, width: int = 50):
    """Long titles (an evaluation folder's name) wrapped, not cut off at the figure's edges."""
    axes.set_title(textwrap.fill(title, width), fontsize="medium")


def auc_label(auc: dict) -> str:
    """'AUC 0.912 [0.874, 0.944]', or without the interval when there is none (a class of one case)."""
    return f"AUC {value_with_interval(auc)}"


def save_roc_png(metrics: dict, path: Path, title: str = "ROC") -> Path | None:
    curve = metrics.get("roc_curve")
    if not curve:
        return None
    figure = _figure()
    axes = figure.add_subplot()
    axes.plot(curve["fpr"], curve["tpr"], label=auc_label(metrics["roc_auc"]))
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey")
    sens, spec = metrics["sensitivity"]["value"], metrics["specificity"]["value"]
    if sens is not None and spec is not None:
        axes.scatter([1 - spec], [sens], color="red", zorder=3, label=f"threshold {metrics['threshold']:.3f}")
    axes.set_xlabel("1 - specificity")
    axes.set_ylabel("sensitivity")
    _set_title(axes, title)
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    return Path(path)


def save_roc_comparison_png(curves: list[dict], path: Path, title: str) -> Path:
    """Several versions' ROC curves on the same evaluation set in one plot. Each curve is
    {"label", "metrics", "dashed"}; a dot marks where each version's own threshold puts it."""
    figure = _figure(6.0, 6.0)
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey", label="chance")
    for curve in curves:
        metrics = curve["metrics"]
        points = metrics["roc_curve"]
        (line,) = axes.plot(points["fpr"], points["tpr"], linestyle="--" if curve.get("dashed") else "-",
                            label=f"{curve['label']} ({auc_label(metrics['roc_auc'])})")
        sens, spec = metrics["sensitivity"]["value"], metrics["specificity"]["value"]
        if sens is not None and spec is not None:
            axes.scatter([1 - spec], [sens], color=line.get_color(), edgecolors="black", zorder=3)
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.01)
    axes.set_xlabel("False positive rate (1 - specificity)")
    axes.set_ylabel("True positive rate (sensitivity)")
    _set_title(axes, title)
    axes.legend(loc="lower right", fontsize="small")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return Path(path)


def save_confusion_png(metrics: dict, path: Path, title: str = "Confusion matrix") -> Path:
    cm = metrics["confusion_matrix"]
    matrix = np.array(cm["matrix"])
    figure = _figure()
    axes = figure.add_subplot()
    axes.imshow(matrix, cmap="Blues")
    for (i, j), value in np.ndenumerate(matrix):
        axes.text(j, i, str(value), ha="center", va="center", color="black" if value < matrix.max() / 2 else "white")
    axes.set_xticks(range(len(cm["labels"])), cm["labels"])
    axes.set_yticks(range(len(cm["labels"])), cm["labels"])
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    _set_title(axes, title)
    figure.tight_layout()
    figure.savefig(path)
    return Path(path)


def save_calibration_png(metrics: dict, path: Path, title: str = "Calibration") -> Path:
    calib = metrics["calibration"]
    figure = _figure()
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey")
    points = calib["curve"]
    axes.plot([b["mean_probability"] for b in points], [b["observed_positive_rate"] for b in points], marker="o")
    axes.set_xlabel(f"predicted P({metrics['positive_class']})")
    axes.set_ylabel("observed fraction positive")
    _set_title(axes, f"{title} (ECE {calib['ece']:.3f})")
    figure.tight_layout()
    figure.savefig(path)
    return Path(path)


def save_evaluation_plots(metrics: dict, folder, prefix: str = "evaluation") -> dict[str, Path]:
    """Write `<prefix>_roc.png`, `<prefix>_calibration.png` and `<prefix>_confusion.png` into
    `folder`; return {"roc", "calibration", "confusion_matrix": path}. "roc" is absent when the
    evaluation set holds one class only (no ROC curve exists)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = {
        "roc": save_roc_png(metrics, folder / f"{prefix}_roc.png", f"ROC ({prefix})"),
        "calibration": save_calibration_png(metrics, folder / f"{prefix}_calibration.png", f"Calibration ({prefix})"),
        "confusion_matrix": save_confusion_png(metrics, folder / f"{prefix}_confusion.png", f"Confusion matrix ({prefix})"),
    }
    return {name: path for name, path in written.items() if path is not None}
