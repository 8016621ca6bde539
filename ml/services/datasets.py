"""Dataset folders before training or evaluation uses them: checked so a refusal names what to
fix, and the reviewed scans exported as a snapshot folder (published by ml.snapshot_store)."""
import csv
import logging
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.utils import timezone
from django.utils.module_loading import import_string

from ml import datasets as folders
from ml import snapshot_store
from ml.engine.decode.images import ImageDecodeError, detect_format, load_image_file
from portal.file_storage import StoreUnavailable

logger = logging.getLogger(__name__)

MANIFEST_FIELDS = ["filename", "label", "patient_id", "origin"]


class TrainingRefused(Exception):
    """A training job we will not queue; the message tells the administrator what to fix."""


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
        return {"path": folders.display_path(self.path), "classes": dict(self.classes), "n_images": self.n_images, **self.details}


def resolve_dataset_path(name, *, allow_outside_root=False):
    """The folder's path. A folder inside the datasets folder may not hold (or be) a symbolic link
    that leads out of it, whoever asks: training, evaluation and the dataset check would otherwise
    read files from anywhere the link points, the scan folder included. Only a folder the command
    line names outside the datasets folder (allow_outside_root) is read where it is."""
    name = str(name or "").strip()
    if not name:
        raise TrainingRefused("Choose a dataset folder.")
    root = folders.datasets_root().resolve()
    path = folders.dataset_path(name)
    if not allow_outside_root and not path.is_relative_to(root):
        raise TrainingRefused(f"The dataset folder must be inside the datasets folder ({root}); “{name}” is not.")
    if path == root:
        raise TrainingRefused(f"Choose a dataset folder inside the datasets folder ({root}), not the datasets folder itself.")
    refusal = folders.links_leaving_refusal(path)
    if refusal:
        raise TrainingRefused(refusal)
    return path


def _existing_folder(name, allow_outside_root, shown=None):
    path = resolve_dataset_path(name, allow_outside_root=allow_outside_root)
    shown = shown or folders.display_path(path)
    if not path.exists():
        raise TrainingRefused(f"The dataset folder “{shown}” does not exist in {folders.datasets_root()}.")
    if not path.is_dir():
        raise TrainingRefused(f"“{shown}” is a file, not a dataset folder.")
    return path, shown


def _check_class_folders(folder, shown):
    """At least two class folders of images, each image recognisable by its first bytes, and the
    first few of each class (ML_DATASET_CHECK_SAMPLE) decodable by the decoder training uses.
    Returns {class: number of images}."""
    from ml.engine import list_class_folders

    classes = list_class_folders(folder)
    if len(classes) < 2:
        found = f"images of one class only ({next(iter(classes))}/)" if classes else "no class folders with images"
        raise TrainingRefused(
            f"The dataset folder “{shown}” holds {found}; training needs at least two class folders of images, "
            f"e.g. {shown}/covid/ and {shown}/normal/."
        )
    sample_size = settings.ML_DATASET_CHECK_SAMPLE
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


def check_dataset_folder(name, *, allow_outside_root=False, seed=None, held_out_sources=(), shown=None):
    """Refuse, with a message an administrator can act on, a folder that training would choke on.

    The folder must exist and hold at least two class folders of images (`<class>/`, or
    `train/<class>/` and `test/<class>/`), readable by the decoder training uses, and be large
    enough for the engine to split it into train, validation and test (the same split, with the
    same seed, that training will make) once the films of `held_out_sources` are set aside; each
    of those must name a source of the folder's manifest. `shown` is the folder's name in refusals
    (a snapshot's name, for the copy checked in a temporary folder).
    """
    from ml.engine.data.splits import discover_dataset, held_out_counts

    path, shown = _existing_folder(name, allow_outside_root, shown)
    split_layout = (path / "train").is_dir() and (path / "test").is_dir()
    for folder, label in ([(path / "train", f"{shown}/train"), (path / "test", f"{shown}/test")] if split_layout else [(path, shown)]):
        _check_class_folders(folder, label)
    try:
        dataset = discover_dataset(path, seed=settings.ML_TRAINING_SEED if seed is None else seed, held_out_sources=held_out_sources)
    except ValueError as error:
        raise TrainingRefused(f"The dataset folder “{shown}” cannot be split for training: {error}") from error
    split_counts = dataset.split_counts()
    classes = {name: sum(split_counts[split][name] for split in split_counts) for name in dataset.class_names}
    details = {"layout": dataset.layout, "split_counts": split_counts, "grouped_by_patient": dataset.grouped_by_patient, "warnings": dataset.warnings}
    if dataset.held_out_sources:
        details["held_out"] = {"sources": dataset.held_out_sources, "counts": held_out_counts(dataset.held_out, dataset.class_names)}
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
    provider = settings.ML_REVIEWED_SCANS_PROVIDER
    try:
        function = import_string(provider)
    except ImportError as error:
        raise TrainingRefused(f"Training on reviewed scans is not available: {provider} cannot be loaded ({error}).") from error
    return [row if isinstance(row, ReviewedImage) else ReviewedImage(*row) for row in function()]


def snapshot_name():
    return f"{timezone.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"


def export_dataset_snapshot(rows, folder):
    """Copy reviewed images into `folder` (a new, empty folder of this host's own; the caller
    publishes it to the datasets storage once checked), one sub-folder per label, with a
    manifest.csv (filename, label, patient_id, origin) so the split can keep each patient's images
    together. What is published is never changed afterwards: it is what the job trained on.

    Returns the warnings. A reviewed scan whose image is no longer in the scan storage is left
    out with a warning line (the job keeps it in its dataset summary and its log), rather than
    failing the whole request; the folder check that follows refuses a snapshot left too small."""
    rows = list(rows)
    if not rows:
        raise TrainingRefused("No scans have been reviewed yet: clinicians must agree or disagree with AI results before those scans can be used for training.")
    folder = Path(folder)
    warnings = []
    with open(folder / "manifest.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(MANIFEST_FIELDS)
        for row in rows:
            source = Path(row.image_path)
            if not row.label or "/" in row.label or row.label.startswith("."):
                raise TrainingRefused(f"A reviewed scan has an unusable label “{row.label}”.")
            target = folder / row.label / source.name
            target.parent.mkdir(exist_ok=True)
            try:
                shutil.copyfile(source, target)
            except FileNotFoundError:
                warnings.append(f"The image of a reviewed scan ({source.name}, patient {row.patient_id}) is missing from the scan storage; it was left out.")
                continue
            writer.writerow([f"{row.label}/{source.name}", row.label, row.patient_id, row.origin])
    return warnings


def publish_reviewed_snapshot(*, seed, held_out_sources=()):
    """Export the reviewed scans into a temporary folder of this host's own, check it as training
    will read it, and publish it to the datasets storage (ml.snapshot_store), so the training
    worker needs no folder shared with this server. Returns (`snapshots/<name>`, summary); the
    summary records the published files (`snapshot`) the worker checks before training."""
    name = snapshot_name()
    shown = f"{snapshot_store.PREFIX}/{name}"
    with tempfile.TemporaryDirectory(prefix="snapshot-") as temporary:
        folder = Path(temporary) / name
        folder.mkdir()
        export_warnings = export_dataset_snapshot(reviewed_images(), folder)
        try:
            check = check_dataset_folder(folder, allow_outside_root=True, seed=seed, held_out_sources=held_out_sources, shown=shown)
        except TrainingRefused as refusal:
            raise TrainingRefused(f"The reviewed scans cannot be used for training yet. {refusal}") from refusal
        try:
            recorded = snapshot_store.publish(folder, name)
        except StoreUnavailable as error:
            logger.warning("The reviewed-scans snapshot %s could not be published: %s", name, error)
            raise TrainingRefused("The reviewed scans cannot be exported now: the file store did not answer. Try again in a minute.") from error
        except OSError as error:  # a local datasets folder this server cannot write
            logger.warning("The reviewed-scans snapshot %s could not be published: %s", name, error)
            raise TrainingRefused("The reviewed scans cannot be exported on this server: its datasets folder cannot be written. "
                                  "Ask the operator to give this server write access to PORTAL_DATASETS_ROOT, or to configure an object store.") from error
    summary = {**check.summary(), "path": shown, "snapshot": recorded}
    summary["warnings"] = export_warnings + summary.get("warnings", [])
    return shown, summary


def snapshot_folder(dataset_path, recorded):
    """The local folder of a published snapshot (fetched into this host's cache from a bucket),
    checked against what was `recorded` when it was published; TrainingRefused names the problem."""
    name = snapshot_store.name_of(dataset_path)
    try:
        return snapshot_store.fetch(name, recorded)
    except snapshot_store.SnapshotUnusable as error:
        raise TrainingRefused(str(error)) from error
    except StoreUnavailable as error:
        raise TrainingRefused(f"The snapshot “{dataset_path}” cannot be read now: the file store did not answer. Try again in a minute.") from error
