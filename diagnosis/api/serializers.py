from rest_framework import serializers

from diagnosis.models import Patient, Prediction, Review, Scan, Site
from ml.models import ModelVersion

DISCLAIMER = "Decision support from an AI model, not a diagnosis. A clinician must interpret the image."


class ModelVersionSummarySerializer(serializers.ModelSerializer):
    name = serializers.CharField(source="label")
    demo = serializers.BooleanField(source="trained_on_synthetic_data")
    headline_metrics = serializers.JSONField()

    class Meta:
        model = ModelVersion
        fields = ["id", "name", "backbone", "input_size", "threshold", "demo", "headline_metrics", "created_at"]


class ReviewSerializer(serializers.ModelSerializer):
    reviewer = serializers.CharField(source="reviewer.username")

    class Meta:
        model = Review
        fields = ["agrees", "note", "reviewer", "created_at"]


class PredictionSerializer(serializers.ModelSerializer):
    model_version = ModelVersionSummarySerializer()
    reviews = ReviewSerializer(many=True)
    disclaimer = serializers.SerializerMethodField()

    class Meta:
        model = Prediction
        fields = ["id", "label", "positive_probability", "threshold", "probabilities", "model_version", "inference_ms", "created_at", "reviews", "disclaimer"]

    def get_disclaimer(self, prediction) -> str:
        if prediction.model_version.trained_on_synthetic_data:
            return "DEMO MODEL trained on synthetic images; not for clinical use. " + DISCLAIMER
        return DISCLAIMER


class ScanSerializer(serializers.ModelSerializer):
    patient = serializers.UUIDField(source="patient_id", read_only=True)
    predictions = PredictionSerializer(many=True, read_only=True)

    class Meta:
        model = Scan
        fields = ["id", "patient", "status", "failure_reason", "file_format", "width", "height", "uploaded_at", "finished_at", "predictions"]


class ScanUploadSerializer(serializers.Serializer):
    image = serializers.FileField(help_text="A PNG, JPEG or DICOM chest X-ray.")


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
