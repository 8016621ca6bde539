"""Dataset folders before training or evaluation uses them: checked so a refusal names what to
fix, and the reviewed scans exported as a snapshot folder."""
import csv
import logging
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.utils import timezone
from django.utils.module_loading import import_string

from ml import datasets as folders
from ml.engine.decode.images import ImageDecodeError, detect_format, load_image_file

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


def _existing_folder(name, allow_outside_root):
    path = resolve_dataset_path(name, allow_outside_root=allow_outside_root)
    shown = folders.display_path(path)
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


def check_dataset_folder(name, *, allow_outside_root=False, seed=None, held_out_sources=()):
    """Refuse, with a message an administrator can act on, a folder that training would choke on.

    The folder must exist and hold at least two class folders of images (`<class>/`, or
    `train/<class>/` and `test/<class>/`), readable by the decoder training uses, and be large
    enough for the engine to split it into train, validation and test (the same split, with the
    same seed, that training will make) once the films of `held_out_sources` are set aside; each
    of those must name a source of the folder's manifest.
    """
    from ml.engine.data.splits import discover_dataset, held_out_counts

    path, shown = _existing_folder(name, allow_outside_root)
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


def export_dataset_snapshot(rows):
    """Copy reviewed images into a new folder under DATASETS_ROOT/snapshots/, one sub-folder per
    label, with a manifest.csv (filename, label, patient_id, origin) so the split can keep each
    patient's images together. The folder is never changed afterwards: it is what the job trained on.

    Returns (folder, warnings). A reviewed scan whose image is no longer in the scan storage is left
    out with a warning line (the job keeps it in its dataset summary and its log), rather than
    failing the whole request; the folder check that follows refuses a snapshot left too small."""
    rows = list(rows)
    if not rows:
        raise TrainingRefused("No scans have been reviewed yet: clinicians must agree or disagree with AI results before those scans can be used for training.")
    folder = folders.snapshots_dir() / f"{timezone.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
    try:
        folder.mkdir(parents=True)
    except OSError as error:  # e.g. docker-compose mounts the datasets read-only on the web server
        logger.warning("The reviewed-scans snapshot %s could not be made: %s", folder, error)
        raise TrainingRefused("The reviewed scans cannot be exported on this server: its datasets folder cannot be written. "
                              "Ask the operator to give this server write access to PORTAL_DATASETS_ROOT, or train on a dataset folder.") from error
    warnings = []
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
                try:
                    shutil.copyfile(source, target)
                except FileNotFoundError:
                    warnings.append(f"The image of a reviewed scan ({source.name}, patient {row.patient_id}) is missing from the scan storage; it was left out.")
                    continue
                writer.writerow([f"{row.label}/{source.name}", row.label, row.patient_id, row.origin])
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder, warnings
