"""The statistics of ml.engine.judge.metrics, on cases small enough to compute by hand."""
import itertools

import numpy as np
import pytest
from scipy import stats

from ml.engine.judge.metrics import auc_with_ci, calibration, evaluate_predictions, roc_auc, wilson_interval

# 6 positives (covid), 4 negatives; at threshold 0.5: tp 4, fn 2, fp 1, tn 3.
P_COVID = np.array([0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.6, 0.2, 0.1, 0.05])
TRUTH = ["covid"] * 6 + ["normal"] * 4
ORIGINS = ["A (x)"] * 3 + ["B"] * 3 + ["C (y)"] * 4


@pytest.fixture(scope="module")
def hand_made():
    return evaluate_predictions(np.stack([P_COVID, 1 - P_COVID], 1), TRUTH, ["covid", "normal"], "covid", 0.5,
                                origins=ORIGINS, n_boot=200)


def test_wilson_interval_known_values():
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-3) and high == pytest.approx(0.9433, abs=1e-3)


def test_wilson_interval_equals_the_score_interval_formula():
    """Wilson (1927): centre and half-width written out, z = the 97.5% normal quantile."""
    z = stats.norm.ppf(0.975)
    for k, n in ((0, 7), (3, 7), (7, 7), (41, 120)):
        p = k / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        assert wilson_interval(k, n) == pytest.approx([max(0.0, centre - half), min(1.0, centre + half)], abs=1e-12)


def test_wilson_interval_of_no_cases_is_empty():
    assert wilson_interval(0, 0) == [None, None]


def test_wilson_interval_of_all_successes_reaches_one():
    assert wilson_interval(10, 10)[1] == pytest.approx(1.0)


def test_auc_equals_the_share_of_correctly_ordered_pairs():
    """AUC = P(score of a positive > score of a negative), ties counting one half, counted pair by pair."""
    rng = np.random.default_rng(1)
    is_positive = rng.random(60) < 0.4
    score = np.round(rng.random(60) + 0.3 * is_positive, 1)  # rounded: plenty of ties
    pairs = list(itertools.product(score[is_positive], score[~is_positive]))
    by_hand = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs) / len(pairs)
    assert roc_auc(is_positive, score) == pytest.approx(by_hand, abs=1e-12)


def test_auc_of_one_class_is_undefined():
    assert auc_with_ci(np.ones(5, bool), np.linspace(0, 1, 5)) == {"value": None, "ci": [None, None], "ci_method": "bootstrap"}


def test_auc_with_a_single_case_of_one_class_has_no_interval():
    result = auc_with_ci(np.array([True, False, False, False]), np.array([0.9, 0.1, 0.2, 0.95]), n_boot=50)
    assert result["value"] == pytest.approx(2 / 3)
    assert result["ci"] == [None, None]


def test_auc_bootstrap_interval_brackets_the_value_and_narrows_with_more_cases():
    rng = np.random.default_rng(2)

    def width(n):
        is_positive = np.arange(n) % 2 == 0
        result = auc_with_ci(is_positive, rng.random(n) + 0.5 * is_positive, n_boot=300, seed=0)
        assert result["ci"][0] <= result["value"] <= result["ci"][1]
        return result["ci"][1] - result["ci"][0]

    assert width(2000) < width(100) / 2


def test_auc_bootstrap_is_repeatable_for_a_seed():
    is_positive = np.arange(40) % 3 == 0
    score = np.random.default_rng(3).random(40) + 0.3 * is_positive
    assert auc_with_ci(is_positive, score, n_boot=100, seed=4) == auc_with_ci(is_positive, score, n_boot=100, seed=4)


def test_confusion_counts_of_the_hand_made_case(hand_made):
    assert hand_made["counts"] == {"tp": 4, "fn": 2, "fp": 1, "tn": 3}


def test_proportions_of_the_hand_made_case(hand_made):
    values = {name: hand_made[name]["value"] for name in ("sensitivity", "specificity", "ppv", "npv", "accuracy")}
    assert values == pytest.approx({"sensitivity": 4 / 6, "specificity": 0.75, "ppv": 0.8, "npv": 0.6, "accuracy": 0.7})


def test_confusion_matrix_rows_are_true_classes(hand_made):
    assert hand_made["confusion_matrix"]["matrix"] == [[4, 2], [1, 3]]


def test_auc_of_the_hand_made_case(hand_made):
    # 24 positive-negative pairs: 21 ordered right, one tie (0.6 vs 0.6), two wrong.
    auc = hand_made["roc_auc"]
    assert auc["value"] == pytest.approx(21.5 / 24) and auc["ci"][0] <= auc["value"] <= auc["ci"][1]


def test_per_source_groups_by_the_text_before_the_bracket(hand_made):
    assert set(hand_made["per_source"]) == {"A", "B", "C"}


def test_a_one_class_source_has_a_sensitivity_but_no_auc(hand_made):
    source = hand_made["per_source"]["A"]
    assert source["sensitivity"]["value"] == 1.0 and source["roc_auc"]["value"] is None


def test_a_negative_source_has_its_own_specificity(hand_made):
    assert hand_made["per_source"]["C"]["specificity"]["value"] == 0.75


def test_roc_curve_runs_from_the_origin_to_full_sensitivity(hand_made):
    assert hand_made["roc_curve"]["fpr"][0] == 0.0 and hand_made["roc_curve"]["tpr"][-1] == 1.0


def test_calibration_curve_and_error_on_a_hand_made_case():
    # Bin (0.2, 0.3]: 0.25 x4, one positive -> observed 0.25, no error.
    # Bin (0.7, 0.8]: 0.75 x4, all positive -> observed 1.0, error 0.25 on half the cases.
    probability = np.array([0.25] * 4 + [0.75] * 4)
    is_positive = np.array([1, 0, 0, 0, 1, 1, 1, 1], bool)
    result = calibration(is_positive, probability)
    assert [(b["n"], b["mean_probability"], b["observed_positive_rate"]) for b in result["curve"]] == [(4, 0.25, 0.25), (4, 0.75, 1.0)]
    assert result["ece"] == pytest.approx(0.125)


def test_calibration_error_is_small_when_calibrated():
    rng = np.random.default_rng(0)
    p = rng.random(20000)
    assert calibration(rng.random(20000) < p, p)["ece"] < 0.02


def test_calibration_error_of_a_hesitant_model_on_one_class():
    assert calibration(np.ones(100, bool), np.full(100, 0.5))["ece"] == pytest.approx(0.5)
