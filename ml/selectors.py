"""Reads of the model lifecycle from the database: versions, evaluations and jobs. (The dataset
folders on disk are read by ml.datasets.)"""
from dataclasses import dataclass

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
    return ModelVersion.objects.select_related("training_job", "created_by").annotate(was_active=was_active).order_by("-id")


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
    return TrainingJob.objects.select_related("created_by").prefetch_related("versions")


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


def latest_fingerprint(dataset_path):
    """The fingerprint of the folder's files when a version was last measured on it; None before any."""
    return Evaluation.objects.filter(dataset_path=dataset_path).order_by("-id").values_list("dataset_fingerprint", flat=True).first()


def evaluations_of(version):
    return Evaluation.objects.filter(version=version).select_related("created_by")
