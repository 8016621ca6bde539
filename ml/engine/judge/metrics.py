"""Measuring a classifier: the numbers a clinician asks for, each with a 95% confidence interval.

Every metric is written as {"value": float | None, "ci": [low, high], ...}:
- proportions (accuracy, sensitivity, specificity, PPV, NPV) carry Wilson score intervals
  (SciPy's `binomtest(...).proportion_ci(method="wilson")`), which stay sensible for the small
  per-source groups and near 0 or 1;
- ROC AUC (scikit-learn) carries a percentile bootstrap interval from `scipy.stats.bootstrap`,
  resampling positive and negative cases separately (1,000 times by default) so that every
  resample has both classes and therefore an AUC.

Plus the confusion matrix (rows true, columns predicted, in class order), calibration (the
reliability curve of scikit-learn's `calibration_curve` over 10 equal-width bins of the
positive-class probability, and the expected calibration error over the same bins), the ROC
curve, and the same metrics per source when a manifest gives each image's origin.
"""
from __future__ import annotations

import numpy as np
from scipy import stats
from sklearn.calibration import calibration_curve
from sklearn.metrics import confusion_matrix, roc_auc_score, roc_curve

from ..data.samples import source_name
from ..model.decision import decide

CONFIDENCE = 0.95


# --- figures with intervals ----------------------------------------------------------------

def wilson_interval(k: int, n: int) -> list:
    if n == 0:
        return [None, None]
    ci = stats.binomtest(int(k), int(n)).proportion_ci(confidence_level=CONFIDENCE, method="wilson")
    return [float(ci.low), float(ci.high)]


def proportion(k: int, n: int) -> dict:
    return {"value": (k / n) if n else None, "ci": wilson_interval(k, n), "k": int(k), "n": int(n), "ci_method": "wilson"}


def roc_auc(is_positive: np.ndarray, score: np.ndarray) -> float | None:
    is_positive = np.asarray(is_positive, dtype=bool)
    if is_positive.all() or not is_positive.any():
        return None
    return float(roc_auc_score(is_positive, score))


def _auc_of_groups(positive_scores, negative_scores, axis=-1):
    """AUC from the two groups of scores: the Mann-Whitney U of the positives over n+ * n-
    (ties count one half), vectorised over bootstrap resamples."""
    u = stats.mannwhitneyu(positive_scores, negative_scores, axis=axis).statistic
    return u / (positive_scores.shape[axis] * negative_scores.shape[axis])


def auc_with_ci(is_positive, score, *, n_boot: int = 1000, seed: int = 0) -> dict:
    is_positive = np.asarray(is_positive, dtype=bool)
    score = np.asarray(score, dtype=np.float64)
    value = roc_auc(is_positive, score)
    if value is None:
        return {"value": None, "ci": [None, None], "ci_method": "bootstrap"}
    if min(is_positive.sum(), (~is_positive).sum()) < 2:
        # A class of one case cannot be resampled: the AUC stands, without an interval.
        return {"value": value, "ci": [None, None], "ci_method": "bootstrap"}
    result = stats.bootstrap((score[is_positive], score[~is_positive]), _auc_of_groups, n_resamples=n_boot,
                             confidence_level=CONFIDENCE, method="percentile", batch=100, rng=np.random.default_rng(seed))
    ci = result.confidence_interval
    return {"value": value, "ci": [float(ci.low), float(ci.high)], "ci_method": "bootstrap", "n_boot": int(n_boot)}


def calibration(is_positive, probability, *, bins: int = 10) -> dict:
    is_positive = np.asarray(is_positive, dtype=bool)
    probability = np.asarray(probability, dtype=np.float64)
    if not len(probability):
        return {"ece": None, "bins": bins, "curve": []}
    observed, predicted = calibration_curve(is_positive, probability, n_bins=bins, strategy="uniform", pos_label=True)
    # calibration_curve returns the non-empty bins only; these are its bins (right-closed), for the counts.
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.searchsorted(edges[1:-1], probability)
    counts = np.bincount(index, minlength=bins)
    filled = np.flatnonzero(counts)
    weights = counts[filled] / len(probability)
    curve = [{"bin": [float(edges[b]), float(edges[b + 1])], "n": int(counts[b]), "mean_probability": float(mean_p),
              "observed_positive_rate": float(rate)} for b, mean_p, rate in zip(filled, predicted, observed)]
    return {"ece": float(np.sum(weights * np.abs(predicted - observed))), "bins": bins, "curve": curve}


def roc_curve_points(is_positive, score, max_points: int = 200) -> dict | None:
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

def binary_summary(is_positive, p_positive, predicted_positive, *, n_boot: int = 1000, seed: int = 0, curves: bool = True) -> dict:
    is_positive = np.asarray(is_positive, dtype=bool)
    predicted_positive = np.asarray(predicted_positive, dtype=bool)
    tn, fp, fn, tp = (int(n) for n in confusion_matrix(is_positive, predicted_positive, labels=[False, True]).ravel())
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
    matrix = confusion_matrix(true_labels, predicted, labels=list(class_names))
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


def source_held_out_record(metrics: dict, sources: list[str], counts: dict) -> dict:
    """The source-held-out test as a model record keeps it: `metrics` (evaluate_predictions on the
    films of the held-out sources, per source included) with the sources named, the films of each
    class in each source, and whether an AUC inside one source exists. Only a source holding both
    classes has one; when each class comes from its own source, the AUC over them rewards telling
    the sources apart as much as reading the lungs, like the pooled AUC of the internal test."""
    both = [source for source, per_class in counts.items() if sum(1 for n in per_class.values() if n) > 1]
    one_class = {source: next(label for label, n in per_class.items() if n) for source, per_class in counts.items() if source not in both}
    if both:
        note = f"An AUC within one source is given for {', '.join(both)} (both classes there)."
        if one_class:
            note += f" {', '.join(one_class)} hold{'s' if len(one_class) == 1 else ''} one class only."
    else:
        note = ("Each held-out source holds one class only (" + "; ".join(f"{source}: {label}" for source, label in one_class.items())
                + "), so the AUC over them measures telling these sources apart as much as reading the lungs; "
                  "no AUC within one source exists.")
    return {**metrics, "split": "source-held-out", "sources": list(sources), "counts": counts,
            "sources_with_both_classes": both, "auc_within_a_source": bool(both), "note": note}


def value_with_interval(item: dict | None) -> str:
    """'0.912 [0.874, 0.944]'; the value alone when it has no interval; 'n/a' when there is none."""
    if not item or item.get("value") is None:
        return "n/a"
    low, high = item.get("ci") or [None, None]
    return f"{item['value']:.3f}" if low is None or high is None else f"{item['value']:.3f} [{low:.3f}, {high:.3f}]"


def headline(metrics: dict) -> str:
    """One line for logs: AUC, sensitivity, specificity with their intervals."""
    def fmt(name):
        item = metrics.get(name) or {}
        value, (low, high) = item.get("value"), item.get("ci", [None, None])
        return f"{name} {value:.3f} [{low:.3f}, {high:.3f}]" if value is not None and low is not None else f"{name} n/a"

    return " · ".join(fmt(name) for name in ("roc_auc", "sensitivity", "specificity", "accuracy"))
