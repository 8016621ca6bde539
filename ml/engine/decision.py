"""How probabilities become a label, and how the threshold is chosen. No TensorFlow here.

Binary rule: the label is the positive class iff its probability >= threshold. With more classes
the same one-vs-rest rule applies to the positive class, and otherwise the most probable of the
other classes is the label.

The threshold is chosen on the VALIDATION split only: the highest threshold whose validation
sensitivity reaches the target (so specificity is as high as that sensitivity allows). The test
split is never looked at when choosing it.
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


def select_threshold(is_positive: np.ndarray, positive_probability: np.ndarray, target_sensitivity: float) -> dict:
    """The highest threshold t with sensitivity(p >= t) >= target on these (validation) cases."""
    is_positive = np.asarray(is_positive, dtype=bool)
    p = np.asarray(positive_probability, dtype=np.float64)
    positives = np.sort(p[is_positive])[::-1]
    if len(positives) == 0:
        return {"threshold": 0.5, "target_sensitivity": target_sensitivity, "achieved_sensitivity": None,
                "specificity": None, "n_positive": 0, "n_negative": int((~is_positive).sum()),
                "note": "no positive cases in the validation split; threshold left at 0.5"}
    k = max(1, math.ceil(target_sensitivity * len(positives) - 1e-9))
    threshold = float(positives[k - 1])
    predicted = p >= threshold
    negatives = ~is_positive
    return {
        "threshold": threshold,
        "target_sensitivity": float(target_sensitivity),
        "achieved_sensitivity": float(predicted[is_positive].mean()),
        "specificity": float((~predicted[negatives]).mean()) if negatives.any() else None,
        "n_positive": int(is_positive.sum()),
        "n_negative": int(negatives.sum()),
    }
