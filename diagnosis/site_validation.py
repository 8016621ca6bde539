"""The local validation report of one version at one site, from that site's blind reads only.

A model trained elsewhere can rank and calibrate a new hospital's films far worse than its own
test split says (docs/engine.md: specificity 0.85 on the internal test split, 0.62 at other
hospitals). So before a site's clinicians see its results, the site runs silent: the model reads
every film, clinicians read the same films blind (ai_visibility), and this report compares the two.

Truth is each film's newest current blind read (ai_result_visible false), by the rule training uses
(selectors.review_says_positive); indeterminate findings are counted and left out. Reads made with
the AI result visible (an administrator's, or any made while the site was live) are counted apart
and never used: they may have been swayed by the result they judge. Probabilities are the
version's own (site_thresholds.version_probability).

The figures: ROC AUC with its bootstrap CI; sensitivity and specificity (Wilson CIs) at the
version's stored threshold, at a threshold fitted on these reads (with a site temperature when one
helps, site_thresholds' rule) and at the threshold in force for the site; calibration error before
and after that temperature; n per finding. A report is offered for a decision only with at least
SITE_VALIDATION_MIN_PER_FINDING reads of each finding; the targets (SITE_LIVE_MIN_*) are what going
live without an override needs (diagnosis.site_going_live).
"""
import numpy as np
from django.conf import settings

from ml.engine.model.decision import select_threshold
from ml.engine.model.temperature import apply_temperature, one_vs_rest

from ml import trust

from . import site_thresholds, storage
from .models import Prediction, Site


def _metrics():
    from ml.engine.judge import metrics  # scipy and scikit-learn, loaded when a report is computed (see site_thresholds._metrics)

    return metrics


blind_reads = site_thresholds.blind_reads  # the same films and truth as a site's threshold fit


def _in_force(version, site, is_positive, probability):
    """Sensitivity and specificity at the threshold (and temperature) the site's results are decided by."""
    fitted = site_thresholds.current(version, site)
    if fitted is None:
        return {**site_thresholds._figures_at(is_positive, probability, version.threshold), "source": "version"}
    if fitted.temperature is not None:
        probability = apply_temperature(one_vs_rest(probability), fitted.temperature)[:, 1].astype(np.float64)
    return {**site_thresholds._figures_at(is_positive, probability, fitted.threshold), "source": "site", "fitted": fitted.description}


def _figures(version, site, is_positive, probability):
    temperature, recalibrated, calibration = site_thresholds._fit_calibration(is_positive, probability)
    target = float(version.training_params.get("target_sensitivity") or site_thresholds.DEFAULT_TARGET_SENSITIVITY)
    fitted_threshold = float(select_threshold(is_positive, recalibrated, target)["threshold"])
    return {
        "roc_auc": _metrics().auc_with_ci(is_positive, probability),
        "version_threshold": site_thresholds._figures_at(is_positive, probability, version.threshold),
        "fitted_threshold": {**site_thresholds._figures_at(is_positive, recalibrated, fitted_threshold), "target_sensitivity": target},
        "in_force": _in_force(version, site, is_positive, probability),
        "calibration": calibration,
    }


def missed_targets(figures):
    """The targets the figures fall short of, each as a sentence (empty: none)."""
    missed = []
    auc_low = figures["roc_auc"]["ci"][0]
    if auc_low is None or auc_low < settings.SITE_LIVE_MIN_AUC_LOWER_BOUND:
        missed.append(f"the lower 95% bound of the AUC is {_number(auc_low)}, below the target of {settings.SITE_LIVE_MIN_AUC_LOWER_BOUND:.2f}")
    specificity = figures["in_force"]["specificity"]["value"]
    if specificity is None or specificity < settings.SITE_LIVE_MIN_SPECIFICITY:
        missed.append(f"the specificity at the threshold in force is {_number(specificity)}, below the target of {settings.SITE_LIVE_MIN_SPECIFICITY:.2f}")
    return missed


def _number(value):
    return "unknown" if value is None else f"{value:.2f}"


def _meaning(version, site, report):
    """The plain sentence of what the figures mean for this site."""
    n_pos, n_neg = report["n_positive"], report["n_negative"]
    if not report["ready"]:
        return (f"Not enough blind reads yet: {site.name} has {n_pos} positive and {n_neg} negative films read blind for {version.label}; "
                f"a decision needs {report['minimum_per_finding']} of each. Figures on fewer films are too uncertain to judge the model by.")
    figures = report["figures"]
    auc, in_force = figures["roc_auc"], figures["in_force"]
    sensitivity, specificity = in_force["sensitivity"], in_force["specificity"]
    false_positives = specificity["n"] - specificity["k"]
    sentence = (
        f"On {n_pos + n_neg} films of {site.name} read blind, {version.label} ranked a positive film above a negative one "
        f"{100 * auc['value']:.0f}% of the time (AUC {auc['value']:.2f}, 95% CI {auc['ci'][0]:.2f}-{auc['ci'][1]:.2f}). "
        f"At the threshold in force it would have flagged {sensitivity['k']} of {sensitivity['n']} films clinicians found positive, "
        f"and {false_positives} of {specificity['n']} they found negative (specificity {specificity['value']:.2f}). "
    )
    if report["missed_targets"]:
        return sentence + "It falls short of the site's targets: " + "; ".join(report["missed_targets"]) + "."
    return sentence + "It meets the site's targets."


def report(version, site):
    """The local validation report: plain data, for the administrators' page, the API and the
    record of a decision."""
    return {**report_on(version, site, *blind_reads(version, site)), "looks_at": looks_at(version, site)}


def report_on(version, site, is_positive, probability, counts):
    """The report from plain arrays: findings of blind reads and the version's probabilities of the
    same films (site_remeasure passes a candidate's, read afresh from the films)."""
    n_pos, n_neg = int(is_positive.sum()), int((~is_positive).sum())
    minimum = settings.SITE_VALIDATION_MIN_PER_FINDING
    result = {
        "site": site.code, "version": version.label, "version_id": version.pk,
        "n_positive": n_pos, "n_negative": n_neg, "n_indeterminate": counts["indeterminate"],
        "n_unblinded_only": counts["unblinded_only"], "minimum_per_finding": minimum,
        "ready": n_pos >= minimum and n_neg >= minimum,
        "targets": {"auc_lower_bound": settings.SITE_LIVE_MIN_AUC_LOWER_BOUND, "specificity": settings.SITE_LIVE_MIN_SPECIFICITY},
        "figures": _figures(version, site, is_positive, probability) if n_pos and n_neg else None,
        "missed_targets": [],
    }
    if result["ready"]:
        result["missed_targets"] = missed_targets(result["figures"])
    result["meaning"] = _meaning(version, site, result)
    return result


def looks_at(version, site):
    """What the model looks at on the site's films, the part of the shortcut report that needs no
    labels: the share of each stored heatmap (the version's, on the site's newest films) that falls
    outside the lung fields the engine finds on the film itself. Plain data and ml.trust's sentence."""
    from ml.engine import decode_image_bytes, lung_fields

    predictions = (Prediction.objects.filter(model_version=version, scan__patient__site=site, heatmap_is_map=True).exclude(heatmap_name="")
                   .select_related("scan").order_by("-created_at")[:settings.ML_SHORTCUT_GRADCAM])
    shares, areas = [], []
    for prediction in predictions:
        try:
            heat = decode_image_bytes(storage.read(prediction.heatmap_name), min_side=1).pixels.astype(np.float64)
            outside = ~lung_fields(storage.load_pixels(prediction.scan.stored_name), size=heat.shape).mask
        except (OSError, ValueError, storage.StoreUnavailable):  # a film or map gone from storage, or unreadable: left out of the figure
            continue
        if heat.sum() > 0:
            shares.append(float(heat[outside].sum() / heat.sum()))
            areas.append(float(outside.mean()))
    if not shares:
        return {"n": 0, "sentences": ["No heatmap of this version on this site's films could be read yet."]}
    heat_part = {"mean_share_outside": float(np.mean(shares)), "mean_area_outside": float(np.mean(areas)), "n": len(shares)}
    sentence = trust.looks_at({"shortcuts": {"heat_outside_lungs": heat_part}})
    return {**heat_part, "sentences": [f"On {len(shares)} of {site.name}'s films: {sentence[0]}"]}


def sites_for_validation():
    """Every site with its mode and the decision behind it, for the administrators' overview."""
    return Site.objects.select_related("mode_decision__version", "mode_decision__decided_by").order_by("name")
