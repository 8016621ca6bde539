"""What a model version can be trusted with: reads only (no writes), used by the promotion
safeguards, the generalisation report and every place a result is shown.

- The *reference set* is where promotions are judged: the external evaluation set when an
  administrator configured one (films from institutions the training never saw), else the
  configured evaluation set.
- *Independent validation* is a measurement on films from sources the version was not trained on:
  the external evaluation, else a source-held-out test the engine recorded. A version's own test
  split is not independent (each class comes mostly from its own hospital), so it never counts.
  A source-held-out test whose every source holds one class only is quoted with a caveat: its AUC
  rewards telling those sources apart as much as reading lungs.
- The *shortcut figures* are read from the shortcut report stored with an evaluation and compared
  with ML_SHORTCUT_TARGETS.
"""
from django.conf import settings
from django.utils.module_loading import import_string

from . import datasets
from .models import Evaluation, Promotion, metric_figure


def _display(setting_value):
    if not setting_value:
        return None
    path = datasets.dataset_path(setting_value)
    # A web server without the datasets folder names the configured set; its evaluations say the rest.
    return datasets.display_path(path) if path.is_dir() or not datasets.on_this_host() else None


def external_set():
    """The display name of the configured external evaluation set, or None."""
    return _display(settings.ML_EXTERNAL_EVALUATION_SET)


def evaluation_set():
    return _display(settings.ML_EVALUATION_SET)


def reference_set():
    return external_set() or evaluation_set()


def evaluation_on(version, dataset_path):
    """The newest measurement of the version on the set of this display name, or None."""
    if not dataset_path:
        return None
    return Evaluation.objects.filter(version=version, dataset_path=dataset_path).order_by("-id").first()


# Beside every result quoting a source-held-out test whose sources hold one class each (short: it is on every card).
ONE_CLASS_PER_SOURCE_CAVEAT = "each held-out source holds one class only, so its AUC also measures telling sources apart"


def one_class_per_source(held_out):
    """Whether no source of a recorded source-held-out test holds both classes (the engine's
    "auc_within_a_source" flag): then no AUC inside one source exists, and the AUC over them
    measures telling the sources apart as much as reading the lungs."""
    return not held_out.get("auc_within_a_source")


def independent_validation(version):
    """{"described", "n", "sensitivity", "specificity", "roc_auc", "caveat"} from films of sources
    the version never trained on, or None when it has none. "caveat" is a sentence to show beside
    the AUC, or None."""
    external = evaluation_on(version, external_set())
    caveat = None
    if external is not None:
        metrics, described = external.metrics, f"external evaluation set {external.dataset_path}"
    elif version.record.get("source_held_out"):
        metrics, described = version.record["source_held_out"], "source-held-out test"
        caveat = ONE_CLASS_PER_SOURCE_CAVEAT if one_class_per_source(metrics) else None
    else:
        return None
    return {"described": described, "n": metrics.get("n"), "caveat": caveat, **headline_figures(metrics)}


def headline_figures(metrics):
    """Sensitivity, specificity and ROC AUC of one set of the engine's metrics, each as
    metric_figure gives it (None where it was not measured)."""
    return {name: metric_figure(metrics.get(name)) for name in ("sensitivity", "specificity", "roc_auc")}


def latest_promotion_to(version):
    return Promotion.objects.filter(to_version=version).order_by("-at", "-id").first()


def was_overridden(version):
    """Whether the promotion that made this version active last overrode the safeguards."""
    promotion = latest_promotion_to(version)
    return bool(promotion and promotion.overridden)


def result_notes(version, validation=None):
    """The sentences every result of this version carries (page, API, report)."""
    notes = []
    if version.trained_on_synthetic_data:
        notes.append("DEMO MODEL trained on synthetic images, not on patients: not for clinical use.")
    validation = validation or independent_validation(version)
    if validation is None:
        notes.append("Not validated on independent sources.")
    elif validation["caveat"]:
        notes.append(f"{validation['described'].capitalize()}: {validation['caveat']}.")
    if was_overridden(version):
        notes.append("Made active by an administrator's override of the promotion safeguards.")
    return notes


def result_trust(version, per_request=None):
    """What every result of this version carries: its independent validation (or None) and the
    notes above. Kept on the instance and, given `per_request` (a dict living as long as one
    request), by version id: a list of results loads a fresh instance per row, yet asks once."""
    cached = getattr(version, "_result_trust", None)
    if cached is None and per_request is not None:
        cached = per_request.get(version.pk)
    if cached is None:
        # A demo model's figures, wherever measured, are never quoted beside a result as validation.
        validation = None if version.trained_on_synthetic_data else independent_validation(version)
        cached = {
            "validation": validation,
            "notes": result_notes(version, validation),
            "demo": version.trained_on_synthetic_data,
            "validated": validation is not None,
            "overridden": was_overridden(version),
        }
    version._result_trust = cached
    if per_request is not None:
        per_request[version.pk] = cached
    return cached


# --- the shortcut report against its targets ---------------------------------------------

def shortcut_figures(metrics):
    """The four target figures of one evaluation's stored shortcut report (None where absent)."""
    report = (metrics or {}).get("shortcuts") or {}
    occlusion = (report.get("occlusion") or {}).get("overall") or {}
    flip = (report.get("counterfactual") or {}).get("flip_rate") or {}
    heat = report.get("heat_outside_lungs") or {}
    ece = ((metrics or {}).get("calibration") or {}).get("ece")
    return {
        "lungs_blanked_auc": (occlusion.get("lungs_blanked") or {}).get("value"),
        "outside_lungs_blanked_auc": (occlusion.get("outside_lungs_blanked") or {}).get("value"),
        "flip_rate": flip.get("value"),
        "heat_outside_lungs": heat.get("mean_share_outside"),
        "area_outside_lungs": heat.get("mean_area_outside"),
        "ece": ece,
    }


TARGET_SENTENCES = {
    "lungs_blanked_auc": ("AUC with the lung fields blanked", "{value:.2f}, above the target of {target:.2f}: it still scores without seeing the lungs"),
    "flip_rate": ("counterfactual flip rate", "{value:.0%}, above the target of {target:.0%}: its answer changes with how a film was acquired"),
    "heat_outside_lungs": ("heat outside the lungs", "{value:.0%}, above the target of {target:.0%}: it looks mostly outside the lungs"),
    "ece": ("calibration error (ECE)", "{value:.3f}, above the target of {target:.3f}: its probabilities are not to be taken literally"),
}


def target_failures(metrics):
    """One sentence per shortcut target missed, or per target figure the report does not hold."""
    figures = shortcut_figures(metrics)
    failures = []
    for key, target in settings.ML_SHORTCUT_TARGETS.items():
        name, sentence = TARGET_SENTENCES[key]
        value = figures.get(key)
        if value is None:
            why = ((metrics or {}).get("shortcuts") or {}).get("counterfactual", {}).get("note") if key == "flip_rate" else None
            failures.append(f"its {name} was not measured" + (f" ({why})" if why else ""))
        elif value > target:
            failures.append(f"its {name} is " + sentence.format(value=value, target=target))
    return failures


def promotion_concerns(version, active):
    """Why promoting `version` over `active` needs an explicit override: plain sentences, [] if none.
    Its figures on the reference set, then on each live site's blind-read films (the clinical app
    answers those through ML_SITE_CONCERNS_PROVIDER, so that ml does not import it)."""
    return _reference_concerns(version, active) + import_string(settings.ML_SITE_CONCERNS_PROVIDER)(version)


def _reference_concerns(version, active):
    reference = reference_set()
    if reference is None:
        return ["no evaluation set is configured, so it has not been measured on films it was not trained on"]
    evaluation = evaluation_on(version, reference)
    if evaluation is None:
        return [f"it has not been evaluated on {reference}"]
    concerns = []
    auc = metric_figure(evaluation.metrics.get("roc_auc")) or {}
    if auc.get("value") is None:
        concerns.append(f"it has no AUC on {reference}")
    elif auc["value"] < 0.5:
        concerns.append(f"its AUC on {reference} is {auc['value']:.2f}, below 0.5 (worse than chance)")
    if active is not None and active.pk != version.pk and auc.get("value") is not None:
        active_eval = evaluation_on(active, reference)
        active_auc = metric_figure(active_eval.metrics.get("roc_auc")) if active_eval else None
        if active_auc and active_auc.get("ci_low") is not None and auc["value"] < active_auc["ci_low"]:
            concerns.append(
                f"its AUC on {reference} ({auc['value']:.2f}) is below the active {active.label}'s "
                f"({active_auc['value']:.2f}, 95% CI {active_auc['ci_low']:.2f}–{active_auc['ci_high']:.2f})"
            )
    concerns += target_failures(evaluation.metrics)
    return concerns


# --- the generalisation report ------------------------------------------------------------

def _percent(value):
    return f"{value:.0%}" if value is not None else "not measured"


def looks_at(metrics):
    """Plain sentences on what the model looks at, from one evaluation's shortcut report."""
    figures = shortcut_figures(metrics)
    sentences = []
    if figures["heat_outside_lungs"] is not None:
        sentences.append(
            f"{_percent(figures['heat_outside_lungs'])} of its heatmap falls outside the lung fields "
            f"(the area outside them is {_percent(figures['area_outside_lungs'])} of a film; target at most "
            f"{settings.ML_SHORTCUT_TARGETS['heat_outside_lungs']:.0%})."
        )
    if figures["lungs_blanked_auc"] is not None:
        sentences.append(
            f"With the lung fields blanked out its AUC is {figures['lungs_blanked_auc']:.2f} (a model that reads lungs falls to "
            f"about 0.5; target at most {settings.ML_SHORTCUT_TARGETS['lungs_blanked_auc']:.2f}); with only the lungs visible it is "
            + (f"{figures['outside_lungs_blanked_auc']:.2f}." if figures["outside_lungs_blanked_auc"] is not None else "not measured.")
        )
    if figures["flip_rate"] is not None:
        sentences.append(
            f"Re-rendered in the acquisition style of the other class's sources, {_percent(figures['flip_rate'])} of its answers "
            f"change (target at most {settings.ML_SHORTCUT_TARGETS['flip_rate']:.0%})."
        )
    return sentences


def per_source_rows(metrics):
    """(source, n, classes, sensitivity, specificity, AUC) of one evaluation, each figure with its CI."""
    return [
        (name, figures.get("n"), figures.get("classes", {}), metric_figure(figures.get("sensitivity")),
         metric_figure(figures.get("specificity")), metric_figure(figures.get("roc_auc")))
        for name, figures in sorted((metrics.get("per_source") or {}).items())
    ]


def source_held_out(version):
    """The source-held-out test the engine recorded, as the report page shows it, or None."""
    held = version.record.get("source_held_out")
    if not held:
        return None
    one_class = one_class_per_source(held)
    return {
        "sources": held.get("sources", []),
        "n": held.get("n"),
        **headline_figures(held),
        "per_source": per_source_rows(held),
        "auc_caveat": ("Each class here comes from its own source, so this AUC measures telling the sources apart as much as "
                       "reading the lungs.") if one_class else None,
        "note": held.get("note"),
    }


def report_sections(version):
    """The evaluations of a version, newest first, each with what the report page shows of it."""
    external = external_set()
    sections = []
    for evaluation in Evaluation.objects.filter(version=version).order_by("-id"):
        metrics = evaluation.metrics
        sections.append({
            "evaluation": evaluation,
            "external": evaluation.dataset_path == external,
            "overall": [(label, metric_figure(metrics.get(key))) for key, label in
                        (("roc_auc", "ROC AUC"), ("sensitivity", "Sensitivity"), ("specificity", "Specificity"))],
            "ece": (metrics.get("calibration") or {}).get("ece"),
            "per_source": per_source_rows(metrics),
            "looks_at": looks_at(metrics),
            "failures": target_failures(metrics),
            "shortcuts_error": metrics.get("shortcuts_error"),
            "files": metrics.get("report_files") or {},
        })
    return sections
