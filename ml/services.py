"""Every write to the model lifecycle goes through here: registering, evaluating and promoting
versions, and starting, running and cancelling training jobs.

The portal pages, the Celery tasks and the management commands all call these functions, so a
thing is done one way whichever door it came in by. TensorFlow is imported only inside the
functions that train, evaluate or predict; the web process never loads it.
"""
import csv
import logging
import os
import shutil
import threading
import traceback
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, close_old_connections, connection, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from ml.engine.backbones import BACKBONES
from ml.engine.images import ImageDecodeError, detect_format, load_image_file

from . import runtime, selectors
from .models import Evaluation, ModelVersion, Promotion, TrainingJob

logger = logging.getLogger(__name__)

MAX_IMAGE_SIZE = 1024
MAX_EPOCHS = 500
MANIFEST_FIELDS = ["filename", "label", "patient_id", "origin"]


class PromotionError(Exception):
    pass


class TrainingRefused(Exception):
    """A training job we will not queue; the message tells the administrator what to fix."""


class EvaluationError(Exception):
    pass


# --- settings, read where they are used so tests and deployments can change them -------------

def training_queue():
    return getattr(settings, "ML_TRAINING_QUEUE", "training")


def heartbeat_seconds():
    return float(getattr(settings, "ML_TRAINING_HEARTBEAT_SECONDS", 5))


def heartbeat_timeout():
    """A running job whose heartbeat is older than this was abandoned by its worker."""
    value = getattr(settings, "ML_TRAINING_HEARTBEAT_TIMEOUT", timedelta(minutes=2))
    return value if isinstance(value, timedelta) else timedelta(seconds=float(value))


def training_seed():
    return int(getattr(settings, "ML_TRAINING_SEED", 42))


def default_weights():
    return getattr(settings, "ML_DEFAULT_WEIGHTS", "imagenet")


# --- model versions -------------------------------------------------------------------------

def _stored_path(path):
    """Keep paths under the model store relative, so the store can move with its data folder."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(settings.MODEL_STORE_DIR.resolve()))
    except ValueError:
        return str(path)


def register_version(*, artifact_path, record, created_by=None, training_job=None, parent=None):
    """Record a trained artifact as a new candidate version; its fields are copied from the engine's record."""
    preprocessing = record["preprocessing"]
    dataset = record.get("dataset", {})
    return ModelVersion.objects.create(
        artifact_path=_stored_path(artifact_path),
        sha256=record["sha256"],
        backbone=record["backbone"],
        input_size=preprocessing["image_size"],
        preprocessing=preprocessing,
        class_names=record["class_names"],
        positive_class=record["positive_class"],
        threshold=record["threshold"],
        metrics=record.get("metrics", {}),
        evaluation_set=record.get("evaluation_set", ""),
        dataset_fingerprint=dataset.get("fingerprint", ""),
        split_counts=dataset.get("split_counts", {}),
        training_params=record.get("training", {}),
        library_versions=record.get("library_versions", {}),
        trained_on_synthetic_data=bool(record.get("synthetic", False)),
        record=record,
        training_job=training_job,
        parent=parent,
        created_by=created_by,
    )


def verify_artifact(version):
    """The artifact a version points at must be there, byte for byte, before it may serve anyone."""
    from ml.engine.artifact import ArtifactIntegrityError, verify_artifact as verify

    path = runtime.artifact_path(version)
    try:
        verify(path, expected_sha256=version.sha256)
    except FileNotFoundError:
        raise PromotionError(f"The model file of {version.label} is missing ({path}); it cannot be made active.") from None
    except ArtifactIntegrityError as error:
        raise PromotionError(f"The model file of {version.label} does not match its recorded sha256; it cannot be made active. ({error})") from error


def promote_version(version_id, *, actor=None, reason=""):
    """Make one version active in a single transaction; a rollback is a promote of an older version.

    The artifact is checked first (outside any lock), so a promote never switches every worker to
    a missing or altered file. Then all version rows are locked in id order, so two promotes at once
    queue up instead of racing; the partial unique index backs this up at the database.
    """
    target = ModelVersion.objects.filter(pk=int(version_id)).first()
    if target is None:
        raise PromotionError(f"Model version {version_id} does not exist.")
    verify_artifact(target)
    with transaction.atomic():
        locked = {version.pk: version for version in ModelVersion.objects.select_for_update().order_by("pk")}
        target = locked[target.pk]
        current = ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).first()
        if current is not None and current.pk == target.pk:
            raise PromotionError(f"{target.label} is already the active version.")
        was_active_before = selectors.has_been_active(target)
        if current is not None:
            current.status = ModelVersion.Status.RETIRED
            current.save(update_fields=["status"])
        target.status = ModelVersion.Status.ACTIVE
        target.save(update_fields=["status"])
        promotion = Promotion.objects.create(
            from_version=current, to_version=target, actor=actor, reason=reason.strip()[:500], is_rollback=was_active_before
        )
    logger.info("%s made %s active (was %s)", actor or "system", target.label, current.label if current else "none")
    return promotion


# --- datasets -----------------------------------------------------------------------------

@dataclass(frozen=True)
class DatasetCheck:
    """A dataset folder that passed the check: where it is, its classes, and how it will be split."""

    path: Path
    classes: dict = field(default_factory=dict)
    details: dict = field(default_factory=dict)

    @property
    def n_images(self):
        return sum(self.classes.values())

    def summary(self):
        return {"path": selectors.display_path(self.path), "classes": dict(self.classes), "n_images": self.n_images, **self.details}


def resolve_dataset_path(name, *, allow_outside_root=False):
    name = str(name or "").strip()
    if not name:
        raise TrainingRefused("Choose a dataset folder.")
    root = selectors.datasets_root().resolve()
    path = selectors.dataset_path(name)
    if not allow_outside_root and not path.is_relative_to(root):
        raise TrainingRefused(f"The dataset folder must be inside the datasets folder ({root}); “{name}” is not.")
    if path == root:
        raise TrainingRefused(f"Choose a dataset folder inside the datasets folder ({root}), not the datasets folder itself.")
    return path


def _existing_folder(name, allow_outside_root):
    path = resolve_dataset_path(name, allow_outside_root=allow_outside_root)
    shown = selectors.display_path(path)
    if not path.exists():
        raise TrainingRefused(f"The dataset folder “{shown}” does not exist in {selectors.datasets_root()}.")
    if not path.is_dir():
        raise TrainingRefused(f"“{shown}” is a file, not a dataset folder.")
    return path, shown


def _check_class_folders(folder, shown):
    """At least two class folders of images, each image recognisable by its first bytes, and the
    first few of each class (ML_DATASET_CHECK_SAMPLE) decodable by the decoder training uses.
    Returns {class: number of images}."""
    from ml.engine.data import list_class_folders

    classes = list_class_folders(folder)
    if len(classes) < 2:
        found = f"images of one class only ({next(iter(classes))}/)" if classes else "no class folders with images"
        raise TrainingRefused(
            f"The dataset folder “{shown}” holds {found}; training needs at least two class folders of images, "
            f"e.g. {shown}/covid/ and {shown}/normal/."
        )
    sample_size = int(getattr(settings, "ML_DATASET_CHECK_SAMPLE", 20))
    problems = []
    for label, files in classes.items():
        for index, file in enumerate(files):
            where = file.relative_to(folder).as_posix()
            try:
                if index < sample_size:
                    load_image_file(file)
                else:
                    with open(file, "rb") as handle:
                        if detect_format(handle.read(256)) is None:
                            raise ImageDecodeError("The file is not a PNG, JPEG or DICOM image.")
            except (ImageDecodeError, OSError) as error:
                problems.append(f"{where}: {error}")
    if problems:
        listed = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise TrainingRefused(f"The dataset folder “{shown}” holds files that cannot be read: {listed}. Remove or replace them.")
    return {label: len(files) for label, files in classes.items()}


def check_dataset_folder(name, *, allow_outside_root=False, seed=None):
    """Refuse, with a message an administrator can act on, a folder that training would choke on.

    The folder must exist and hold at least two class folders of images (`<class>/`, or
    `train/<class>/` and `test/<class>/`), readable by the decoder training uses, and be large
    enough for the engine to split it into train, validation and test (the same split, with the
    same seed, that training will make).
    """
    from ml.engine.data import discover_dataset

    path, shown = _existing_folder(name, allow_outside_root)
    split_layout = (path / "train").is_dir() and (path / "test").is_dir()
    for folder, label in ([(path / "train", f"{shown}/train"), (path / "test", f"{shown}/test")] if split_layout else [(path, shown)]):
        _check_class_folders(folder, label)
    try:
        dataset = discover_dataset(path, seed=training_seed() if seed is None else seed)
    except ValueError as error:
        raise TrainingRefused(f"The dataset folder “{shown}” cannot be split for training: {error}") from error
    split_counts = dataset.split_counts()
    classes = {name: sum(split_counts[split][name] for split in split_counts) for name in dataset.class_names}
    details = {"layout": dataset.layout, "split_counts": split_counts, "grouped_by_patient": dataset.grouped_by_patient, "warnings": dataset.warnings}
    return DatasetCheck(path=path, classes=classes, details=details)


def check_evaluation_folder(name, *, allow_outside_root=False):
    """An evaluation set needs the same readable class folders, but is never split."""
    path, shown = _existing_folder(name, allow_outside_root)
    folder = path / "test" if (path / "test").is_dir() else path
    classes = _check_class_folders(folder, shown if folder == path else f"{shown}/test")
    return DatasetCheck(path=path, classes=classes)


@dataclass(frozen=True)
class ReviewedImage:
    """One scan a clinician reviewed, as the training export needs it. Provided by the clinical
    side (ML_REVIEWED_SCANS_PROVIDER), so this app never reads the clinical tables itself."""

    image_path: str
    label: str
    patient_id: str
    origin: str


def reviewed_images():
    provider = getattr(settings, "ML_REVIEWED_SCANS_PROVIDER", "diagnosis.selectors.reviewed_scans_for_training")
    try:
        function = import_string(provider)
    except ImportError as error:
        raise TrainingRefused(f"Training on reviewed scans is not available: {provider} cannot be loaded ({error}).") from error
    return [row if isinstance(row, ReviewedImage) else ReviewedImage(*row) for row in function()]


def export_dataset_snapshot(rows):
    """Copy reviewed images into a new folder under DATASETS_ROOT/snapshots/, one sub-folder per
    label, with a manifest.csv (filename, label, patient_id, origin) so the split can keep each
    patient's images together. The folder is never changed afterwards: it is what the job trained on."""
    rows = list(rows)
    if not rows:
        raise TrainingRefused("No scans have been reviewed yet: clinicians must agree or disagree with AI results before those scans can be used for training.")
    folder = selectors.snapshots_dir() / f"{timezone.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
    folder.mkdir(parents=True)
    try:
        with open(folder / "manifest.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(MANIFEST_FIELDS)
            for row in rows:
                source = Path(row.image_path)
                if not row.label or "/" in row.label or row.label.startswith("."):
                    raise TrainingRefused(f"A reviewed scan has an unusable label “{row.label}”.")
                target = folder / row.label / source.name
                target.parent.mkdir(exist_ok=True)
                shutil.copyfile(source, target)
                writer.writerow([f"{row.label}/{source.name}", row.label, row.patient_id, row.origin])
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder


# --- training jobs ------------------------------------------------------------------------

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
    weights = (weights or "").strip()
    if weights.lower() in {"", "none", "random"}:
        return None
    if weights.lower() == "imagenet":
        return "imagenet"
    path = Path(weights).expanduser()
    path = path if path.is_absolute() else Path(settings.MODEL_STORE_DIR) / path
    if not path.is_file():
        raise TrainingRefused(f"The weights file “{weights}” does not exist; use imagenet, none, or the path of a weights file on the training machine.")
    return str(path.resolve())


def start_training_job(
    *, actor, source=TrainingJob.Source.FOLDER, dataset="", backbone="xception", epochs=10, image_size=None,
    weights=None, batch_size=16, seed=None, enqueue=True, allow_outside_root=False,
):
    """Check everything a worker would need, then record the job and queue it once committed.

    Nothing is written when a check fails: the refusal names what to fix. For the reviewed-scans
    source the scans are first exported into a snapshot folder, which is then checked like any
    other dataset folder (and removed again if refused).
    """
    weights = default_weights() if weights is None else weights
    if image_size is None and backbone in BACKBONES:
        image_size = BACKBONES[backbone].default_size
    resolved_weights = _check_parameters(backbone=backbone, epochs=epochs, image_size=image_size, weights=weights, batch_size=batch_size)
    snapshot = None
    if source == TrainingJob.Source.REVIEWED_SCANS:
        snapshot = export_dataset_snapshot(reviewed_images())
        dataset = str(snapshot)
        allow_outside_root = False
    elif source != TrainingJob.Source.FOLDER:
        raise TrainingRefused(f"Unknown data source “{source}”.")
    seed = training_seed() if seed is None else int(seed)
    try:
        check = check_dataset_folder(dataset, allow_outside_root=allow_outside_root, seed=seed)
    except TrainingRefused as refusal:
        if snapshot is not None:
            shutil.rmtree(snapshot, ignore_errors=True)
            raise TrainingRefused(f"The reviewed scans cannot be used for training yet. {refusal}") from refusal
        raise
    parameters = {
        "backbone": backbone, "epochs": int(epochs), "image_size": int(image_size), "batch_size": int(batch_size),
        "weights": resolved_weights or "none", "seed": seed,
    }
    with transaction.atomic():
        job = TrainingJob.objects.create(
            source=source,
            dataset_path=selectors.display_path(check.path),
            parameters=parameters,
            dataset_summary=check.summary(),
            created_by=actor if actor is not None and actor.is_authenticated else None,
            total_epochs=int(epochs),
            # A job the caller runs itself (manage.py train) is never sent to the broker by the sweep.
            enqueued_at=None if enqueue else timezone.now(),
        )
        if enqueue:
            transaction.on_commit(lambda: enqueue_training_job(job.pk))
    logger.info("Training job %s queued by %s on %s", job.pk, actor or "command line", job.dataset_path)
    return job


def enqueue_training_job(job_id):
    """Hand a job to the training queue. If the broker is down it stays queued with no enqueued_at,
    and the periodic sweep sends it later."""
    from .tasks import run_training_job

    try:
        run_training_job.apply_async((job_id,), queue=training_queue())
    except Exception:
        logger.warning("Broker unavailable; training job %s stays queued for the sweep", job_id, exc_info=True)
        return False
    TrainingJob.objects.filter(pk=job_id).update(enqueued_at=timezone.now())
    return True


def cancel_training_job(job_id, *, actor=None):
    """A queued job is cancelled at once; a running one stops at the worker's next check."""
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
    return job


def fail_abandoned_training_jobs():
    """Mark running jobs whose worker stopped sending heartbeats as failed, and re-send queued jobs
    the broker never received. Beat runs this every minute; a job is never left running forever."""
    now = timezone.now()
    limit = heartbeat_timeout()
    failed = []
    for job in TrainingJob.objects.filter(status=TrainingJob.Status.RUNNING, heartbeat_at__lt=now - limit):
        reason = (
            f"The training worker stopped responding: no heartbeat since {timezone.localtime(job.heartbeat_at):%Y-%m-%d %H:%M:%S} "
            f"(limit {int(limit.total_seconds())} s; worker process {job.worker_pid}). It was probably killed or lost its machine. "
            f"Start the job again."
        )
        if _finish(job.pk, TrainingJob.Status.FAILED, failure_reason=reason):
            logger.warning("Training job %s abandoned by its worker; marked failed", job.pk)
            failed.append(job.pk)
    for job_id in TrainingJob.objects.filter(
        status=TrainingJob.Status.QUEUED, enqueued_at__isnull=True, created_at__lt=now - timedelta(seconds=10)
    ).values_list("pk", flat=True):
        enqueue_training_job(job_id)
    return failed


def _finish(job_id, status, **fields):
    """Move a running job to its final status; False when it was no longer running (e.g. the sweep
    already failed it), so two endings never overwrite each other."""
    return bool(
        TrainingJob.objects.filter(pk=job_id, status=TrainingJob.Status.RUNNING).update(status=status, finished_at=timezone.now(), **fields)
    )


class _LogTail(logging.Handler):
    """The last lines of a job's log, kept in memory and written to the job row by the heartbeat."""

    def __init__(self, max_lines):
        super().__init__(level=logging.INFO)
        self.lines = deque(maxlen=max_lines)
        self.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        self.changed = threading.Event()

    def emit(self, record):
        try:
            self.lines.extend(self.format(record).splitlines())
            self.changed.set()
        except Exception:
            self.handleError(record)

    def text(self):
        return "\n".join(self.lines)


class _Heartbeat(threading.Thread):
    """Every few seconds: stamp heartbeat_at, save the log tail, and notice a cancel request.

    Runs beside the training in the worker process with its own database connection. If the row
    is no longer running (cancelled, or failed by the sweep) it asks the training to stop.
    """

    def __init__(self, job_id, log_tail):
        super().__init__(name=f"training-job-{job_id}-heartbeat", daemon=True)
        self.job_id = job_id
        self.log_tail = log_tail
        self.stopping = threading.Event()
        self.stop_training = threading.Event()
        self.cancel_requested = False

    def run(self):
        try:
            while not self.stopping.wait(heartbeat_seconds()):
                self.beat()
        finally:
            connection.close()

    def beat(self):
        try:
            fields = {"heartbeat_at": timezone.now()}
            if self.log_tail.changed.is_set():
                self.log_tail.changed.clear()
                fields["log_tail"] = self.log_tail.text()
            still_running = TrainingJob.objects.filter(pk=self.job_id, status=TrainingJob.Status.RUNNING).update(**fields)
            if not still_running:
                self.stop_training.set()
            elif TrainingJob.objects.filter(pk=self.job_id, cancel_requested=True).exists():
                self.cancel_requested = True
                self.stop_training.set()
        except Exception:
            # A locked or briefly unreachable database must not end the training; try again next beat.
            logger.warning("Heartbeat of training job %s failed", self.job_id, exc_info=True)
            close_old_connections()

    def stop(self):
        self.stopping.set()
        self.join(timeout=30)


def _claim(job_id):
    with transaction.atomic():
        job = TrainingJob.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.status != TrainingJob.Status.QUEUED:
            return None
        now = timezone.now()
        job.status = TrainingJob.Status.RUNNING
        job.started_at = job.heartbeat_at = now
        job.worker_pid = os.getpid()
        job.save(update_fields=["status", "started_at", "heartbeat_at", "worker_pid"])
    return job


def _epoch_line(epoch, total_epochs, metrics):
    seconds = metrics.get("epoch_seconds")
    figures = " · ".join(f"{name} {value:.4f}" for name, value in metrics.items() if name != "epoch_seconds")
    return f"epoch {epoch}/{total_epochs} · {figures}" + (f" ({seconds:.1f} s)" if seconds is not None else "")


def execute_training_job(job_id, *, on_progress=None):
    """Run one queued job to its end in this process: the Celery task and `manage.py train` both
    come here. Returns the job as it ended, or None when it was not queued (a duplicate delivery,
    or cancelled before it started)."""
    job = _claim(job_id)
    if job is None:
        logger.info("Training job %s is not queued; nothing to do", job_id)
        return None
    log_tail = _LogTail(int(getattr(settings, "ML_TRAINING_LOG_LINES", 200)))
    job_logger = logging.getLogger("ml")
    job_logger.addHandler(log_tail)
    previous_level = job_logger.level
    if job_logger.getEffectiveLevel() > logging.INFO:
        job_logger.setLevel(logging.INFO)
    heartbeat = _Heartbeat(job.pk, log_tail)
    heartbeat.start()
    output_dir = Path(settings.MODEL_STORE_DIR) / "jobs" / f"job-{job.pk}-{uuid.uuid4().hex[:8]}"
    try:
        _train(job, output_dir, heartbeat, log_tail, on_progress)
    finally:
        heartbeat.stop()
        job_logger.removeHandler(log_tail)
        job_logger.setLevel(previous_level)
        TrainingJob.objects.filter(pk=job.pk).update(log_tail=log_tail.text())
    return TrainingJob.objects.get(pk=job.pk)


def _train(job, output_dir, heartbeat, log_tail, on_progress):
    params = job.parameters
    history = []

    def on_epoch_end(epoch, total_epochs, metrics):
        # The engine logs each epoch itself (that line reaches the job's log tail); here the row
        # gets the figures the progress bar and the table show.
        metrics = {name: float(value) for name, value in metrics.items() if isinstance(value, (int, float))}
        history.append({"epoch": epoch, **metrics})
        TrainingJob.objects.filter(pk=job.pk, status=TrainingJob.Status.RUNNING).update(
            epoch=epoch, total_epochs=total_epochs, current_metrics=metrics, history=history, heartbeat_at=timezone.now()
        )
        if on_progress:
            on_progress(_epoch_line(epoch, total_epochs, metrics))

    try:
        from ml.engine.train import TrainConfig, TrainingCancelled, train

        config = TrainConfig(
            backbone=params["backbone"],
            image_size=params["image_size"],
            weights=None if params["weights"] == "none" else params["weights"],
            epochs=params["epochs"],
            batch_size=params["batch_size"],
            seed=params["seed"],
        )
        data_dir = resolve_dataset_path(job.dataset_path, allow_outside_root=True)
        logger.info("Training job %s: %s at %spx, %s epochs, weights %s, on %s %s", job.pk, config.backbone, config.image_size,
                    config.epochs, params["weights"], job.dataset_path, job.dataset_summary.get("classes", ""))
        try:
            result = train(data_dir, output_dir, config, on_epoch_end=on_epoch_end, should_stop=heartbeat.stop_training.is_set)
        except TrainingCancelled:
            shutil.rmtree(output_dir, ignore_errors=True)
            if heartbeat.cancel_requested or TrainingJob.objects.filter(pk=job.pk, cancel_requested=True).exists():
                logger.info("Training job %s cancelled", job.pk)
                _finish(job.pk, TrainingJob.Status.CANCELLED, failure_reason="Cancelled by an administrator.")
            return
        with transaction.atomic():
            if not _finish(job.pk, TrainingJob.Status.SUCCEEDED, epoch=len(history) or job.total_epochs):
                transaction.set_rollback(True)
                shutil.rmtree(output_dir, ignore_errors=True)
                logger.warning("Training job %s ended after it was marked %s; its model is not registered",
                               job.pk, TrainingJob.objects.get(pk=job.pk).status)
                return
            version = register_version(artifact_path=result.artifact_path, record=result.record, created_by=job.created_by, training_job=job)
            logger.info("Training job %s registered candidate %s", job.pk, version.label)
            TrainingJob.objects.filter(pk=job.pk).update(log_tail=log_tail.text())
    except Exception as error:
        shutil.rmtree(output_dir, ignore_errors=True)
        logger.error("Training job %s failed:\n%s", job.pk, traceback.format_exc())
        _finish(job.pk, TrainingJob.Status.FAILED, failure_reason=f"{type(error).__name__}: {error}"[:2000])
        return
    if on_progress:
        on_progress(f"registered candidate {version.label}")
    if selectors.evaluation_set() is not None:
        try:
            evaluation = evaluate_version(version, actor=job.created_by)
        except Exception:
            logger.error("Evaluating %s on the evaluation set failed:\n%s", version.label, traceback.format_exc())
        else:
            logger.info("%s evaluated on %s (n=%s)", version.label, evaluation.dataset_path, evaluation.n_images)


# --- evaluation ---------------------------------------------------------------------------

def evaluate_version(version, *, data_dir=None, actor=None, allow_outside_root=False):
    """Measure a version on a dataset folder (the configured evaluation set by default) and keep
    the result. Measuring twice on the same files returns the first measurement."""
    if data_dir is None:
        data_dir = selectors.evaluation_set()
        if data_dir is None:
            raise EvaluationError("No evaluation set is configured: create the folder `evaluation/` in the datasets folder or set PORTAL_EVALUATION_SET.")
    try:
        check = check_evaluation_folder(data_dir, allow_outside_root=allow_outside_root)
    except TrainingRefused as refusal:
        raise EvaluationError(str(refusal)) from refusal
    fingerprint = selectors.dataset_fingerprint(check.path)
    existing = Evaluation.objects.filter(version=version, dataset_fingerprint=fingerprint).first()
    if existing is not None:
        return existing
    from ml.engine.artifact import ArtifactIntegrityError
    from ml.engine.evaluate import evaluate_artifact

    try:
        metrics = evaluate_artifact(runtime.artifact_path(version), check.path, expected_sha256=version.sha256)
    except (ArtifactIntegrityError, FileNotFoundError, ValueError) as error:
        raise EvaluationError(f"{version.label} cannot be evaluated on {selectors.display_path(check.path)}: {error}") from error
    fingerprint = metrics.get("dataset_fingerprint") or fingerprint
    try:
        with transaction.atomic():
            return Evaluation.objects.create(
                version=version, dataset_path=selectors.display_path(check.path), dataset_fingerprint=fingerprint,
                n_images=int(metrics.get("n") or check.n_images), metrics=metrics,
                created_by=actor if actor is not None and actor.is_authenticated else None,
            )
    except IntegrityError:
        return Evaluation.objects.get(version=version, dataset_fingerprint=fingerprint)


def enqueue_evaluation(version_id):
    """Evaluation loads TensorFlow, so it runs on the training queue, never in the web process."""
    from .tasks import evaluate_version as evaluate_version_task

    evaluate_version_task.apply_async((version_id,), queue=training_queue())


# --- prediction from the command line ----------------------------------------------------

def predict_files(version, paths):
    """Yield one result per image file, from the given version's artifact (sha256 verified)."""
    from ml.engine.predictor import Predictor

    predictor = Predictor.load(runtime.artifact_path(version), expected_sha256=version.sha256)
    for path in paths:
        try:
            pixels = load_image_file(path)
        except (ImageDecodeError, OSError) as error:
            yield {"image": str(path), "version": version.pk, "error": str(error)}
            continue
        result = predictor.predict([pixels])[0]
        yield {"image": str(path), "version": version.pk, "demo": version.trained_on_synthetic_data, **result}
