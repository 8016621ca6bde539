"""Temperature scaling (ml.engine.temperature)."""
import numpy as np

from ml.engine.temperature import apply_temperature, fit_temperature


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def overconfident(n=2000, true_temperature=3.0, seed=0):
    """Labels drawn from softmax(z / 3) but reported as softmax(z): a model three times too sure."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 4, (n, 2))
    labels = (rng.random(n) < softmax(logits / true_temperature)[:, 1]).astype(int)
    return softmax(logits), labels, logits


def test_temperature_one_changes_nothing():
    p, _, _ = overconfident(10)
    assert np.allclose(apply_temperature(p, 1.0), p, atol=1e-7)


def test_applying_a_temperature_equals_dividing_the_logits():
    p, _, logits = overconfident(50)
    assert np.allclose(apply_temperature(p, 2.5), softmax(logits / 2.5), atol=1e-6)


def test_fitted_temperature_recovers_the_overconfidence_and_keeps_the_ranking():
    p, labels, _ = overconfident()
    t = fit_temperature(p, labels)
    assert 2.5 < t < 3.6
    calibrated = apply_temperature(p, t)
    assert np.array_equal(np.argsort(calibrated[:, 1], kind="stable"), np.argsort(p[:, 1], kind="stable"))


def test_one_class_gives_no_temperature():
    p, _, _ = overconfident(20)
    assert fit_temperature(p, np.zeros(20, int)) == 1.0
