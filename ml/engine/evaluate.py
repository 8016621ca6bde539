"""Measuring a classifier: the numbers a clinician asks for, each with a 95% confidence interval.

Every metric is written as {"value": float | None, "ci": [low, high], ...}:
- proportions (accuracy, sensitivity, specificity, PPV, NPV) carry Wilson score intervals, which
  stay sensible for the small per-source groups and near 0 or 1;
- ROC AUC carries a percentile bootstrap interval (cases resampled, 1,000 times by default).

Plus the confusion matrix (rows true, columns predicted, in class order), calibration (expected
calibration error over 10 equal-width bins of the positive-class probability, and the reliability
curve), the ROC curve, and the same metrics per source when a manifest gives each image's origin.
Plots are written with matplotlib's Agg canvas (no pyplot state), so this is safe in workers.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .decision import decide

Z95 = 1.959963984540054


# --- figures with intervals ----------------------------------------------------------------

def wilson_interval(k: int, n: int, z: float = Z95) -> list:
    if n == 0:
        return [None, None]
    p = k / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return [max(0.0, centre - half), min(1.0, centre + half)]


def proportion(k: int, n: int) -> dict:
    return {"value": (k / n) if n else None, "ci": wilson_interval(k, n), "k": int(k), "n": int(n), "ci_method": "wilson"}


def roc_auc(is_positive: np.ndarray, score: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    is_positive = np.asarray(is_positive, dtype=bool)
    if is_positive.all() or not is_positive.any():
        return None
    return float(roc_auc_score(is_positive, score))


def auc_with_ci(is_positive, score, *, n_boot: int = 1000, seed: int = 0) -> dict:
    is_positive = np.asarray(is_positive, dtype=bool)
    score = np.asarray(score, dtype=np.float64)
    value = roc_auc(is_positive, score)
    if value is None:
        return {"value": None, "ci": [None, None], "ci_method": "bootstrap"}
    rng = np.random.default_rng(seed)
    n = len(score)
    samples = []
    for _ in range(n_boot):
        index = rng.integers(0, n, n)
        auc = roc_auc(is_positive[index], score[index])
        if auc is not None:
            samples.append(auc)
    low, high = (np.percentile(samples, [2.5, 97.5]).tolist() if samples else [None, None])
    return {"value": value, "ci": [low, high], "ci_method": "bootstrap", "n_boot": len(samples)}


def calibration(is_positive, probability, *, bins: int = 10) -> dict:
    is_positive = np.asarray(is_positive, dtype=bool)
    probability = np.asarray(probability, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(probability, edges[1:-1], right=False), 0, bins - 1)
    curve, ece = [], 0.0
    for b in range(bins):
        members = index == b
        count = int(members.sum())
        if count:
            mean_p = float(probability[members].mean())
            observed = float(is_positive[members].mean())
            ece += count / len(probability) * abs(mean_p - observed)
            curve.append({"bin": [float(edges[b]), float(edges[b + 1])], "n": count, "mean_probability": mean_p, "observed_positive_rate": observed})
    return {"ece": float(ece) if len(probability) else None, "bins": bins, "curve": curve}


def roc_curve_points(is_positive, score, max_points: int = 200) -> dict | None:
    from sklearn.metrics import roc_curve

    is_positive = np.asarray(is_positive, dtype=bool)
    if is_positive.all() or not is_positive.any():
        return None
    fpr, tpr, thresholds = roc_curve(is_positive, score)
    if len(fpr) > max_points:
        keep = np.unique(np.linspace(0, len(fpr) - 1, max_points).round().astype(int))
        fpr, tpr, thresholds = fpr[keep], tpr[keep], thresholds[keep]
    thresholds = np.minimum(thresholds, 1.0)  # sklearn puts +inf first
    return {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "thresholds": thresholds.tolist()}


# --- one set of predictions ----------------------------------------------------------------

def source_name(origin: str) -> str:
    """Group detailed origins by source: the text before the first ' (' ('COVID-CXNet ... (Italy)'
    and '... (Spain)' are one source)."""
    origin = (origin or "").strip()
    return origin.split(" (")[0].strip() if origin else "unknown"


def binary_summary(is_positive, p_positive, predicted_positive, *, n_boot: int = 1000, seed: int = 0, curves: bool = True) -> dict:
    is_positive = np.asarray(is_positive, dtype=bool)
    predicted_positive = np.asarray(predicted_positive, dtype=bool)
    tp = int((is_positive & predicted_positive).sum())
    tn = int((~is_positive & ~predicted_positive).sum())
    fp = int((~is_positive & predicted_positive).sum())
    fn = int((is_positive & ~predicted_positive).sum())
    out = {
        "n": int(len(is_positive)),
        "n_positive": int(is_positive.sum()),
        "n_negative": int((~is_positive).sum()),
        "sensitivity": proportion(tp, tp + fn),
        "specificity": proportion(tn, tn + fp),
        "ppv": proportion(tp, tp + fp),
        "npv": proportion(tn, tn + fn),
        "roc_auc": auc_with_ci(is_positive, p_positive, n_boot=n_boot, seed=seed),
        "counts": {"tp": tp, "fp": fp, "tn": tn, "fn": fn},
        "mean_positive_probability": float(np.mean(p_positive)) if len(p_positive) else None,
    }
    if curves:
        out["calibration"] = calibration(is_positive, p_positive)
        out["roc_curve"] = roc_curve_points(is_positive, p_positive)
    return out


def evaluate_predictions(
    probabilities: np.ndarray,
    true_labels: list[str],
    class_names: list[str],
    positive_class: str,
    threshold: float,
    *,
    origins: list[str] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict:
    """All metrics for one split; `probabilities` is (N, K) in `class_names` order."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    positive = class_names.index(positive_class)
    p_positive = probabilities[:, positive]
    predicted = decide(probabilities, class_names, positive_class, threshold)
    true_labels = list(true_labels)
    is_positive = np.array([label == positive_class for label in true_labels])
    predicted_positive = np.array([label == positive_class for label in predicted])
    correct = int(sum(t == p for t, p in zip(true_labels, predicted)))
    metrics = {
        "positive_class": positive_class,
        "threshold": float(threshold),
        "accuracy": proportion(correct, len(true_labels)),
        **binary_summary(is_positive, p_positive, predicted_positive, n_boot=n_boot, seed=seed),
    }
    index = {name: i for i, name in enumerate(class_names)}
    matrix = np.zeros((len(class_names), len(class_names)), dtype=int)
    for t, p in zip(true_labels, predicted):
        matrix[index[t], index[p]] += 1
    metrics["confusion_matrix"] = {"labels": list(class_names), "rows": "true", "columns": "predicted", "matrix": matrix.tolist()}
    if origins is not None and any(origins):
        metrics["per_source"] = per_source(true_labels, predicted, p_positive, positive_class, origins, n_boot=n_boot, seed=seed)
    return metrics


def per_source(true_labels, predicted, p_positive, positive_class, origins, *, n_boot=1000, seed=0) -> dict:
    """Metrics within each source. A source holding one class only (as most do in public COVID
    sets) has a sensitivity or a specificity but no AUC: its numbers say how the model treats
    that institution's films, which the pooled AUC hides."""
    groups: dict[str, list[int]] = {}
    for i, origin in enumerate(origins):
        groups.setdefault(source_name(origin), []).append(i)
    out = {}
    for name in sorted(groups):
        idx = np.array(groups[name])
        t = [true_labels[i] for i in idx]
        p = [predicted[i] for i in idx]
        is_positive = np.array([label == positive_class for label in t])
        summary = binary_summary(is_positive, np.asarray(p_positive)[idx], np.array([label == positive_class for label in p]),
                                 n_boot=n_boot, seed=seed, curves=False)
        summary["accuracy"] = proportion(sum(a == b for a, b in zip(t, p)), len(t))
        summary["classes"] = {label: int(n) for label, n in zip(*np.unique(t, return_counts=True))}
        out[name] = summary
    return out


# --- plots ---------------------------------------------------------------------------------

def _figure(width=4.5, height=4.0):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def save_roc_png(metrics: dict, path: Path, title: str = "ROC") -> Path | None:
    curve = metrics.get("roc_curve")
    if not curve:
        return None
    figure = _figure()
    axes = figure.add_subplot()
    auc = metrics["roc_auc"]
    axes.plot(curve["fpr"], curve["tpr"], label=f"AUC {auc['value']:.3f} [{auc['ci'][0]:.3f}, {auc['ci'][1]:.3f}]")
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey")
    sens, spec = metrics["sensitivity"]["value"], metrics["specificity"]["value"]
    if sens is not None and spec is not None:
        axes.scatter([1 - spec], [sens], color="red", zorder=3, label=f"threshold {metrics['threshold']:.3f}")
    axes.set_xlabel("1 - specificity")
    axes.set_ylabel("sensitivity")
    axes.set_title(title)
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
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
    axes.set_title(title)
    figure.tight_layout()
    figure.savefig(path)
    return Path(path)


def save_reliability_png(metrics: dict, path: Path, title: str = "Reliability") -> Path:
    calib = metrics["calibration"]
    figure = _figure()
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey")
    points = calib["curve"]
    axes.plot([b["mean_probability"] for b in points], [b["observed_positive_rate"] for b in points], marker="o")
    axes.set_xlabel(f"predicted P({metrics['positive_class']})")
    axes.set_ylabel("observed fraction positive")
    axes.set_title(f"{title} (ECE {calib['ece']:.3f})")
    figure.tight_layout()
    figure.savefig(path)
    return Path(path)


def save_plots(metrics: dict, folder: Path, prefix: str = "test") -> dict[str, str]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = {
        "roc": save_roc_png(metrics, folder / f"{prefix}_roc.png", f"ROC ({prefix})"),
        "confusion_matrix": save_confusion_png(metrics, folder / f"{prefix}_confusion.png", f"Confusion matrix ({prefix})"),
        "reliability": save_reliability_png(metrics, folder / f"{prefix}_reliability.png", f"Reliability ({prefix})"),
    }
    return {name: path.name for name, path in written.items() if path is not None}


# --- an artifact on a folder ---------------------------------------------------------------

def evaluate_artifact(
    artifact_path,
    data_dir,
    manifest=None,
    *,
    expected_sha256: str | None = None,
    plots_dir=None,
    n_boot: int = 1000,
    batch_size: int = 32,
) -> dict:
    """Measure a saved model on a folder: `data_dir/test/<class>/` if it has a test split, else
    every image of `data_dir/<class>/`. Uses the model's own recorded preprocessing, classes and
    threshold, so two versions evaluated on the same folder are compared like for like."""
    from .data import content_fingerprint, evaluation_samples, load_images
    from .predictor import Predictor

    predictor = Predictor.load(artifact_path, expected_sha256=expected_sha256)
    samples, described = evaluation_samples(data_dir, manifest=manifest, class_names=predictor.class_names)
    images = load_images(samples, predictor.spec)
    probabilities = predictor.predict_resized(images, batch_size=batch_size)
    metrics = evaluate_predictions(
        probabilities, [s.label for s in samples], predictor.class_names, predictor.positive_class, predictor.threshold,
        origins=[s.origin for s in samples], n_boot=n_boot,
    )
    metrics.update({
        "evaluation_set": described,
        "split": "given folder",
        "dataset_fingerprint": content_fingerprint(samples),
        "artifact_sha256": predictor.record.get("sha256"),
        "class_names": list(predictor.class_names),
    })
    if plots_dir is not None:
        metrics["plots"] = save_plots(metrics, Path(plots_dir), prefix="evaluation")
    return metrics


def headline(metrics: dict) -> str:
    """One line for logs: AUC, sensitivity, specificity with their intervals."""
    def fmt(name):
        item = metrics.get(name) or {}
        value, (low, high) = item.get("value"), item.get("ci", [None, None])
        return f"{name} {value:.3f} [{low:.3f}, {high:.3f}]" if value is not None and low is not None else f"{name} n/a"

    return " · ".join(fmt(name) for name in ("roc_auc", "sensitivity", "specificity", "accuracy"))


def to_json(metrics: dict) -> str:
    return json.dumps(metrics, indent=2, sort_keys=True)
