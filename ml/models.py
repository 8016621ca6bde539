"""Model versions and the jobs that train them.

A ModelVersion is immutable once registered: only its status moves (candidate -> active ->
retired, and back to active on a rollback). Every Prediction points at the version that made it.
"""
from django.conf import settings
from django.db import models
from django.db.models import Q

from jobs.models import Job


class ImmutableVersionError(Exception):
    pass


def metric_figure(value):
    """One metric as {value, ci_low, ci_high}, from a bare number or the engine's
    {"value": v, "ci": [low, high]} (or an explicit ci_low / ci_high)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return {"value": float(value), "ci_low": None, "ci_high": None}
    if isinstance(value, dict):
        low, high = (list(value.get("ci") or [value.get("ci_low"), value.get("ci_high")]) + [None, None])[:2]
        return {"value": value.get("value"), "ci_low": low, "ci_high": high}
    return None


def format_metric(figure, digits=2):
    """A metric with its 95% confidence interval, e.g. '0.91 (95% CI 0.86–0.95)'."""
    if not figure or figure.get("value") is None:
        return "—"
    text = f"{figure['value']:.{digits}f}"
    if figure.get("ci_low") is not None and figure.get("ci_high") is not None:
        text += f" (95% CI {figure['ci_low']:.{digits}f}–{figure['ci_high']:.{digits}f})"
    return text


class ModelVersion(models.Model):
    class Status(models.TextChoices):
        CANDIDATE = "candidate", "Candidate"
        ACTIVE = "active", "Active"
        RETIRED = "retired", "Retired"

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.CANDIDATE)
    artifact_path = models.CharField(max_length=500)
    sha256 = models.CharField(max_length=64)
    backbone = models.CharField(max_length=32)
    input_size = models.PositiveIntegerField()
    preprocessing = models.JSONField()
    class_names = models.JSONField()
    positive_class = models.CharField(max_length=64)
    threshold = models.FloatField()
    metrics = models.JSONField(default=dict)
    evaluation_set = models.CharField(max_length=500, blank=True)
    dataset_fingerprint = models.CharField(max_length=64, blank=True)
    split_counts = models.JSONField(default=dict)
    training_params = models.JSONField(default=dict)
    library_versions = models.JSONField(default=dict)
    trained_on_synthetic_data = models.BooleanField(default=False)
    record = models.JSONField(default=dict)
    training_job = models.ForeignKey("TrainingJob", null=True, blank=True, on_delete=models.PROTECT, related_name="versions")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["status"], condition=Q(status="active"), name="exactly_one_active_model_version"),
        ]
        permissions = [("manage_models", "Can train, evaluate, promote and roll back model versions")]

    def __str__(self):
        return f"v{self.pk} {self.backbone}"

    @property
    def label(self):
        return f"v{self.pk}"

    @property
    def headline_metrics(self):
        """The figures shown beside every result: held-out test metrics at the stored threshold.

        The engine's record holds them flat ({"split": "test", "sensitivity": {"value", "ci"}, ...});
        rows written before it nest them under "test"."""
        split = self.metrics.get("test") or self.metrics
        evaluated_on = self.metrics.get("evaluated_on") or split.get("split") or "test"
        figures = {"evaluated_on": f"{evaluated_on} split" if evaluated_on in ("test", "validation") else evaluated_on, "n": split.get("n")}
        for name in ("sensitivity", "specificity", "roc_auc"):
            value = metric_figure(split.get(name))
            if value is not None:
                figures[name] = value
        return figures

    @property
    def precision(self):
        """"int8" for a version derived by quantising another's serving model; else "fp32" (its
        serving export may still run bf16, a choice of the runtime, not a version of its own)."""
        return self.record.get("precision", "fp32")

    @property
    def derived_from(self):
        """The version this one was derived from (same Keras artifact, quantised serving model), or None."""
        label = self.record.get("derived_from") or ""
        return ModelVersion.objects.filter(pk=int(label[1:])).first() if label[1:].isdigit() else None

    def save(self, *args, **kwargs):
        if self.pk and kwargs.get("update_fields") != ["status"]:
            raise ImmutableVersionError("A registered model version cannot be changed; register a new one.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ImmutableVersionError("Model versions are kept for the record; retire it instead.")


class Promotion(models.Model):
    """Who switched the active version, when, and from which to which (promote and rollback alike)."""

    from_version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    to_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="promotions")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    reason = models.CharField(max_length=500, blank=True)
    is_rollback = models.BooleanField(default=False)
    # Promoted although the safeguards objected (ml.trust.promotion_concerns): what they said is
    # kept beside the administrator's written reason, and every result of the version says so.
    overridden = models.BooleanField(default=False)
    concerns = models.JSONField(default=list, blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-at", "-id"]


class TrainingJob(Job):
    class Source(models.TextChoices):
        FOLDER = "folder", "Dataset folder"
        REVIEWED_SCANS = "reviewed_scans", "Reviewed scans"

    task_name = "ml.tasks.run_training_job"
    queue = "training"  # loads TensorFlow and runs for long: never on the inference workers

    source = models.CharField(max_length=20, choices=Source.choices, default=Source.FOLDER)
    dataset_path = models.CharField(max_length=500)
    parameters = models.JSONField(default=dict)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    epoch = models.PositiveIntegerField(default=0)
    total_epochs = models.PositiveIntegerField(default=0)
    current_metrics = models.JSONField(default=dict)
    history = models.JSONField(default=list)
    log_tail = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    # What the dataset check found before the job was queued: {"classes": {"covid": 950, ...}, ...}.
    dataset_summary = models.JSONField(default=dict)

    class Meta:
        ordering = ["-id"]

    def __str__(self):
        return f"training job {self.pk}"

    @property
    def is_finished(self):
        return self.status in {self.Status.SUCCEEDED, self.Status.FAILED, self.Status.CANCELLED}

    @property
    def progress_percent(self):
        if self.status == self.Status.SUCCEEDED:
            return 100  # early stopping may end training before the last planned epoch
        if not self.total_epochs:
            return 0
        return round(100 * self.epoch / self.total_epochs)

    @property
    def version(self):
        """The candidate version this job registered, if it succeeded."""
        return self.versions.first()


class Evaluation(models.Model):
    """One version measured on one evaluation set, identified by the fingerprint of its files.

    Versions are immutable, so measurements live here; every version measured on the same
    fingerprint can be compared side by side.
    """

    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="evaluations")
    dataset_path = models.CharField(max_length=500)
    dataset_fingerprint = models.CharField(max_length=64)
    n_images = models.PositiveIntegerField(default=0)
    metrics = models.JSONField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["version", "dataset_fingerprint"], name="one_evaluation_per_version_and_dataset"),
        ]

    def __str__(self):
        return f"{self.version.label} on {self.dataset_path}"


class EvaluationRun(Job):
    """The job of measuring one version on one dataset folder; its result is an Evaluation.

    A row of its own, so an evaluation asked for while the broker is down still runs later."""

    task_name = "ml.tasks.run_evaluation"
    queue = "training"  # loads TensorFlow

    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="evaluation_runs")
    dataset_path = models.CharField(max_length=500)
    evaluation = models.ForeignKey(Evaluation, null=True, blank=True, on_delete=models.PROTECT, related_name="runs")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self):
        return f"evaluation of {self.version.label} on {self.dataset_path}"


class DerivationRun(Job):
    """The job of deriving a version's int8 version (ml.services.derivation): quantising and checking
    load TensorFlow and take a minute, so an administrator's click queues it for the training worker.
    A refusal ends it as failed, its one sentence in failure_reason."""

    task_name = "ml.tasks.run_derivation"
    queue = "training"

    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="derivation_runs")
    precision = models.CharField(max_length=8, default="int8")
    keep_fp32 = models.JSONField(default=list, blank=True)  # backbone blocks left in fp32 (ml.engine.serve.blocks), e.g. ["block1"]
    derived = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self):
        return f"{self.precision} derivation of {self.version.label}"


class ServingExport(models.Model):
    """The fast serving model of one version, made once on a training worker, and what its check
    against Keras decided. Kept beside the version (which is immutable) rather than in it.

    `validation` is ml.engine.serve.export.validate_export's result ({accepted, runtime, precision,
    reason, checks, ...}); when the export itself failed, accepted is False and the reason says why."""

    version = models.OneToOneField(ModelVersion, on_delete=models.PROTECT, related_name="serving_export")
    export_path = models.CharField(max_length=500, blank=True)
    record = models.JSONField(default=dict)
    validation = models.JSONField(default=dict)
    validated_on = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"serving export of {self.version.label}"

    @property
    def accepted(self):
        return bool(self.validation.get("accepted"))

    @property
    def runtime(self):
        return self.validation.get("runtime", "keras")

    @property
    def precision(self):
        return self.validation.get("precision", "fp32")

    @property
    def reason(self):
        return self.validation.get("reason", "")
