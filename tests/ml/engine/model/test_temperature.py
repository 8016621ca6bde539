"""Temperature scaling (ml.engine.model.temperature)."""
import numpy as np

from ml.engine.model.temperature import apply_temperature, apply_temperature_to_positive, fit_temperature, one_vs_rest


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


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def test_a_temperature_on_the_positive_probability_divides_its_logit():
    p = np.array([0.02, 0.3, 0.5, 0.9, 0.999])
    logit = np.log(p / (1 - p))
    assert np.allclose(apply_temperature(one_vs_rest(p), 2.0)[:, 1], sigmoid(logit / 2.0), atol=1e-6)


def test_one_against_the_rest_is_the_plain_temperature_for_two_classes():
    p, _, _ = overconfident(30)
    assert np.allclose(apply_temperature_to_positive(p, 1, 0.7), apply_temperature(p, 0.7), atol=1e-6)


def test_with_more_classes_the_others_keep_their_shares_of_the_rest():
    rows = np.array([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6], [1.0, 0.0, 0.0]])
    out = apply_temperature_to_positive(rows, 0, 2.0)
    assert np.allclose(out.sum(axis=1), 1.0)
    assert np.allclose(out[:, 0], sigmoid(np.log(np.clip(rows[:, 0], 1e-12, 1) / np.clip(1 - rows[:, 0], 1e-12, 1)) / 2.0), atol=1e-6)
    assert np.isclose(out[0, 1] / out[0, 2], 3.0) and np.isclose(out[1, 1] / out[1, 2], 0.2 / 0.6)
    assert np.isclose(out[2, 1], out[2, 2]), "nothing left to the rest: the rest is shared equally"


def test_the_inverse_temperature_gives_back_the_probability():
    p = np.array([0.01, 0.2, 0.5, 0.8, 0.97])
    there = apply_temperature(one_vs_rest(p), 1.7)[:, 1]
    assert np.allclose(apply_temperature(one_vs_rest(there), 1 / 1.7)[:, 1], p, atol=1e-6)
