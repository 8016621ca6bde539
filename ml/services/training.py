"""Training jobs: checked and queued by start_training_job, run to their end by
execute_training_job (in a Celery worker, or in the process of `manage.py train` and of the demo
model's setup), cancelled by cancel_training_job. jobs.lifecycle claims, beats and sweeps them."""
import logging
import shutil
import threading
import traceback
import uuid
from collections import deque
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from jobs import lifecycle
from ml import audit
from ml import datasets as folders
from ml.engine import BACKBONES
from ml.models import TrainingJob

from .datasets import TrainingRefused, publish_reviewed_snapshot
from .training_data import checked_folder, dataset_dir
from .serving import prepare_serving
from .versions import register_version
from .weights import resolve_weights

logger = logging.getLogger(__name__)

MAX_IMAGE_SIZE = 1024
MAX_EPOCHS = 500


def _check_parameters(*, backbone, epochs, image_size, weights, batch_size):
    if backbone not in BACKBONES:
        raise TrainingRefused(f"Unknown backbone “{backbone}”; choose one of {', '.join(BACKBONES)}.")
    smallest = BACKBONES[backbone].min_size
    if not smallest <= int(image_size) <= MAX_IMAGE_SIZE:
        raise TrainingRefused(f"{backbone} needs an image size between {smallest} and {MAX_IMAGE_SIZE} pixels; {image_size} was given.")
    if not 1 <= int(epochs) <= MAX_EPOCHS:
        raise TrainingRefused(f"Epochs must be between 1 and {MAX_EPOCHS}.")
    if not 1 <= int(batch_size) <= 512:
        raise TrainingRefused("Batch size must be between 1 and 512.")
    return resolve_weights(weights, backbone)


def start_training_job(
    *, actor, source=TrainingJob.Source.FOLDER, dataset="", backbone="xception", epochs=10, image_size=None,
    weights=None, batch_size=16, seed=None, preset=None, held_out_sources=(), enqueue=True, allow_outside_root=False, via=None, ip_address=None,
):
    """Check everything a worker would need, then record the job and queue it once committed.

    Nothing is written when a check fails: the refusal names what to fix. For the reviewed-scans
    source the scans are first exported into a temporary snapshot folder, checked like any other
    dataset folder, and published to the datasets storage (ml.snapshot_store) only once accepted;
    the training worker fetches it from there. `preset` names an engine preset
    (TrainConfig.preset) whose other settings the job keeps; `held_out_sources` names sources of
    the folder's manifest kept out of training and measured apart (kept as their full names);
    `enqueue=False` is for a caller that runs the job itself with execute_training_job.
    """
    weights = settings.ML_DEFAULT_WEIGHTS if weights is None else weights
    if image_size is None and backbone in BACKBONES:
        image_size = BACKBONES[backbone].default_size
    resolved_weights = _check_parameters(backbone=backbone, epochs=epochs, image_size=image_size, weights=weights, batch_size=batch_size)
    seed = settings.ML_TRAINING_SEED if seed is None else int(seed)
    held_out_sources = tuple(held_out_sources or ())
    if source == TrainingJob.Source.REVIEWED_SCANS:
        dataset_path, summary = publish_reviewed_snapshot(seed=seed, held_out_sources=held_out_sources)
    elif source == TrainingJob.Source.FOLDER:
        dataset_path, summary = checked_folder(dataset, allow_outside_root=allow_outside_root, seed=seed, held_out_sources=held_out_sources)
    else:
        raise TrainingRefused(f"Unknown data source “{source}”.")
    parameters = {
        "backbone": backbone, "epochs": int(epochs), "image_size": int(image_size), "batch_size": int(batch_size),
        "weights": resolved_weights or "none", "seed": seed, **({"preset": preset} if preset else {}),
        **({"held_out_sources": summary["held_out"]["sources"]} if summary.get("held_out") else {}),
        # Named as given when the training worker checks the folder (it resolves them then).
        **({"held_out_sources": list(held_out_sources)} if summary.get("checked_on_worker") and held_out_sources else {}),
    }
    with transaction.atomic():
        job = TrainingJob.objects.create(
            source=source,
            dataset_path=dataset_path,
            parameters=parameters,
            dataset_summary=summary,
            # The log starts with what the data check warned about; the worker logs it again when it starts.
            log_tail="\n".join(f"warning: {line}" for line in summary["warnings"]),
            created_by=actor if actor is not None and actor.is_authenticated else None,
            total_epochs=int(epochs),
            # A job its caller runs itself counts as handed over, so the sweep does not send it too.
            enqueued_at=None if enqueue else timezone.now(),
        )
        if enqueue:
            lifecycle.enqueue_on_commit(job)
        audit.record(actor, "training.started", via=via, ip_address=ip_address, job=job.pk, source=source, dataset=job.dataset_path, parameters=parameters)
    logger.info("Training job %s queued by %s on %s", job.pk, actor or "command line", job.dataset_path)
    return job


def cancel_training_job(job_id, *, actor=None, via=None, ip_address=None):
    """A queued job is cancelled at once; a running one stops at its heartbeat's next check."""
    with transaction.atomic():
        job = TrainingJob.objects.select_for_update().get(pk=job_id)
        if job.status == TrainingJob.Status.QUEUED:
            job.status = TrainingJob.Status.CANCELLED
            job.finished_at = timezone.now()
            job.failure_reason = f"Cancelled by {actor or 'the command line'} before it started."
            job.save(update_fields=["status", "finished_at", "failure_reason"])
        elif job.status == TrainingJob.Status.RUNNING:
            job.cancel_requested = True
            job.save(update_fields=["cancel_requested"])
        else:
            raise TrainingRefused(f"Training job {job.pk} has already {job.get_status_display().lower()}.")
        change = {"status": ["queued", "cancelled"]} if job.status == TrainingJob.Status.CANCELLED else {"cancel_requested": [False, True]}
        audit.record(actor, "training.cancelled", via=via, ip_address=ip_address, job=job.pk, changes=change)
    return job


class _LogTail(logging.Handler):
    """The last lines of a job's log, kept in memory and written to the job row at each heartbeat."""

    def __init__(self, max_lines):
        super().__init__(level=logging.INFO)
        self.lines = deque(maxlen=max_lines)
        self.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))

    def emit(self, record):
        try:
            self.lines.extend(self.format(record).splitlines())
        except Exception:
            self.handleError(record)

    def text(self):
        return "\n".join(self.lines)


def execute_training_job(job_id, *, on_progress=None):
    """Run one queued job to its end in this process. Returns the job as it ended, or None when it
    was not queued (a duplicate delivery, or cancelled before it started)."""
    job = lifecycle.claim(TrainingJob, job_id)
    if job is None:
        logger.info("Training job %s is not queued; nothing to do", job_id)
        return None
    log_tail = _LogTail(settings.ML_TRAINING_LOG_LINES)
    job_logger = logging.getLogger("ml")
    job_logger.addHandler(log_tail)
    previous_level, previous_propagate = job_logger.level, job_logger.propagate
    if job_logger.getEffectiveLevel() > logging.INFO:
        job_logger.setLevel(logging.INFO)
    warnings_only = logging.StreamHandler()
    warnings_only.setLevel(logging.WARNING)
    if on_progress:
        # The caller prints each epoch itself (setup or `manage.py train` in a terminal): the engine's
        # own INFO lines would say every epoch twice there, so only its warnings reach the console.
        # The job's log tail still gets every line.
        job_logger.propagate = False
        job_logger.addHandler(warnings_only)
    stop_training = threading.Event()

    def on_beat(still_running):
        # The page shows the log as it grows; a row no longer running, or asked to cancel, stops the training.
        TrainingJob.objects.filter(pk=job.pk).update(log_tail=log_tail.text())
        if not still_running or TrainingJob.objects.filter(pk=job.pk, cancel_requested=True).exists():
            stop_training.set()

    output_dir = Path(settings.MODEL_STORE_DIR) / "jobs" / f"job-{job.pk}-{uuid.uuid4().hex[:8]}"
    try:
        with lifecycle.heartbeat(job, on_beat):
            version = _train(job, output_dir, stop_training, log_tail, on_progress)
        if version is not None:
            # Here, on the training worker that already holds TensorFlow, and once: the inference
            # workers then serve the export without TensorFlow, and no web request ever exports.
            prepare_serving(version)
        if version is not None:
            for data_dir in folders.configured_evaluation_sets():
                _evaluate(version, job.created_by, data_dir)
    finally:
        job_logger.removeHandler(log_tail)
        job_logger.removeHandler(warnings_only)
        job_logger.setLevel(previous_level)
        job_logger.propagate = previous_propagate
        TrainingJob.objects.filter(pk=job.pk).update(log_tail=log_tail.text())
    return TrainingJob.objects.get(pk=job.pk)


def _evaluate(version, actor, data_dir):
    """Measure a new candidate on an evaluation set at once, in this process, as its own job row."""
    from .evaluation import EvaluationError, execute_evaluation, start_evaluation

    try:
        run = execute_evaluation(start_evaluation(version, actor, data_dir=data_dir, enqueue=False, allow_outside_root=True, via="worker").pk)
    except EvaluationError as error:
        logger.error("Evaluating %s on the evaluation set was refused: %s", version.label, error)
    else:
        logger.info("%s evaluated on %s: %s", version.label, run.dataset_path, run.get_status_display().lower())


def _epoch_line(epoch, total_epochs, metrics):
    seconds = metrics.get("epoch_seconds")
    figures = " · ".join(f"{name} {value:.4f}" for name, value in metrics.items() if name != "epoch_seconds")
    return f"epoch {epoch}/{total_epochs} · {figures}" + (f" ({seconds:.1f} s)" if seconds is not None else "")


def _config(params):
    from ml.engine import TrainConfig

    fields = {
        "backbone": params["backbone"], "image_size": params["image_size"], "epochs": params["epochs"], "batch_size": params["batch_size"],
        "weights": None if params["weights"] == "none" else params["weights"], "seed": params["seed"],
        "held_out_sources": tuple(params.get("held_out_sources", ())),
    }
    return TrainConfig.preset(params["preset"], **fields) if params.get("preset") else TrainConfig(**fields)


def _train(job, output_dir, stop_training, log_tail, on_progress):
    """Train, and register the candidate in the same transaction that marks the job succeeded.
    Returns the version, or None when the job was cancelled, failed, or taken from this attempt."""
    history = []

    def on_epoch_end(epoch, total_epochs, metrics):
        # The engine logs each epoch itself (that line reaches the job's log tail); here the row
        # gets the figures the progress bar and the table show.
        metrics = {name: float(value) for name, value in metrics.items() if isinstance(value, (int, float))}
        history.append({"epoch": epoch, **metrics})
        TrainingJob.objects.filter(pk=job.pk, status=TrainingJob.Status.RUNNING, attempts=job.attempts).update(
            epoch=epoch, total_epochs=total_epochs, current_metrics=metrics, history=history, heartbeat_at=timezone.now()
        )
        if on_progress:
            on_progress(_epoch_line(epoch, total_epochs, metrics))

    try:
        from ml.engine import TrainingCancelled, train

        data_dir = dataset_dir(job)  # first: a folder checked here may resolve the held-out sources
        config = _config(job.parameters)
        logger.info("Training job %s: %s at %spx, %s epochs, weights %s, on %s %s", job.pk, config.backbone, config.image_size,
                    config.epochs, job.parameters["weights"], job.dataset_path, job.dataset_summary.get("classes", ""))
        for warning in job.dataset_summary.get("warnings", []):
            logger.warning("warning: %s", warning)
        try:
            result = train(data_dir, output_dir, config, on_epoch_end=on_epoch_end, should_stop=stop_training.is_set)
        except TrainingCancelled:
            shutil.rmtree(output_dir, ignore_errors=True)
            if TrainingJob.objects.filter(pk=job.pk, cancel_requested=True).exists():
                logger.info("Training job %s cancelled", job.pk)
                lifecycle.finish(job, TrainingJob.Status.CANCELLED, failure_reason="Cancelled by an administrator.")
            return None
        with transaction.atomic():
            if not lifecycle.finish(job, TrainingJob.Status.SUCCEEDED, epoch=len(history) or job.total_epochs):
                transaction.set_rollback(True)
                shutil.rmtree(output_dir, ignore_errors=True)
                logger.warning("Training job %s ended after it was marked %s; its model is not registered",
                               job.pk, TrainingJob.objects.get(pk=job.pk).status)
                return None
            version = register_version(artifact_path=result.artifact_path, record=result.record, created_by=job.created_by, training_job=job)
            logger.info("Training job %s registered candidate %s", job.pk, version.label)
            # The page stops polling once the job has ended: its log must be complete by then.
            TrainingJob.objects.filter(pk=job.pk).update(log_tail=log_tail.text())
    except Exception as error:
        shutil.rmtree(output_dir, ignore_errors=True)
        logger.error("Training job %s failed:\n%s", job.pk, traceback.format_exc())
        reason = str(error) if isinstance(error, TrainingRefused) else f"{type(error).__name__}: {error}"  # a refusal is already a sentence
        lifecycle.finish(job, TrainingJob.Status.FAILED, failure_reason=reason[:2000])
        return None
    if on_progress:
        on_progress(f"registered candidate {version.label}")
    return version
