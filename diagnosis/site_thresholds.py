"""Local validation: a threshold and a calibration chosen on one population do not transfer, so an
administrator may re-fit a version's threshold and calibration on one site's reviewed scans. The
proposal (calibration error before and after, sensitivity and specificity with 95% CIs at the
version's threshold and at the new one) is shown first; only a confirmation records a
SiteThreshold, which inference then applies to that site's scans: the site's temperature, then its
threshold. Reads and writes of this one workflow, kept together.

Truth is the newest current blind read of each scan (made while the site was silent, the AI result
hidden from the reader), by the rule training on reviewed scans uses (selectors.review_says_positive):
the clinician's finding; indeterminate ones are left out. Reads made with the AI result visible are
counted apart and never used: a threshold fitted on findings swayed by the very result it decides
would only confirm the version's own. So a site fits its threshold on its silent period's reads.

Calibration is one temperature T on the logit of the version's stored positive probability,
sigmoid(logit(p) / T), fitted by ml.engine.model.temperature (maximum likelihood). With a few dozen scans
such a fit can be silly, so it is applied only when it lowers both the expected calibration error
and the log-loss on those scans and did not run to the edge of its range (which happens when the
version separates them perfectly: the likelihood then keeps rising as T shrinks). Otherwise T stays
1 and the figures say why. The new threshold is chosen on the recalibrated probabilities by the
engine's own rule (ml.engine.model.decision.select_threshold) at the version's target sensitivity.
"""
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.db import transaction

from ml.engine import results, select_threshold
from ml.engine.model.temperature import BOUNDS, apply_temperature, apply_temperature_to_positive, fit_temperature, negative_log_likelihood, one_vs_rest

from . import selectors
from .audit_trail import changes_between, record_audit
from .models import AuditEvent, Review, SiteThreshold

DEFAULT_TARGET_SENSITIVITY = 0.95


class SiteThresholdRefused(Exception):
    """A fit we refuse; the message says why in one sentence."""


@dataclass
class Proposal:
    version: object
    site: object
    threshold: float
    temperature: float | None  # None: calibration not re-fitted (figures["calibration"]["note"] says why)
    figures: dict


def version_probability(prediction):
    """The version's own positive probability of a prediction: a site temperature applied at
    inference is undone (a temperature of 1/T inverts T exactly), so that a re-fit starts from
    the version and never stacks one site temperature on another."""
    applied = prediction.site_threshold.temperature if prediction.site_threshold_id else None
    if applied is None:
        return prediction.positive_probability
    return float(apply_temperature(one_vs_rest([prediction.positive_probability]), 1.0 / applied)[0, 1])


def newest_reads(reviews, key):
    """(review, what it says: selectors.review_says_positive) for the newest review of each film,
    `reviews` being ordered by `key` (a film's prediction or scan) and newest first."""
    seen = set()
    for review in reviews:
        if key(review) not in seen:
            seen.add(key(review))
            yield review, selectors.review_says_positive(review)


def blind_reads(version, site):
    """(is positive, the version's positive probability, counts) over the films of the site this
    version read: each film's newest current blind read (ai_result_visible false). Counts say how many
    blind reads were indeterminate (left out) and how many films were read only with the AI result
    visible: those reads may have been swayed by the result they would judge, so they are counted
    apart and never used, for a fit as for the site's validation report."""
    reviews = Review.objects.filter(superseded_at__isnull=True, prediction__model_version=version, prediction__scan__patient__site=site)
    unblinded = set(reviews.filter(ai_result_visible=True).values_list("prediction_id", flat=True))
    blind = reviews.filter(ai_result_visible=False).select_related("prediction__model_version", "prediction__site_threshold").order_by(
        "prediction_id", "-created_at", "-id")
    truths, probabilities, read, indeterminate = [], [], set(), 0
    for review, says_positive in newest_reads(blind, key=lambda review: review.prediction_id):
        read.add(review.prediction_id)
        if says_positive is None:
            indeterminate += 1
            continue
        truths.append(says_positive)
        probabilities.append(version_probability(review.prediction))
    counts = {"indeterminate": indeterminate, "unblinded_only": len(unblinded - read)}
    return np.array(truths, dtype=bool), np.array(probabilities, dtype=np.float64), counts


def _figures_at(is_positive, probability, threshold):
    said = probability >= threshold
    return {
        "threshold": float(threshold),
        "sensitivity": _metrics().proportion(int((is_positive & said).sum()), int(is_positive.sum())),
        "specificity": _metrics().proportion(int((~is_positive & ~said).sum()), int((~is_positive).sum())),
    }


def _metrics():
    """ml.engine.judge.metrics, imported when a fit is computed: it loads scipy.stats and scikit-learn
    (0.4-0.7 s), which the inference worker, applying fits only, should not wait for at start."""
    from ml.engine.judge import metrics

    return metrics


def _fit_calibration(is_positive, probability):
    """(the temperature to apply or None, the recalibrated probabilities, the figures)."""
    columns, labels = one_vs_rest(probability), is_positive.astype(int)
    fitted = fit_temperature(columns, labels)
    recalibrated = apply_temperature(columns, fitted)[:, 1].astype(np.float64)
    figures = {
        "fitted_temperature": fitted,
        "ece_before": _metrics().calibration(is_positive, probability)["ece"],
        "ece_after": _metrics().calibration(is_positive, recalibrated)["ece"],
        "log_loss_before": negative_log_likelihood(columns, labels, 1.0),
        "log_loss_after": negative_log_likelihood(columns, labels, fitted),
    }
    # An optimum at an edge of the search: the likelihood is as good at a bound as at the fit (the
    # search stops where it stops changing, short of the bound itself).
    low, high = (negative_log_likelihood(columns, labels, bound) <= figures["log_loss_after"] + 1e-6 for bound in BOUNDS)
    if low:
        refusal = (f"the fit ran to the edge of its range (T = {fitted:.3g}): the version separates these scans perfectly, "
                   "so they cannot say how confident it should be")
    elif high:
        refusal = (f"the fit ran to the edge of its range (T = {fitted:.3g}): the version's probabilities say next to nothing "
                   "about these scans' findings")
    elif figures["ece_after"] >= figures["ece_before"]:
        refusal = f"T = {fitted:.3g} did not lower the calibration error (ECE {figures['ece_before']:.3f} to {figures['ece_after']:.3f})"
    elif figures["log_loss_after"] >= figures["log_loss_before"]:
        refusal = f"T = {fitted:.3g} did not lower the log-loss"
    else:
        refusal = None
    if refusal:
        return None, probability, {**figures, "temperature": None, "note": f"not re-fitted, the version's probabilities are kept: {refusal}."}
    direction = "less" if fitted > 1 else "more"
    note = f"re-fitted: T = {fitted:.3g} makes the version's probabilities {direction} confident at this site."
    return fitted, recalibrated, {**figures, "temperature": fitted, "note": note}


def _left_out(counts):
    """The reads a fit leaves out, in words ("" when none)."""
    parts = []
    if counts["indeterminate"]:
        parts.append(f"{counts['indeterminate']} more left out: their blind read's finding is indeterminate")
    if counts["unblinded_only"]:
        parts.append(f"{counts['unblinded_only']} read only with the AI result visible, never used")
    return f" ({'; '.join(parts)})" if parts else ""


def propose(version, site):
    """The fit an administrator is asked to confirm; refused below the minimum of each class."""
    is_positive, probability, counts = blind_reads(version, site)
    needed = settings.ML_SITE_THRESHOLD_MIN_PER_CLASS
    positives, negatives = int(is_positive.sum()), int((~is_positive).sum())
    if positives < needed or negatives < needed:
        raise SiteThresholdRefused(
            f"A threshold for {site.name} needs at least {needed} scans of each class read blind, whose AI result {version.label} made; "
            f"it has {positives} {version.positive_class} and {negatives} other{_left_out(counts)}. Blind reads are made while the site "
            "is in its silent period."
        )
    temperature, recalibrated, calibration_figures = _fit_calibration(is_positive, probability)
    target = float(version.training_params.get("target_sensitivity") or DEFAULT_TARGET_SENSITIVITY)
    threshold = float(select_threshold(is_positive, recalibrated, target)["threshold"])
    figures = {
        "n_positive": positives, "n_negative": negatives, "n_left_out": counts["indeterminate"],
        "n_unblinded_only": counts["unblinded_only"], "target_sensitivity": target,
        "version_threshold": _figures_at(is_positive, probability, version.threshold),
        "site_threshold": _figures_at(is_positive, recalibrated, threshold),
        "calibration": calibration_figures,
    }
    return Proposal(version, site, threshold, temperature, figures)


def current(version, site):
    """The fit in force for this version at this site, or None (the version's own applies)."""
    return SiteThreshold.objects.filter(version=version, site=site).select_related("site").first()


def _same(shown, proposed):
    if shown is None or proposed is None:
        return shown is None and proposed is None
    return abs(float(shown) - proposed) <= 1e-9 * max(1.0, abs(proposed))


@transaction.atomic
def confirm(version, site, *, shown_threshold, shown_temperature, actor, ip_address=None):
    """Record the fit the administrator saw. Refused if the reviews changed since it was shown."""
    proposal = propose(version, site)
    if not (_same(shown_threshold, proposal.threshold) and _same(shown_temperature, proposal.temperature)):
        raise SiteThresholdRefused("The reviewed scans changed since the figures were shown; look at the new figures and confirm again.")
    before = current(version, site)
    fitted = SiteThreshold.objects.create(version=version, site=site, threshold=proposal.threshold, temperature=proposal.temperature,
                                          figures=proposal.figures, created_by=actor)
    was = {"threshold": before.threshold, "temperature": before.temperature} if before else {"threshold": version.threshold, "temperature": None}
    details = {
        "changes": changes_between(was, {"threshold": fitted.threshold, "temperature": fitted.temperature}),
        "version": version.label, "site": site.code, "reviewed_scans": fitted.n_reviewed,
    }
    record_audit(actor, AuditEvent.Action.SITE_THRESHOLD_SET, ip_address=ip_address, details=details)
    return fitted


def apply(version, result, fitted):
    """The model's answer recalibrated by a site's temperature and decided by its threshold, when
    `fitted` (the site's SiteThreshold in force, `current`) is one: (result, fitted)."""
    if fitted is None:
        return result, None
    probabilities = np.array([[result["probabilities"][name] for name in version.class_names]])
    if fitted.temperature is not None:
        probabilities = apply_temperature_to_positive(probabilities, version.class_names.index(version.positive_class), fitted.temperature)
    (answer,) = results(probabilities, version.class_names, version.positive_class, fitted.threshold)
    # The heatmap shown beside a label is that label's map, also when the site's threshold changed the label.
    return {**result, **answer, "heatmap": result["heatmaps"][answer["label"]], "heatmap_class": answer["label"]}, fitted
