import numpy as np
import pytest

from ml.engine.decision import decide, default_positive_class, select_threshold
from ml.engine.evaluate import calibration, evaluate_predictions, save_plots, source_name, wilson_interval


def test_wilson_interval_known_values():
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-3) and high == pytest.approx(0.9433, abs=1e-3)
    assert wilson_interval(0, 0) == [None, None]
    assert wilson_interval(10, 10)[1] == pytest.approx(1.0)


def test_threshold_keeps_the_target_sensitivity_with_a_margin():
    is_positive = np.array([1, 1, 1, 1, 0, 0, 0, 0], bool)
    p = np.array([0.9, 0.8, 0.6, 0.3, 0.7, 0.2, 0.1, 0.05])
    choice = select_threshold(is_positive, p, 0.75)
    # Keeping 3 of 4 positives means keeping scores >= 0.6; the next score below is 0.3.
    assert choice["lowest_positive_score_kept"] == 0.6
    assert choice["threshold"] == pytest.approx(0.45)
    assert choice["achieved_sensitivity"] == 0.75 and choice["specificity"] == 0.75
    assert select_threshold(is_positive, p, 0.95)["threshold"] == pytest.approx(0.25)
    assert select_threshold(np.zeros(3, bool), p[:3], 0.95)["threshold"] == 0.5


def test_threshold_of_an_over_confident_model_is_not_pinned_to_one_case():
    is_positive = np.array([1, 1, 1, 0, 0, 0], bool)
    p = np.array([0.99999, 0.99998, 0.99996, 0.02, 0.001, 0.0001])
    choice = select_threshold(is_positive, p, 0.95)
    assert choice["achieved_sensitivity"] == 1.0 and choice["specificity"] == 1.0
    assert choice["threshold"] == pytest.approx((0.99996 + 0.02) / 2)


def test_decision_rule_binary_and_multiclass():
    assert decide(np.array([[0.4, 0.6], [0.2, 0.8]]), ["covid", "normal"], "covid", 0.3) == ["covid", "normal"]
    three = np.array([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]])
    assert decide(three, ["covid", "normal", "other"], "covid", 0.5) == ["normal", "covid"]
    assert default_positive_class(["COVID", "normal"]) == "COVID" and default_positive_class(["a", "b"]) == "b"


def test_metrics_on_a_hand_made_case(tmp_path):
    # 6 positives (covid), 4 negatives; threshold 0.5
    p_covid = np.array([0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.6, 0.2, 0.1, 0.05])
    truth = ["covid"] * 6 + ["normal"] * 4
    origins = ["A (x)"] * 3 + ["B"] * 3 + ["C (y)"] * 4
    metrics = evaluate_predictions(np.stack([p_covid, 1 - p_covid], 1), truth, ["covid", "normal"], "covid", 0.5, origins=origins, n_boot=200)
    assert metrics["counts"] == {"tp": 4, "fn": 2, "fp": 1, "tn": 3}
    assert metrics["sensitivity"]["value"] == pytest.approx(4 / 6) and metrics["specificity"]["value"] == 0.75
    assert metrics["ppv"]["value"] == 0.8 and metrics["npv"]["value"] == 0.6 and metrics["accuracy"]["value"] == 0.7
    assert metrics["confusion_matrix"]["matrix"] == [[4, 2], [1, 3]]
    auc = metrics["roc_auc"]
    assert auc["value"] == pytest.approx(21.5 / 24) and auc["ci"][0] <= auc["value"] <= auc["ci"][1]
    assert set(metrics["per_source"]) == {"A", "B", "C"}
    assert metrics["per_source"]["A"]["sensitivity"]["value"] == 1.0 and metrics["per_source"]["A"]["roc_auc"]["value"] is None
    assert metrics["per_source"]["C"]["specificity"]["value"] == 0.75
    assert metrics["roc_curve"]["fpr"][0] == 0.0 and metrics["roc_curve"]["tpr"][-1] == 1.0
    written = save_plots(metrics, tmp_path)
    assert set(written) == {"roc", "confusion_matrix", "reliability"}
    assert all((tmp_path / name).read_bytes().startswith(b"\x89PNG") for name in written.values())


def test_calibration_error_is_small_when_calibrated():
    rng = np.random.default_rng(0)
    p = rng.random(20000)
    assert calibration(rng.random(20000) < p, p)["ece"] < 0.02
    assert calibration(np.ones(100, bool), np.full(100, 0.5))["ece"] == pytest.approx(0.5)
    assert source_name('RSNA Pneumonia Challenge "Normal" (NIH CC, USA) via C19RD') == 'RSNA Pneumonia Challenge "Normal"'
