"""Local validation and a site threshold: a threshold chosen on one population does not transfer,
so an administrator may re-fit a version's threshold on one site's reviewed scans. The proposal
(sensitivity and specificity with 95% CIs at the version's threshold and at the new one) is shown
first; only a confirmation records a SiteThreshold, which inference then uses for that site's
scans. Reads and writes of this one workflow, kept together.

Truth is the clinician's latest current review: agreeing keeps the AI's label, disagreeing gives
the other class (as for training on reviewed scans). The new threshold is chosen by the engine's
own rule (ml.engine.decision.select_threshold) at the version's target sensitivity.
"""
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.db import transaction

from ml.engine.decision import decide, select_threshold
from ml.engine.metrics import proportion

from .models import AuditEvent, Prediction, Review, SiteThreshold

DEFAULT_TARGET_SENSITIVITY = 0.95


class SiteThresholdRefused(Exception):
    """A fit we refuse; the message says why in one sentence."""


@dataclass
class Proposal:
    version: object
    site: object
    threshold: float
    figures: dict


def reviewed_outcomes(version, site):
    """(true is-positive, positive probability) of each scan of the site this version read and a
    clinician reviewed, by its newest current review."""
    reviews = Review.objects.filter(
        superseded_at__isnull=True, prediction__model_version=version, prediction__scan__patient__site=site,
    ).select_related("prediction").order_by("prediction_id", "-created_at", "-id")
    truths, probabilities, seen = [], [], set()
    for review in reviews:
        prediction = review.prediction
        if prediction.pk in seen:
            continue
        seen.add(prediction.pk)
        said_positive = prediction.label == version.positive_class
        truths.append(said_positive if review.agrees else not said_positive)
        probabilities.append(prediction.positive_probability)
    return np.array(truths, dtype=bool), np.array(probabilities, dtype=np.float64)


def _figures_at(is_positive, probability, threshold):
    said = probability >= threshold
    return {
        "threshold": float(threshold),
        "sensitivity": proportion(int((is_positive & said).sum()), int(is_positive.sum())),
        "specificity": proportion(int((~is_positive & ~said).sum()), int((~is_positive).sum())),
    }


def propose(version, site):
    """The fit an administrator is asked to confirm; refused below the minimum of each class."""
    is_positive, probability = reviewed_outcomes(version, site)
    needed = settings.ML_SITE_THRESHOLD_MIN_PER_CLASS
    positives, negatives = int(is_positive.sum()), int((~is_positive).sum())
    if positives < needed or negatives < needed:
        raise SiteThresholdRefused(
            f"A threshold for {site.name} needs at least {needed} reviewed scans of each class read by {version.label}; "
            f"it has {positives} {version.positive_class} and {negatives} other."
        )
    target = float(version.training_params.get("target_sensitivity") or DEFAULT_TARGET_SENSITIVITY)
    threshold = float(select_threshold(is_positive, probability, target)["threshold"])
    figures = {
        "n_positive": positives, "n_negative": negatives, "target_sensitivity": target,
        "version_threshold": _figures_at(is_positive, probability, version.threshold),
        "site_threshold": _figures_at(is_positive, probability, threshold),
        "calibration": "not re-fitted: this version records no temperature",
    }
    return Proposal(version, site, threshold, figures)


def current(version, site):
    """The threshold in force for this version at this site, or None (the version's own applies)."""
    return SiteThreshold.objects.filter(version=version, site=site).first()


@transaction.atomic
def confirm(version, site, *, shown_threshold, actor, ip_address=None):
    """Record the fit the administrator saw. Refused if the reviews changed since it was shown."""
    proposal = propose(version, site)
    if abs(proposal.threshold - float(shown_threshold)) > 1e-9:
        raise SiteThresholdRefused("The reviewed scans changed since the figures were shown; look at the new figures and confirm again.")
    fitted = SiteThreshold.objects.create(version=version, site=site, threshold=proposal.threshold, figures=proposal.figures, created_by=actor)
    AuditEvent.objects.create(actor=actor, action=AuditEvent.Action.SITE_THRESHOLD_SET, ip_address=ip_address)
    return fitted


def apply(version, result, site):
    """The model's answer for a scan of `site`, decided by the site's threshold when one is in
    force: (result, SiteThreshold or None)."""
    fitted = current(version, site)
    if fitted is None:
        return result, None
    probabilities = np.array([[result["probabilities"][name] for name in version.class_names]])
    label = decide(probabilities, version.class_names, version.positive_class, fitted.threshold)[0]
    return {**result, "label": label, "threshold": fitted.threshold}, fitted
