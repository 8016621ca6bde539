"""Model versions and training jobs through the API. (They live with the clinical API because
they share its permissions and errors, and ml may not import diagnosis.)

Clinicians and administrators may read versions (every result names one); only administrators
(ml.manage_models) promote a version or start, follow and cancel training."""
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from diagnosis.auditing import client_ip
from ml import selectors as ml_selectors
from ml import services as ml_services
from ml.engine import BACKBONES, DEFAULT_BACKBONE
from ml.models import TrainingJob
from ml.services.training import MAX_EPOCHS, MAX_IMAGE_SIZE

from . import errors
from .base import ApiViewMixin
from .schema import ErrorSerializer
from .serializers import ModelVersionSerializer, PromoteSerializer

READ_VERSIONS = "diagnosis.view_prediction"
MANAGE = "ml.manage_models"


class TrainingJobSerializer(serializers.ModelSerializer):
    # Plain text, not an enum: a second enum named "status" beside the scans' would need a settings override.
    status = serializers.CharField(read_only=True, help_text="queued, running, succeeded, failed or cancelled.")
    progress_percent = serializers.IntegerField(read_only=True)
    version = serializers.SerializerMethodField(help_text="The id of the version this job registered, once it succeeded.")

    class Meta:
        model = TrainingJob
        fields = [
            "id", "status", "source", "dataset_path", "parameters", "epoch", "total_epochs", "progress_percent", "current_metrics",
            "history", "cancel_requested", "failure_reason", "created_at", "started_at", "finished_at", "version",
        ]

    def get_version(self, job) -> int | None:
        version = job.versions.first()
        return version.pk if version else None


class TrainingStartSerializer(serializers.Serializer):
    """Types only; whether the data and settings can be trained on is decided by start_training_job."""

    source = serializers.ChoiceField(choices=TrainingJob.Source.choices, default=TrainingJob.Source.FOLDER)
    dataset = serializers.CharField(max_length=500, required=False, default="", help_text="A folder in the datasets folder (source folder).")
    backbone = serializers.ChoiceField(choices=list(BACKBONES), default=DEFAULT_BACKBONE)
    epochs = serializers.IntegerField(min_value=1, max_value=MAX_EPOCHS, default=10)
    image_size = serializers.IntegerField(min_value=32, max_value=MAX_IMAGE_SIZE, required=False)
    batch_size = serializers.IntegerField(min_value=1, max_value=512, default=16)
    weights = serializers.CharField(max_length=500, required=False, help_text="imagenet (refused when it cannot be downloaded), none, or a file in the weights folder (PORTAL_WEIGHTS_DIR).")
    held_out_sources = serializers.ListField(
        child=serializers.CharField(max_length=200), max_length=20, required=False,
        help_text="Sources (the origin column of the folder's details.csv; a name or its start) kept out of training and measured apart afterwards.",
    )


class VersionList(ApiViewMixin, generics.ListAPIView):
    """Every registered model version, newest first."""

    serializer_class = ModelVersionSerializer
    permission_required = {"GET": READ_VERSIONS}

    def get_queryset(self):
        return ml_selectors.versions_for_comparison()


class VersionDetail(ApiViewMixin, generics.RetrieveAPIView):
    serializer_class = ModelVersionSerializer
    permission_required = {"GET": READ_VERSIONS}

    def get_object(self):
        return get_object_or_404(ml_selectors.versions_for_comparison(), pk=self.kwargs["version_id"])


class VersionPromote(ApiViewMixin, APIView):
    """Make this version the one every new scan is read with (a rollback when it was active before)."""

    permission_required = {"GET": MANAGE, "POST": MANAGE}

    @extend_schema(request=PromoteSerializer, responses={
        200: ModelVersionSerializer,
        409: OpenApiResponse(ErrorSerializer, description="The safeguards object: promote with override and a reason."),
    })
    def post(self, request, version_id):
        version = get_object_or_404(ml_selectors.versions_for_comparison(), pk=version_id)
        reason = PromoteSerializer(data=request.data)
        reason.is_valid(raise_exception=True)
        try:
            ml_services.promote_version(version.pk, actor=request.user, via="api", ip_address=client_ip(request), **reason.validated_data)
        except ml_services.PromotionNeedsOverride as refusal:
            return errors.refusal(str(refusal), code="promotion_needs_override", status_code=status.HTTP_409_CONFLICT)
        except ml_services.PromotionError as refusal:
            return errors.refusal(str(refusal), code="promotion_refused")
        return Response(ModelVersionSerializer(ml_selectors.version(version.pk), context={"request": request}).data)


class TrainingJobList(ApiViewMixin, generics.ListCreateAPIView):
    """Training jobs, newest first; POST starts one (202: a training worker runs it; poll its address)."""

    serializer_class = TrainingJobSerializer
    permission_required = {"GET": MANAGE, "POST": MANAGE}

    def get_queryset(self):
        return ml_selectors.training_jobs()

    @extend_schema(request=TrainingStartSerializer, responses={202: TrainingJobSerializer})
    def post(self, request):
        parameters = TrainingStartSerializer(data=request.data)
        parameters.is_valid(raise_exception=True)
        try:
            job = ml_services.start_training_job(actor=request.user, via="api", ip_address=client_ip(request), **parameters.validated_data)
        except ml_services.TrainingRefused as refusal:
            return errors.refusal(str(refusal), code="training_refused")
        location = request.build_absolute_uri(reverse("api:training_job_detail", args=[job.pk]))
        return Response(TrainingJobSerializer(job).data, status=status.HTTP_202_ACCEPTED, headers={"Location": location})


class TrainingJobDetail(ApiViewMixin, generics.RetrieveAPIView):
    """One training job's progress: epoch, metrics so far, status."""

    serializer_class = TrainingJobSerializer
    permission_required = {"GET": MANAGE}

    def get_object(self):
        return get_object_or_404(ml_selectors.training_jobs(), pk=self.kwargs["job_id"])


class TrainingJobCancel(ApiViewMixin, APIView):
    """Cancel a job: a queued one at once, a running one at its next check."""

    permission_required = {"GET": MANAGE, "POST": MANAGE}

    @extend_schema(request=None, responses={
        200: TrainingJobSerializer,
        409: OpenApiResponse(ErrorSerializer, description="The job has already finished."),
    })
    def post(self, request, job_id):
        job = get_object_or_404(ml_selectors.training_jobs(), pk=job_id)
        try:
            job = ml_services.cancel_training_job(job.pk, actor=request.user, via="api", ip_address=client_ip(request))
        except ml_services.TrainingRefused as refusal:
            return errors.refusal(str(refusal), code="already_finished", status_code=status.HTTP_409_CONFLICT)
        return Response(TrainingJobSerializer(job).data)
