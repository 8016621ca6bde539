"""Temperature scaling: one number fitted on the validation split, stored in the model's record
(`record["temperature"]`, 1.0 = none) and applied wherever probabilities leave the model: the
Keras `Predictor` and the serving worker (`ServingPredictor`, OpenVINO or Keras) call this same
`apply_temperature`. NumPy and SciPy only.

A hospital's own temperature (the portal fits one per site on its reviewed scans) is fitted on the stored probability
of the positive class alone, one against the rest: `one_vs_rest` makes the two columns [1 - p, p]
that the functions here take, and `apply_temperature_to_positive` applies such a temperature to a
full row of class probabilities.

Both paths compute softmax(logits), and log(softmax(z)) = z - logsumexp(z) is the logits shifted
by a constant that softmax ignores, so softmax(log(p) / T) = softmax(z / T): the temperature acts
on the logits without the serving graph having to expose them. Probabilities are floored at
1e-12 before the log (a float32 softmax can underflow to 0 for a logit gap beyond ~100, where the
calibrated answer is ~0 or ~1 anyway). Dividing the logits by T > 0 keeps the ranking, so AUCs do
not change; the threshold is chosen afterwards on the calibrated validation probabilities.
"""
from __future__ import annotations

import numpy as np

FLOOR = 1e-12
BOUNDS = (0.05, 20.0)


def apply_temperature(probabilities, temperature: float = 1.0) -> np.ndarray:
    """(N, K) softmax probabilities -> softmax(logits / temperature), float32."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if temperature == 1.0 or probabilities.size == 0:
        return probabilities.astype(np.float32)
    scaled = np.log(np.clip(probabilities, FLOOR, 1.0)) / float(temperature)
    scaled -= scaled.max(axis=1, keepdims=True)
    exp = np.exp(scaled)
    return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)


def negative_log_likelihood(probabilities, labels, temperature: float) -> float:
    calibrated = apply_temperature(probabilities, temperature).astype(np.float64)
    picked = calibrated[np.arange(len(labels)), np.asarray(labels, dtype=np.int64)]
    return float(-np.mean(np.log(np.clip(picked, FLOOR, 1.0))))


def fit_temperature(probabilities, labels) -> float:
    """The temperature minimising the negative log-likelihood of `labels` (class indices), searched
    on log T within BOUNDS; 1.0 when there is nothing to fit."""
    from scipy.optimize import minimize_scalar

    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) == 0 or len(np.unique(labels)) < 2:
        return 1.0
    result = minimize_scalar(lambda log_t: negative_log_likelihood(probabilities, labels, float(np.exp(log_t))),
                             bounds=tuple(np.log(BOUNDS)), method="bounded")
    return float(np.exp(result.x))


def one_vs_rest(positive_probability) -> np.ndarray:
    """(N,) probabilities of the positive class -> (N, 2) [rest, positive], for the functions above:
    a temperature on these is sigmoid(logit(p) / T)."""
    p = np.asarray(positive_probability, dtype=np.float64)
    return np.column_stack([1.0 - p, p])


def apply_temperature_to_positive(probabilities, positive: int, temperature: float) -> np.ndarray:
    """(N, K) probabilities with column `positive` re-scaled one against the rest (sigmoid of its
    logit / T) and the other classes keeping their shares of what is left; for two classes this is
    apply_temperature. float64."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    p = probabilities[:, positive]
    scaled = apply_temperature(one_vs_rest(p), temperature)[:, 1].astype(np.float64)
    others = np.delete(np.arange(probabilities.shape[1]), positive)
    rest = 1.0 - p
    # Each other class's share of the rest; equal shares when the model left nothing to the rest.
    shares = np.where(rest[:, None] > 0, probabilities[:, others] / np.where(rest > 0, rest, 1.0)[:, None], 1.0 / max(1, len(others)))
    out = np.empty_like(probabilities)
    out[:, positive] = scaled
    out[:, others] = shares * (1.0 - scaled)[:, None]
    return out
