"""Evaluation runs: one version measured on one dataset folder (the configured evaluation set by
default), as a job of its own so a request made while the broker is down still runs later. The
measurement itself is kept in Evaluation; measuring twice on the same files reuses the first."""
import logging
import traceback

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from jobs import lifecycle
from ml import audit
from ml import datasets as folders
from ml import model_store, runtime
from ml.models import Evaluation, EvaluationRun, ModelVersion

from .datasets import DatasetCheck, TrainingRefused, check_evaluation_folder, resolve_dataset_path
from .generalisation import measure_shortcuts

logger = logging.getLogger(__name__)

NO_EVALUATION_SET = "No evaluation set is configured: create the folder `evaluation/` in the datasets folder or set PORTAL_EVALUATION_SET."


class EvaluationError(Exception):
    pass


def _checked_folder(data_dir, allow_outside_root):
    if data_dir is None:
        data_dir = folders.evaluation_set()
        if data_dir is None and not folders.on_this_host():
            data_dir = settings.ML_EVALUATION_SET or None  # named here, checked by the worker
        if data_dir is None:
            raise EvaluationError(NO_EVALUATION_SET)
    try:
        if not folders.on_this_host():  # a web server without the datasets folder: the worker checks it (_measure)
            return DatasetCheck(path=resolve_dataset_path(data_dir, allow_outside_root=allow_outside_root))
        return check_evaluation_folder(data_dir, allow_outside_root=allow_outside_root)
    except TrainingRefused as refusal:
        raise EvaluationError(str(refusal)) from refusal


def start_evaluation(version, actor=None, *, data_dir=None, enqueue=True, allow_outside_root=False, via=None, ip_address=None):
    """Check the folder, record the run and queue it for the training worker once committed.
    `enqueue=False` is for a caller that runs it itself with execute_evaluation. One at a time per
    version and folder: while one is queued or running, raises lifecycle.AlreadyUnderway."""
    check = _checked_folder(data_dir, allow_outside_root)
    with transaction.atomic():
        ModelVersion.objects.select_for_update().filter(pk=version.pk).first()  # two requests at once: one run
        running = lifecycle.underway(EvaluationRun.objects.filter(version=version, dataset_path=folders.display_path(check.path)))
        if running is not None:
            raise lifecycle.AlreadyUnderway(f"The evaluation of {version.label} on {running.dataset_path} is already {running.status} "
                                            f"(run {running.pk}); its result appears on the version's page.", running)
        run = EvaluationRun.objects.create(
            version=version,
            dataset_path=folders.display_path(check.path),
            created_by=actor if actor is not None and actor.is_authenticated else None,
            # A run its caller runs itself counts as handed over, so the sweep does not send it too.
            enqueued_at=None if enqueue else timezone.now(),
        )
        if enqueue:
            lifecycle.enqueue_on_commit(run)
        audit.record(actor, "evaluation.started", via=via, ip_address=ip_address, run=run.pk, version=version.pk, dataset=run.dataset_path)
    return run


def execute_evaluation(run_id):
    """Run one queued evaluation to its end in this process; the run as it ended, or None when it
    was not queued (a duplicate delivery)."""
    run = lifecycle.run_to_end(EvaluationRun, run_id, lambda run: {"evaluation": _measure(run.version, run.dataset_path, run.created_by)},
                               refusals=EvaluationError)
    if run is None:
        return None
    return EvaluationRun.objects.select_related("evaluation", "version").get(pk=run.pk)


def _measure(version, data_dir, actor):
    check = _checked_folder(data_dir, allow_outside_root=True)
    fingerprint = folders.dataset_fingerprint(check.path)
    existing = Evaluation.objects.filter(version=version, dataset_fingerprint=fingerprint).first()
    if existing is not None:
        return existing
    from ml.engine import ArtifactIntegrityError, evaluate_artifact

    try:
        # A derived int8 version is measured as it serves: by its int8 export, not by the Keras reference.
        int8_export = runtime.stored_path(version.serving_export.export_path) if version.precision == "int8" else None
        metrics = evaluate_artifact(runtime.artifact_path(version), check.path, expected_sha256=version.sha256, int8_export=int8_export)
    except (ArtifactIntegrityError, FileNotFoundError, ValueError) as error:
        raise EvaluationError(f"{version.label} cannot be evaluated on {folders.display_path(check.path)}: {error}") from error
    fingerprint = metrics.get("dataset_fingerprint") or fingerprint
    try:
        # Part of the same job: a version is never measured without asking what it looks at.
        measure_shortcuts(version, runtime.artifact_path(version), check.path, metrics, fingerprint)
    except Exception as error:  # the measurement stands; the report says the shortcut part failed
        logger.error("Shortcut report of %s on %s failed:\n%s", version.label, check.path, traceback.format_exc())
        metrics["shortcuts_error"] = f"{type(error).__name__}: {error}"[:500]
    return record_evaluation(
        version=version, dataset_path=folders.display_path(check.path), fingerprint=fingerprint,
        n_images=int(metrics.get("n") or check.n_images), metrics=metrics, actor=actor,
    )


def record_evaluation(*, version, dataset_path, fingerprint, n_images, metrics, actor=None):
    """Keep one measurement and redraw the comparison plot of its evaluation set, so that pages
    serve a file drawn once per measurement instead of drawing on every request."""
    try:
        with transaction.atomic():
            evaluation = Evaluation.objects.create(
                version=version, dataset_path=dataset_path, dataset_fingerprint=fingerprint, n_images=n_images, metrics=metrics,
                created_by=actor if actor is not None and actor.is_authenticated else None,
            )
    except IntegrityError:
        return Evaluation.objects.get(version=version, dataset_fingerprint=fingerprint)
    draw_comparison_plot(fingerprint)
    return evaluation


def comparison_plot_path(fingerprint):
    return settings.MODEL_STORE_DIR / "plots" / f"roc-{fingerprint}.png"


def draw_comparison_plot(fingerprint):
    """The ROC curves of every version measured on one evaluation set (one fingerprint), in one PNG.
    Which version is active is said by the comparison table, so promotions need no redraw."""
    from ml.engine.judge.plots import save_roc_comparison_png

    evaluations = Evaluation.objects.filter(dataset_fingerprint=fingerprint).select_related("version").order_by("version_id")
    curves = [
        {"label": f"{e.version.label} {e.version.backbone}" + (" DEMO" if e.version.trained_on_synthetic_data else ""),
         "metrics": e.metrics, "dashed": e.version.trained_on_synthetic_data}
        for e in evaluations if e.metrics.get("roc_curve")
    ]
    if not curves:
        return None
    path = save_roc_comparison_png(curves, comparison_plot_path(fingerprint), title=f"ROC on {evaluations[0].dataset_path} (dots: each version's threshold)")
    model_store.publish(path)
    return path
