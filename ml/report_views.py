"""The generalisation report of one version: administrators and clinicians may read it (its
figures come from evaluation sets and training data, not from patients of the portal), and its
plots are files drawn once when a measurement was recorded, served from here."""
import re

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import get_object_or_404, render

from . import model_store, runtime, trust
from .models import Evaluation
from .services.generalisation import report_dir
from .views import version_or_404

READERS = ("ml.manage_models", "diagnosis.view_prediction")
REPORT_FILE = re.compile(r"^(calibration|heatmap-\d{1,2})\.png$")


def _readable_version(request, version_id):
    if not any(request.user.has_perm(permission) for permission in READERS):
        raise PermissionDenied
    return version_or_404(version_id)


@login_required
def version_report(request, version_id):
    version = _readable_version(request, version_id)
    reference = trust.reference_set()
    reference_evaluation = trust.evaluation_on(version, reference)
    context = {
        "version": version,
        "is_administrator": request.user.has_perm("ml.manage_models"),
        "internal": version.headline_metrics,
        "internal_per_source": trust.per_source_rows(version.metrics),
        "internal_plots": [name for key, name in (version.metrics.get("plots") or {}).items() if key in ("roc", "calibration")],
        "source_held_out": trust.source_held_out(version),
        "sections": trust.report_sections(version),
        "reference_set": reference,
        "external_set": trust.external_set(),
        "looks_at": trust.looks_at(reference_evaluation.metrics) if reference_evaluation else [],
        "notes": trust.result_notes(version),
    }
    return render(request, "ml/version_report.html", context)


def _png(path):
    """A plot from the model store (the local folder, or the bucket every host publishes to)."""
    return model_store.png_response(model_store.key_of(path) or path, missing="This plot was not drawn.")


@login_required
def evaluation_plot(request, version_id, evaluation_id, name):
    version = _readable_version(request, version_id)
    evaluation = get_object_or_404(Evaluation, pk=evaluation_id, version=version)
    if not REPORT_FILE.match(name):
        raise Http404("No such plot.")
    return _png(report_dir(version, evaluation.dataset_fingerprint) / name)


@login_required
def internal_plot(request, version_id, name):
    """A plot the training run drew beside the artifact (named in the version's own metrics)."""
    version = _readable_version(request, version_id)
    if name not in (version.metrics.get("plots") or {}).values():
        raise Http404("No such plot.")
    return _png(runtime.stored_path(version.artifact_path).parent / name)
