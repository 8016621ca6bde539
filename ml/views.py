"""Administrator pages for model versions and training jobs: parse, call one service or selector, render.

Every view here is for administrators only; anyone else gets 403 before the request is looked at
(so a clinician gets 403, not 405, from a POST-only address too).
"""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from jobs import lifecycle

from . import datasets, model_store, selectors, services, trust
from .audit import client_ip
from .forms import DerivationForm, PromoteForm, TrainingJobForm
from .models import ModelVersion, TrainingJob


# The one permission every view below needs; it is checked before the method (see above).
administrators_only = permission_required("ml.manage_models", raise_exception=True)


def _evaluation_set(request=None):
    """(display name, fingerprint) of the configured evaluation set, or (None, None). A folder the
    engine cannot read is reported on the page rather than breaking it."""
    path = datasets.evaluation_set()
    if path is None and settings.ML_EVALUATION_SET and not datasets.on_this_host():
        # A web server without the datasets folder: the set as the training worker last measured it.
        shown = datasets.display_path(settings.ML_EVALUATION_SET)
        return shown, selectors.latest_fingerprint(shown)
    if path is None:
        return None, None
    try:
        return datasets.display_path(path), datasets.dataset_fingerprint(path)
    except (ValueError, OSError) as error:
        if request is not None:
            messages.error(request, f"The evaluation set {datasets.display_path(path)} cannot be read: {error}")
        return None, None


def version_or_404(version_id):
    """A version for a page (with its was_active mark), or 404; the report and site-threshold pages use it too."""
    try:
        return selectors.version(version_id)
    except ModelVersion.DoesNotExist:
        raise Http404("No such model version.")


@administrators_only
def version_list(request):
    """All versions side by side on the shared evaluation set, with their ROC curves in one plot."""
    evaluation_set, fingerprint = _evaluation_set(request)
    rows = selectors.comparison(fingerprint)
    context = {
        "rows": rows,
        "evaluation_set": evaluation_set,
        "fingerprint": fingerprint,
        "has_curves": any(row.evaluation and selectors.roc_points(row.evaluation.metrics) for row in rows),
        "metric_labels": [label for _key, label in selectors.COMPARED_METRICS],
        "promotions": selectors.promotion_history()[:20],
        "jobs": selectors.training_jobs()[:5],
    }
    return render(request, "ml/version_list.html", context)


@administrators_only
def roc_plot(request):
    """The ROC curves of every version measured on the current evaluation set: the PNG drawn when
    the last of those measurements finished."""
    _name, fingerprint = _evaluation_set()
    if not fingerprint:
        raise Http404("No version has been measured on the evaluation set yet.")
    return model_store.png_response(model_store.key_of(services.comparison_plot_path(fingerprint)),
                                    missing="No version has been measured on the evaluation set yet.")


@administrators_only
def version_detail(request, version_id):
    version = version_or_404(version_id)
    context = {
        "version": version,
        "evaluations": [(evaluation, selectors.evaluation_figures(evaluation.metrics)) for evaluation in selectors.evaluations_of(version)],
        "promotions": selectors.promotions_of(version),
        "derivation": version.derivation_runs.select_related("derived").first(),
        "evaluation_set": _evaluation_set()[0],
    }
    return render(request, "ml/version_detail.html", context)


@administrators_only
def version_promote(request, version_id):
    """GET asks for confirmation, showing what changes; POST switches the active version."""
    version = version_or_404(version_id)
    form = PromoteForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            promotion = services.promote_version(
                version.pk, actor=request.user, reason=form.cleaned_data["reason"], override=form.cleaned_data["override"],
                ip_address=client_ip(request),
            )
        except services.PromotionError as error:
            form.add_error(None, str(error))
        else:
            verb = "Rolled back to" if promotion.is_rollback else "Promoted"
            messages.success(request, f"{verb} {version.label}: new scans are analysed by it from now on.")
            return redirect("ml:version_list")
    evaluation_set, fingerprint = _evaluation_set()
    active = selectors.active_version_or_none()
    compared = {row.version.pk: row for row in selectors.comparison(fingerprint) if row.version.pk in {version.pk, getattr(active, "pk", None)}}
    context = {
        "version": version,
        "active": active,
        "target_row": compared.get(version.pk),
        "active_row": compared.get(getattr(active, "pk", None)),
        "is_rollback": version.was_active,
        "concerns": trust.promotion_concerns(version, active),
        "reference_set": trust.reference_set(),
        "evaluation_set": evaluation_set,
        "metric_labels": [label for _key, label in selectors.COMPARED_METRICS],
        "form": form,
    }
    return render(request, "ml/version_promote.html", context, status=400 if form.errors else 200)


@administrators_only
@require_POST
def version_evaluate(request, version_id):
    version = version_or_404(version_id)
    sets = datasets.configured_evaluation_sets()
    if not sets:
        messages.error(request, services.NO_EVALUATION_SET)
    underway = []
    for data_dir in sets:
        try:
            services.start_evaluation(version, request.user, data_dir=data_dir, allow_outside_root=True, ip_address=client_ip(request))
        except services.EvaluationError as error:
            messages.error(request, str(error))
        except lifecycle.AlreadyUnderway as running:
            underway.append(str(running))
        else:
            messages.success(request, f"{version.label} will be evaluated on {datasets.display_path(data_dir)} by the training worker, with its shortcut report.")
    if underway and len(underway) == len(sets):
        return _already_underway(request, version, " ".join(underway))
    for sentence in underway:
        messages.info(request, sentence)
    return redirect("ml:version_detail", version_id=version.pk)


def _already_underway(request, version, message):
    # 409: the request conflicts with work already queued; the page names that run.
    back = reverse("ml:version_detail", args=[version.pk])
    return render(request, "409.html", {"message": message, "back": back}, status=409)


@administrators_only
@require_POST
def version_derive_int8(request, version_id):
    """Queue the int8 derivation for the training worker; its outcome (a new candidate, or the one
    sentence why not) appears on this version's page."""
    version = version_or_404(version_id)
    form = DerivationForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(form.errors["keep_fp32"]))
        return redirect("ml:version_detail", version_id=version.pk)
    kept = form.cleaned_data["keep_fp32"]
    try:
        services.start_derivation(version, request.user, keep_fp32=kept, ip_address=client_ip(request))
    except lifecycle.AlreadyUnderway as running:
        return _already_underway(request, version, str(running))
    messages.success(request, f"The int8 version of {version.label}{' with ' + ', '.join(kept) + ' kept in fp32' if kept else ''} will be "
                              "made and checked against Keras by the training worker; the outcome appears below.")
    return redirect("ml:version_detail", version_id=version.pk)


@administrators_only
def job_list(request):
    return render(request, "ml/job_list.html", {"jobs": selectors.training_jobs()[:100]})


@administrators_only
def job_create(request):
    form = TrainingJobForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            job = services.start_training_job(
                actor=request.user, source=data["source"], dataset=data["dataset"], backbone=data["backbone"],
                epochs=data["epochs"], image_size=data["image_size"], weights=data["weights"], batch_size=data["batch_size"],
                held_out_sources=data["held_out_sources"], ip_address=client_ip(request),
            )
        except services.TrainingRefused as refusal:
            form.add_error(None, str(refusal))
        else:
            messages.success(request, f"Training job {job.pk} is queued.")
            return redirect("ml:job_detail", job_id=job.pk)
    context = {"form": form, "dataset_folders": datasets.dataset_folders(), "datasets_root": datasets.datasets_root()}
    return render(request, "ml/job_form.html", context, status=400 if form.errors else 200)


@administrators_only
def job_detail(request, job_id):
    job = get_object_or_404(selectors.training_jobs(), pk=job_id)
    return render(request, "ml/job_detail.html", {"job": job})


@administrators_only
def job_progress(request, job_id):
    """The progress panel alone; the job page polls it until the job has finished."""
    job = get_object_or_404(selectors.training_jobs(), pk=job_id)
    return render(request, "ml/_job_progress.html", {"job": job})


@administrators_only
@require_POST
def job_cancel(request, job_id):
    job = get_object_or_404(TrainingJob, pk=job_id)
    try:
        job = services.cancel_training_job(job.pk, actor=request.user, ip_address=client_ip(request))
    except services.TrainingRefused as refusal:
        messages.error(request, str(refusal))
    else:
        if job.status == TrainingJob.Status.CANCELLED:
            messages.success(request, f"Training job {job.pk} was cancelled before it started.")
        else:
            messages.success(request, f"Training job {job.pk} will stop at the worker's next check.")
    return redirect("ml:job_detail", job_id=job.pk)
