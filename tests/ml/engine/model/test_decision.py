"""The label rule and the validation-only threshold choice (ml.engine.model.decision)."""
import numpy as np
import pytest

from ml.engine.model.decision import decide, default_positive_class, select_threshold

IS_POSITIVE = np.array([1, 1, 1, 1, 0, 0, 0, 0], bool)
SCORES = np.array([0.9, 0.8, 0.6, 0.3, 0.7, 0.2, 0.1, 0.05])


def test_threshold_keeps_the_target_sensitivity_with_a_margin():
    choice = select_threshold(IS_POSITIVE, SCORES, 0.75)
    # Keeping 3 of 4 positives means keeping scores >= 0.6; the next score below is 0.3.
    assert choice["lowest_positive_score_kept"] == 0.6
    assert choice["threshold"] == pytest.approx(0.45)


def test_threshold_choice_reports_its_validation_figures():
    choice = select_threshold(IS_POSITIVE, SCORES, 0.75)
    assert choice["achieved_sensitivity"] == 0.75 and choice["specificity"] == 0.75


def test_a_higher_target_sensitivity_lowers_the_threshold():
    assert select_threshold(IS_POSITIVE, SCORES, 0.95)["threshold"] == pytest.approx(0.25)


def test_threshold_without_positives_falls_back_to_one_half():
    assert select_threshold(np.zeros(3, bool), SCORES[:3], 0.95)["threshold"] == 0.5


def test_threshold_of_an_over_confident_model_is_not_pinned_to_one_case():
    is_positive = np.array([1, 1, 1, 0, 0, 0], bool)
    p = np.array([0.99999, 0.99998, 0.99996, 0.02, 0.001, 0.0001])
    choice = select_threshold(is_positive, p, 0.95)
    assert choice["achieved_sensitivity"] == 1.0 and choice["specificity"] == 1.0
    assert choice["threshold"] == pytest.approx((0.99996 + 0.02) / 2)


def test_binary_decision_applies_the_threshold_to_the_positive_class():
    assert decide(np.array([[0.4, 0.6], [0.2, 0.8]]), ["covid", "normal"], "covid", 0.3) == ["covid", "normal"]


def test_multiclass_decision_takes_the_most_likely_other_class_below_the_threshold():
    three = np.array([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]])
    assert decide(three, ["covid", "normal", "other"], "covid", 0.5) == ["normal", "covid"]


def test_default_positive_class_is_covid_in_any_case():
    assert default_positive_class(["COVID", "normal"]) == "COVID"


def test_default_positive_class_without_covid_is_the_last():
    assert default_positive_class(["a", "b"]) == "b"
