"""The clinical record: sites and their staff, patients, scans, the AI's predictions, the clinicians'
reviews of them, and API upload keys."""
import uuid

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower

from jobs.models import Job


class Site(models.Model):
    class Mode(models.TextChoices):
        # Silent: the model reads every film and its results are kept, but only administrators see
        # them while clinicians read blind (diagnosis.ai_visibility). Live: clinicians see them.
        SILENT = "silent", "Silent period"
        LIVE = "live", "Live"

    name = models.CharField(max_length=200, unique=True)
    code = models.SlugField(max_length=32, unique=True)
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.SILENT)
    # The administrator's decision that put the site in its mode (diagnosis.site_going_live); null
    # for a new site, and for sites that were live before the silent period existed.
    mode_decision = models.ForeignKey("SiteModeDecision", null=True, blank=True, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class StaffProfile(models.Model):
    """Ties a login to the site whose patients it may see."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="staff_profile")
    site = models.ForeignKey(Site, null=True, blank=True, on_delete=models.PROTECT, related_name="staff")
    # Counts the set-password links issued: a link's token hashes it, so a newer link voids older ones.
    password_links_issued = models.PositiveIntegerField(default=0)

    def __str__(self):
        return f"{self.user} at {self.site or 'no site'}"


class Patient(models.Model):
    class Sex(models.TextChoices):
        FEMALE = "F", "Female"
        MALE = "M", "Male"
        OTHER = "O", "Other"
        UNKNOWN = "U", "Unknown"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="patients")
    medical_record_number = models.CharField("medical record number", max_length=64)
    family_name = models.CharField(max_length=150)
    given_name = models.CharField(max_length=150)
    date_of_birth = models.DateField(null=True, blank=True)
    sex = models.CharField(max_length=1, choices=Sex.choices, default=Sex.UNKNOWN)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["family_name", "given_name"]
        indexes = [
            # The patient list's order, for every site and for one site.
            models.Index(fields=["family_name", "given_name"], name="patient_name_order"),
            models.Index(fields=["site", "family_name", "given_name"], name="patient_site_name_order"),
        ]
        constraints = [
            # "mrn-0001" and "MRN-0001" are the same record number; the database is the one place that says so.
            models.UniqueConstraint(Lower("medical_record_number"), "site", name="unique_mrn_per_site_ignoring_case"),
        ]
        permissions = [("view_every_site", "Can see and register patients of every site")]

    def __str__(self):
        return f"{self.family_name.upper()}, {self.given_name} ({self.medical_record_number})"


class Scan(Job):
    """An uploaded X-ray, and the job of analysing it (jobs.lifecycle claims, beats and sweeps it)."""

    class Status(models.TextChoices):
        # The API has always said "processing" and "done"; the lifecycle knows them as RUNNING and DONE.
        QUEUED = "queued", "Queued"
        RUNNING = "processing", "Processing"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    task_name = "diagnosis.tasks.run_inference"
    queue = "inference"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="scans")
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    uploaded_at = models.DateTimeField(auto_now_add=True)
    # The stored name is generated. The client's file name is kept for display only (never as a
    # path): directories stripped, length capped, so five scans sent together can be told apart.
    stored_name = models.CharField(max_length=200, unique=True)
    original_filename = models.CharField(max_length=120, blank=True)
    file_format = models.CharField(max_length=8)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    size_bytes = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    # What a DICOM header said (empty for PNG and JPEG): the study, and the patient it names, as
    # written, so a card can show "Anonymized" or another patient's ID exactly as the file had it.
    study_date = models.DateField(null=True, blank=True)
    study_time = models.TimeField(null=True, blank=True)
    accession_number = models.CharField(max_length=64, blank=True)
    study_instance_uid = models.CharField("Study Instance UID", max_length=64, blank=True)
    view_position = models.CharField(max_length=16, blank=True)
    modality = models.CharField(max_length=16, blank=True)
    body_part = models.CharField(max_length=64, blank=True)
    header_patient_id = models.CharField(max_length=64, blank=True)
    header_patient_name = models.CharField(max_length=200, blank=True)
    header_birth_date = models.DateField(null=True, blank=True)
    header_sex = models.CharField(max_length=16, blank=True)
    # Filled when the uploader confirmed that a header naming someone else belongs to this patient.
    identity_mismatch = models.TextField(blank=True, help_text="What differed between the header and the patient, when confirmed.")
    identity_mismatch_reason = models.TextField(blank=True, max_length=500)
    # What the worklist sorts and filters on, kept on the row so that it can be indexed: whether the
    # latest result is likely positive (inference.record_prediction), whether anyone reviewed it
    # (services.review_prediction), and the triage rank the database derives from both and the
    # status: 0 for a likely positive result nobody has reviewed yet, 1 for every other scan.
    likely_positive = models.BooleanField(null=True, editable=False)
    reviewed = models.BooleanField(default=False, editable=False)
    triage = models.GeneratedField(
        expression=models.Case(
            models.When(models.Q(status="done", likely_positive=True, reviewed=False), then=models.Value(0)), default=models.Value(1)
        ),
        output_field=models.SmallIntegerField(),
        db_persist=True,
    )

    class Meta:
        ordering = ["-uploaded_at"]
        indexes = [
            # The worklist's order (triage, newest first) read straight from an index, LIMIT 25.
            models.Index(fields=["triage", "-uploaded_at", "id"], name="scan_worklist_order"),
            # Date filters, "new since" and a patient's history, newest first.
            models.Index(fields=["-uploaded_at"], name="scan_uploaded_at"),
            models.Index(fields=["patient", "-uploaded_at"], name="scan_patient_history"),
        ]

    def __str__(self):
        return f"scan {self.id} ({self.status})"

    @property
    def is_pending(self):
        return self.status in {self.Status.QUEUED, self.Status.RUNNING}

    @property
    def study_date_known(self):
        """The header's study date, or None when there is none or it is a placeholder: some modalities
        write 1 Jan 1901 (or 1900) when they do not know it, which is no date to show a clinician."""
        return self.study_date if self.study_date and self.study_date.year > 1901 else None

    @property
    def latest_prediction(self):
        return max(self.predictions.all(), key=lambda prediction: prediction.created_at, default=None)


class Prediction(models.Model):
    """What one model version said about one scan. Decision support, not a diagnosis."""

    scan = models.ForeignKey(Scan, on_delete=models.PROTECT, related_name="predictions")
    model_version = models.ForeignKey("ml.ModelVersion", on_delete=models.PROTECT, related_name="predictions")
    label = models.CharField(max_length=64)
    probabilities = models.JSONField()
    positive_probability = models.FloatField()
    threshold = models.FloatField()
    heatmap_name = models.CharField(max_length=200, blank=True)
    # A grey class activation map the browser colours over the film; predictions made before it
    # stored a blended colour overlay, which is shown as it is.
    heatmap_is_map = models.BooleanField(default=False)
    # Which threshold made the label: the version's own, or the one fitted for the scan's site on
    # its reviewed scans (site_threshold). Predictions made before this was recorded say "version".
    threshold_source = models.CharField(max_length=8, default="version")
    site_threshold = models.ForeignKey("SiteThreshold", null=True, blank=True, on_delete=models.PROTECT, related_name="predictions")
    runtime = models.CharField(max_length=16, blank=True)  # "openvino" or "keras"; blank before it was recorded
    precision = models.CharField(max_length=8, blank=True)  # "fp32" or "bf16"
    inference_ms = models.FloatField()
    queue_to_result_ms = models.FloatField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["scan", "model_version"], name="one_prediction_per_scan_and_version"),
        ]

    @property
    def is_positive(self):
        return self.label == self.model_version.positive_class

    @property
    def current_reviews(self):
        """Each clinician's current review (revised ones left out), from the prefetched reviews."""
        return [review for review in self.reviews.all() if review.is_current]

    @property
    def threshold_origin(self):
        """Which threshold (and calibration) made the label, in words."""
        return self.site_threshold.description if self.site_threshold else "version threshold"

    @property
    def site_temperature(self):
        """The site's temperature applied to the version's probability before it was stored; None when none was."""
        return self.site_threshold.temperature if self.site_threshold else None


class Review(models.Model):
    """A clinician's reading of one prediction. Each clinician has one current review per
    prediction; revising it keeps the earlier one as history (superseded_at set)."""

    class Finding(models.TextChoices):
        POSITIVE = "positive", "COVID-19 positive"
        NEGATIVE = "negative", "COVID-19 negative"
        INDETERMINATE = "indeterminate", "Indeterminate"

    prediction = models.ForeignKey(Prediction, on_delete=models.PROTECT, related_name="reviews")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    # The clinician's own reading; null ("not recorded") for reviews made before it was asked.
    finding = models.CharField(max_length=16, choices=Finding.choices, null=True, blank=True)
    # Null on a blind read: the clinician did not see the AI result, so could not agree or disagree.
    agrees = models.BooleanField(null=True)
    # Whether the AI result was shown to the reviewer when they read (diagnosis.ai_visibility):
    # false is a blind read of a silent site, the only kind local validation counts.
    ai_result_visible = models.BooleanField(default=True)
    note = models.TextField(blank=True, max_length=2000)
    created_at = models.DateTimeField(auto_now_add=True)
    superseded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["prediction", "reviewer"], condition=models.Q(superseded_at__isnull=True), name="one_current_review_per_reviewer"
            ),
        ]

    @property
    def is_current(self):
        return self.superseded_at is None


class UploadKey(models.Model):
    """An API upload's Idempotency-Key: a retry with the same key by the same user gets the scans
    the first request made, never new ones. `fingerprint` (the patient and the files' sha256)
    tells a retry from a different request that reuses the key."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)
    scans = models.ManyToManyField(Scan, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="one_upload_per_user_and_key")]
