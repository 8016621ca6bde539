"""Reads of the model lifecycle: versions, evaluations, jobs, and the dataset folders they use."""
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db.models import Exists, OuterRef, Q

from .models import Evaluation, ModelVersion, Promotion, TrainingJob, metric_figure


class NoActiveModelVersion(Exception):
    pass


def active_version():
    version = ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).first()
    if version is None:
        raise NoActiveModelVersion("No model version is active; an administrator must promote one.")
    return version


def active_version_or_none():
    return ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).first()


def versions_for_comparison():
    """Newest first, each marked whether it was active before (promoting it again is a rollback)."""
    was_active = Exists(Promotion.objects.filter(to_version=OuterRef("pk")))
    return ModelVersion.objects.select_related("training_job", "created_by", "parent").annotate(was_active=was_active).order_by("-id")


def version(version_id):
    return versions_for_comparison().get(pk=version_id)


def has_been_active(version):
    """A version that was active before comes back by a rollback, not a first promotion."""
    return Promotion.objects.filter(to_version=version).exists()


def promotion_history():
    return Promotion.objects.select_related("from_version", "to_version", "actor")


def promotions_of(version):
    return promotion_history().filter(Q(to_version=version) | Q(from_version=version))


def training_jobs():
    return TrainingJob.objects.select_related("created_by", "parent_version").prefetch_related("versions")


def can_manage_models(user):
    return user.is_authenticated and user.has_perm("ml.manage_models")


# --- figures --------------------------------------------------------------------------------

figure = metric_figure


COMPARED_METRICS = [
    ("roc_auc", "ROC AUC"),
    ("sensitivity", "Sensitivity"),
    ("specificity", "Specificity"),
    ("ppv", "PPV"),
    ("npv", "NPV"),
]


def evaluation_figures(metrics):
    """The compared metrics of one evaluation, in table order, each with its 95% CI."""
    return [(key, label, figure(metrics.get(key))) for key, label in COMPARED_METRICS]


def roc_points(metrics):
    """(false positive rates, true positive rates) of an evaluation, or None if it holds no curve."""
    curve = metrics.get("roc_curve") or metrics.get("roc") or {}
    if isinstance(curve, dict):
        fpr, tpr = curve.get("fpr"), curve.get("tpr")
    else:
        pairs = list(curve)
        fpr, tpr = [point[0] for point in pairs], [point[1] for point in pairs]
    return (list(fpr), list(tpr)) if fpr and tpr else None


@dataclass
class ComparedVersion:
    version: ModelVersion
    evaluation: Evaluation | None

    @property
    def figures(self):
        return evaluation_figures(self.evaluation.metrics) if self.evaluation else []


def comparison(fingerprint):
    """Every version beside its measurement on the evaluation set with this fingerprint (or none)."""
    evaluations = {}
    if fingerprint:
        evaluations = {e.version_id: e for e in Evaluation.objects.filter(dataset_fingerprint=fingerprint)}
    return [ComparedVersion(version, evaluations.get(version.pk)) for version in versions_for_comparison()]


def evaluations_of(version):
    return Evaluation.objects.filter(version=version).select_related("created_by")


# --- dataset folders ----------------------------------------------------------------------

def datasets_root():
    return Path(settings.DATASETS_ROOT)


def snapshots_dir():
    return datasets_root() / "snapshots"


def visible_entries(folder):
    return sorted(entry for entry in Path(folder).iterdir() if not entry.name.startswith("."))


def dataset_path(name):
    """The absolute path of a dataset folder named relative to the datasets folder (or absolute).

    `..` is collapsed but symbolic links are kept, so a large dataset linked into the datasets
    folder counts as inside it, while `../elsewhere` does not."""
    path = Path(name).expanduser()
    return Path(os.path.normpath(path if path.is_absolute() else datasets_root().resolve() / path))


def display_path(path):
    """A dataset path as administrators know it: relative to the datasets folder when inside it."""
    path = dataset_path(path)
    try:
        return str(path.relative_to(datasets_root().resolve()))
    except ValueError:
        return str(path)


def dataset_folders():
    """Folders an administrator may train on: those directly in the datasets folder, and snapshots."""
    root = datasets_root()
    if not root.is_dir():
        return []
    folders = [entry.name for entry in visible_entries(root) if entry.is_dir() and entry.name != "snapshots"]
    if snapshots_dir().is_dir():
        folders += [f"snapshots/{entry.name}" for entry in visible_entries(snapshots_dir()) if entry.is_dir()]
    return folders


def evaluation_set():
    """The folder every version is measured on (ML_EVALUATION_SET, relative to the datasets folder
    unless absolute; default `evaluation`), or None when it is not there."""
    name = getattr(settings, "ML_EVALUATION_SET", "evaluation")
    if not name:
        return None
    path = dataset_path(name)
    return path if path.is_dir() else None


_fingerprints = {}  # (path, file stats) -> fingerprint; hashing is skipped while no file changed


def dataset_fingerprint(path):
    """The engine's content fingerprint of the images an evaluation reads from this folder (their
    relative paths and bytes), so the same images give the same value wherever the folder lives.
    Keyed by the files' sizes and times, so a page load only stats the files."""
    from ml.engine.data import content_fingerprint, evaluation_samples

    samples, _description = evaluation_samples(path)
    stats = [(sample.relpath, sample.path.stat().st_size, sample.path.stat().st_mtime_ns) for sample in samples]
    key = (str(Path(path).resolve()), hashlib.sha256(repr(stats).encode()).hexdigest())
    if key not in _fingerprints:
        _fingerprints[key] = content_fingerprint(samples)
    return _fingerprints[key]
