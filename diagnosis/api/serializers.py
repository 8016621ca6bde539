from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from diagnosis import ai_visibility, selectors
from diagnosis.models import Patient, Prediction, Review, Scan, Site
from diagnosis.query_params import sane_date
from ml import trust
from ml.models import ModelVersion

from . import server_paths

DISCLAIMER = "Decision support from an AI model, not a diagnosis. A clinician must interpret the image."


class VersionTrustMixin:
    def version_trust(self, version):
        """ml.trust.result_trust, asked once per version for the whole response (the context is shared
        by every nested serializer), so a list's query count does not grow with its rows."""
        return trust.result_trust(version, self.context.setdefault("version_trust", {}))


class ModelVersionSummarySerializer(VersionTrustMixin, serializers.ModelSerializer):
    """The model version beside every result: what a person calls it, whether it is a demo, and the
    figures that mean something (on sources it never trained on), with the notes every result carries."""

    label = serializers.CharField(read_only=True, help_text="The version's name as the portal shows it beside every result, e.g. v3.")
    name = serializers.CharField(source="label", read_only=True, help_text="The same as `label` (kept for clients written before `label`).")
    demo = serializers.BooleanField(source="trained_on_synthetic_data", read_only=True, help_text="Trained on synthetic images: not for clinical use.")
    headline_metrics = serializers.JSONField(read_only=True, help_text="Its own held-out test split: not independent of its training sources.")
    validation = serializers.SerializerMethodField(
        help_text="Figures on films from sources it never trained on (external evaluation, else source-held-out test), with `caveat` "
                  "(a sentence, or null) when each held-out source holds one class only; null when none."
    )
    notes = serializers.SerializerMethodField(help_text="Sentences every result of this version carries: demo, not validated (or validated with one class per held-out source), overridden.")
    overridden = serializers.SerializerMethodField(help_text="Made active by an override of the promotion safeguards.")

    class Meta:
        model = ModelVersion
        fields = ["id", "label", "name", "backbone", "input_size", "threshold", "demo", "overridden", "validation", "notes", "headline_metrics", "created_at"]

    def to_representation(self, version):
        data = super().to_representation(version)
        return data if server_paths.may_see_server_paths(self.context) else server_paths.folder_names_only(data)

    def get_validation(self, version) -> dict | None:
        return self.version_trust(version)["validation"]

    def get_notes(self, version) -> list[str]:
        return self.version_trust(version)["notes"]

    def get_overridden(self, version) -> bool:
        return self.version_trust(version)["overridden"]


class ModelVersionSerializer(ModelVersionSummarySerializer):
    """One version in full: what it is, how it was measured, whether it is the one in use."""

    # Plain text, not an enum: a second enum named "status" beside the scans' would need a settings override.
    status = serializers.CharField(read_only=True, help_text="candidate, active or retired.")

    class Meta(ModelVersionSummarySerializer.Meta):
        fields = ModelVersionSummarySerializer.Meta.fields + [
            "status", "class_names", "positive_class", "metrics", "evaluation_set", "dataset_fingerprint", "split_counts", "training_params",
        ]


class PromoteSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500, help_text="Why this version becomes the one every new scan is read with (kept in the promotion history).")
    override = serializers.BooleanField(
        default=False, help_text="Promote although the safeguards object (no evaluation on the reference set, AUC below 0.5 or below "
        "the active version's, shortcut targets missed); the reason is then required and the promotion is marked overridden.",
    )


class ReviewSerializer(serializers.ModelSerializer):
    reviewer = serializers.CharField(source="reviewer.username", read_only=True)
    current = serializers.BooleanField(source="is_current", read_only=True, help_text="False for a review its author has since revised.")
    note = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")
    # Required on every new review; null only on reviews recorded before findings were asked.
    finding = serializers.ChoiceField(
        choices=Review.Finding.choices, allow_null=True,
        help_text="Your clinical finding: positive, negative or indeterminate (required; null on old reviews: not recorded).",
    )
    agrees = serializers.BooleanField(
        required=False, allow_null=True, default=None,
        help_text="Whether you agree with the AI result: required when it is shown to you; left out on a blind read (null), "
                  "when the site is in its silent period.",
    )
    ai_result_visible = serializers.BooleanField(read_only=True, help_text="False for a blind read: the reviewer did not see the AI result.")

    class Meta:
        model = Review
        fields = ["id", "finding", "agrees", "ai_result_visible", "note", "reviewer", "created_at", "current"]
        read_only_fields = ["id", "created_at"]

    def to_representation(self, review):
        data = super().to_representation(review)
        if self.context.get("ai_result_withheld"):
            data["agrees"] = None  # with the reviewer's finding it would tell the AI result the reader may not see
        return data

    def validate_finding(self, value):
        if value is None:
            raise serializers.ValidationError("Say what you found: positive, negative or indeterminate.")
        return value


class PacsSendSerializer(serializers.Serializer):
    """The result sent back to the PACS its film came from (pacs.models.ResultSend)."""

    ae_title = serializers.CharField(read_only=True, help_text="The node's AE title.")
    status = serializers.CharField(read_only=True, help_text="queued (waiting to send, perhaps for the PACS to come back), running, sent, failed or cancelled (not sent).")
    message = serializers.CharField(source="status_sentence", read_only=True, help_text="In words: \"Sent to PACS ORTHANC at ...\", \"Waiting to send ...: why. Next try at ...\", or why it failed.")
    sent_at = serializers.DateTimeField(read_only=True, allow_null=True)


class PredictionSerializer(VersionTrustMixin, serializers.ModelSerializer):
    model_version = ModelVersionSummarySerializer()
    reviews = ReviewSerializer(many=True)
    sent_to_pacs = PacsSendSerializer(source="pacs_sends", many=True, read_only=True,
                                      help_text="Its Secondary Capture and SR sent back to the PACS the film came from; empty for other films.")
    disclaimer = serializers.SerializerMethodField()
    threshold_source = serializers.CharField(read_only=True, help_text="\"version\" or \"site\": whose threshold made the label.")
    threshold_origin = serializers.CharField(read_only=True, help_text=(
        "In words: \"version threshold\", or e.g. \"threshold and calibration fitted for <site> on 44 reviewed scans (1 Dec 2026)\"."))
    site_temperature = serializers.FloatField(read_only=True, allow_null=True, help_text=(
        "The site's temperature applied to the logit of the version's probability before it was stored (null: none, the version's own)."))

    class Meta:
        model = Prediction
        fields = ["id", "label", "positive_probability", "threshold", "threshold_source", "threshold_origin", "site_temperature", "probabilities", "model_version", "runtime", "precision", "inference_ms", "created_at", "reviews", "sent_to_pacs", "disclaimer"]

    def get_disclaimer(self, prediction) -> str:
        return " ".join([*self.version_trust(prediction.model_version)["notes"], DISCLAIMER])


class DicomHeaderSerializer(serializers.ModelSerializer):
    """What the DICOM header said, as written ("" or null when absent, and always for PNG and JPEG)."""

    patient_id = serializers.CharField(source="header_patient_id", read_only=True, help_text="The header's PatientID, e.g. \"Anonymized\".")
    patient_name = serializers.CharField(source="header_patient_name", read_only=True, help_text="FAMILY^GIVEN as written.")
    patient_birth_date = serializers.DateField(source="header_birth_date", read_only=True, allow_null=True)
    patient_sex = serializers.CharField(source="header_sex", read_only=True)

    class Meta:
        model = Scan
        fields = ["study_date", "study_time", "accession_number", "study_instance_uid", "view_position", "modality", "body_part",
                  "patient_id", "patient_name", "patient_birth_date", "patient_sex"]
        read_only_fields = fields


class ScanSerializer(serializers.ModelSerializer):
    patient = serializers.UUIDField(source="patient_id", read_only=True)
    predictions = serializers.SerializerMethodField(help_text="The AI results, newest first; empty while `ai_result` is withheld.")
    ai_result = serializers.SerializerMethodField(
        help_text="\"shown\", or \"withheld\": the site is in its silent period, its clinicians read films blind and only "
                  "administrators see the results.",
    )
    site_validation = serializers.SerializerMethodField(
        help_text="How far the model was checked on this site's own films, in words (\"Validated on 64 films of this site (v3, 7 Dec 2026)\"), "
                  "or why results are withheld; null when nothing was analysed.",
    )
    review_url = serializers.SerializerMethodField(
        help_text="Where to POST your review of the latest result (on a withheld result: your finding only, a blind read); null before one exists.",
    )
    status_url = serializers.SerializerMethodField(help_text="Poll this address until `status` is done or failed.")
    original_filename = serializers.CharField(read_only=True, help_text="The name the file was sent with, for display only (directories removed).")
    dicom = DicomHeaderSerializer(source="*", read_only=True)
    identity_mismatch = serializers.CharField(read_only=True, help_text="When the uploader confirmed a header naming someone else: what differed.")
    identity_mismatch_reason = serializers.CharField(read_only=True, help_text="The uploader's reason for filing it under this patient anyway.")

    class Meta:
        model = Scan
        fields = [
            "id", "patient", "status", "status_url", "failure_reason", "file_format", "width", "height", "uploaded_at", "finished_at",
            "original_filename", "dicom", "identity_mismatch", "identity_mismatch_reason", "ai_result", "site_validation", "review_url", "predictions",
        ]

    def _shown(self, scan):
        return ai_visibility.ai_result_shown(self.context["request"].user, scan)

    @extend_schema_field(PredictionSerializer(many=True))
    def get_predictions(self, scan):
        return PredictionSerializer(scan.predictions.all(), many=True, context=self.context).data if self._shown(scan) else []

    def get_ai_result(self, scan) -> str:
        return "shown" if self._shown(scan) else "withheld"

    def get_site_validation(self, scan) -> str | None:
        site = scan.patient.site
        if not scan.predictions.all():
            return None
        if not self._shown(scan):
            return ai_visibility.withheld_sentence(site)
        return ai_visibility.site_validation_line(site)

    def get_review_url(self, scan) -> str | None:
        latest = scan.latest_prediction
        if latest is None:
            return None
        url = reverse("api:prediction_reviews", args=[latest.pk])
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request else url

    def get_status_url(self, scan) -> str:
        url = reverse("api:scan_detail", args=[scan.pk])
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request else url


class WorklistScanSerializer(ScanSerializer):
    """A worklist row: the scan, whose patient it is, and what the triage order used."""

    patient_name = serializers.CharField(source="patient.__str__", read_only=True)
    site = serializers.CharField(source="patient.site.code", read_only=True)
    likely_positive = serializers.SerializerMethodField(help_text="Whether the latest result is likely positive; null while none is shown.")
    reviewed = serializers.BooleanField(read_only=True)
    clinician_findings = serializers.SerializerMethodField(
        help_text="Each clinician's current review of the latest result: their finding, and whether they agree with it (null when the result is withheld from you or they read blind). "
                  "On a film you read blind, only your own until you have saved it: others' findings would anchor your read.",
    )

    def get_likely_positive(self, scan) -> bool | None:
        return scan.likely_positive if self._shown(scan) else None

    @extend_schema_field(ReviewSerializer(many=True))
    def get_clinician_findings(self, scan):
        latest = scan.latest_prediction
        if latest is None:
            return []
        context = {**self.context, "ai_result_withheld": not self._shown(scan)}
        shown, _ = ai_visibility.reviews_shown(self.context["request"].user, scan, latest, latest.current_reviews)
        return ReviewSerializer(shown, many=True, context=context).data

    class Meta(ScanSerializer.Meta):
        fields = ScanSerializer.Meta.fields + ["patient_name", "site", "likely_positive", "reviewed", "clinician_findings"]


class VisibleSiteField(serializers.SlugRelatedField):
    """A site code among the sites the requesting user may see: another site's code gets the same
    answer as a code that does not exist, so codes cannot be probed. (`queryset` names the model for
    the schema; each request narrows it.)"""

    def get_queryset(self):
        return selectors.sites_visible_to(self.context["request"].user)


class WorklistFilterSerializer(serializers.Serializer):
    """The worklist page's filters (diagnosis.forms.WorklistFilterForm), as query parameters."""

    status = serializers.ChoiceField(choices=Scan.Status.choices, required=False)
    result = serializers.ChoiceField(choices=["positive", "negative"], required=False)
    review = serializers.ChoiceField(
        choices=["reviewed", "unreviewed", "disagreed"], required=False,
        help_text="\"disagreed\": a clinician's current review disagrees with the latest AI result (refused while results are withheld from you).",
    )
    date_from = serializers.DateField(required=False, validators=[sane_date])
    date_to = serializers.DateField(required=False, validators=[sane_date])
    site = VisibleSiteField(slug_field="code", queryset=Site.objects.all(), required=False, help_text="A site code; narrows, never widens, what you may see.",
                            error_messages={"does_not_exist": "No site you may see has the code {value}."})


class ScanUploadSerializer(serializers.Serializer):
    image = serializers.FileField(help_text="A PNG, JPEG or DICOM chest X-ray.")
    confirm_identity_mismatch = serializers.BooleanField(
        default=False, help_text="A DICOM whose header names someone else (patient ID, name or birth date) is refused with code "
        "`identity_mismatch` unless this is true and a reason is given.",
    )
    identity_mismatch_reason = serializers.CharField(
        max_length=500, required=False, allow_blank=True, default="",
        help_text="Why the file belongs to this patient although its header names someone else; kept with the scan and in the audit trail.",
    )


class ScanMoveSerializer(serializers.Serializer):
    patient = serializers.UUIDField(help_text="The id of the patient the scan belongs to; one you may see.")
    reason = serializers.CharField(max_length=500, help_text="Why the scan is moved; kept in the audit trail.")


class PatientSerializer(serializers.ModelSerializer):
    site = serializers.SlugRelatedField(slug_field="code", read_only=True)
    site_code = serializers.SlugRelatedField(
        source="site", slug_field="code", queryset=Site.objects.all(), write_only=True, required=False,
        error_messages={"does_not_exist": "No site has the code {value}."},
        help_text="Administrators only: the site to register the patient at. Clinicians always register at their own site.",
    )

    class Meta:
        model = Patient
        fields = ["id", "site", "site_code", "medical_record_number", "family_name", "given_name", "date_of_birth", "sex", "created_at"]
        read_only_fields = ["id", "site", "created_at"]


class PatientUpdateSerializer(serializers.ModelSerializer):
    """The fields a correction may change (PATCH sends only those that change)."""

    class Meta:
        model = Patient
        fields = ["medical_record_number", "family_name", "given_name", "date_of_birth", "sex"]
