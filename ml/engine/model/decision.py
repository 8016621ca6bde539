"""How probabilities become a label, and how the threshold is chosen. No TensorFlow here.

Binary rule: the label is the positive class iff its probability >= threshold. With more classes
the same one-vs-rest rule applies to the positive class, and otherwise the most probable of the
other classes is the label.

The threshold is chosen on the VALIDATION split only: the operating point with the highest
specificity whose validation sensitivity reaches the target. Any threshold between the lowest
positive score kept and the next score below it gives that same operating point; we take the
midpoint, because a threshold sitting exactly on a validation case's score (0.99996 for an
over-confident model) leaves no margin for the next hospital's films. The test split is never
looked at when choosing it.
"""
from __future__ import annotations

import math

import numpy as np

DEFAULT_POSITIVE_CLASS = "covid"


def default_positive_class(class_names: list[str]) -> str:
    """'covid' when there is such a class (any case), else the last class in sorted order."""
    for name in class_names:
        if name.lower() == DEFAULT_POSITIVE_CLASS:
            return name
    return class_names[-1]


def decide(probabilities: np.ndarray, class_names: list[str], positive_class: str, threshold: float) -> list[str]:
    probabilities = np.asarray(probabilities, dtype=np.float64)
    positive = class_names.index(positive_class)
    others = probabilities.copy()
    others[:, positive] = -np.inf
    fallback = others.argmax(axis=1)
    return [
        positive_class if row[positive] >= threshold else class_names[int(fallback[i])]
        for i, row in enumerate(probabilities)
    ]


def results(probabilities: np.ndarray, class_names: list[str], positive_class: str, threshold: float) -> list[dict]:
    """One answer per row of probabilities: the label, every class's probability, and the threshold
    that made the label, in the shape the portal stores for a prediction."""
    labels = decide(probabilities, class_names, positive_class, threshold)
    positive = class_names.index(positive_class)
    return [
        {
            "label": label,
            "probabilities": {name: float(p) for name, p in zip(class_names, row)},
            "positive_probability": float(row[positive]),
            "threshold": threshold,
        }
        for label, row in zip(labels, probabilities)
    ]


def select_threshold(is_positive: np.ndarray, positive_probability: np.ndarray, target_sensitivity: float) -> dict:
    """The validation operating point with the highest specificity at sensitivity >= target,
    with the threshold in the middle of the gap below the lowest positive score it keeps."""
    is_positive = np.asarray(is_positive, dtype=bool)
    p = np.asarray(positive_probability, dtype=np.float64)
    positives = np.sort(p[is_positive])[::-1]
    if len(positives) == 0:
        return {"threshold": 0.5, "target_sensitivity": target_sensitivity, "achieved_sensitivity": None,
                "specificity": None, "n_positive": 0, "n_negative": int((~is_positive).sum()),
                "note": "no positive cases in the validation split; threshold left at 0.5"}
    k = max(1, math.ceil(target_sensitivity * len(positives) - 1e-9))
    lowest_kept = float(positives[k - 1])
    below = p[p < lowest_kept]
    threshold = (lowest_kept + float(below.max())) / 2 if below.size else lowest_kept / 2
    predicted = p >= threshold
    negatives = ~is_positive
    return {
        "threshold": threshold,
        "lowest_positive_score_kept": lowest_kept,
        "target_sensitivity": float(target_sensitivity),
        "achieved_sensitivity": float(predicted[is_positive].mean()),
        "specificity": float((~predicted[negatives]).mean()) if negatives.any() else None,
        "n_positive": int(is_positive.sum()),
        "n_negative": int(negatives.sum()),
    }
