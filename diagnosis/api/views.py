"""REST API for other hospital systems: token auth, same selectors, services and permissions as the pages."""
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from diagnosis import scan_intake, selectors, services
from diagnosis.auditing import AuditedApiList, audit, client_ip, ids
from diagnosis.models import AuditEvent

from . import errors
from .base import ApiViewMixin
from .schema import ErrorSerializer
from .serializers import (
    PatientSerializer, PatientUpdateSerializer, ScanMoveSerializer, ScanSerializer, ScanUploadSerializer, WorklistFilterSerializer,
    WorklistScanSerializer,
)

IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key", OpenApiTypes.STR, OpenApiParameter.HEADER, required=False,
    description="Any unique string of up to 255 characters (a UUID). A retry with the same key gets the first request's scan back "
    "(header Idempotent-Replayed: true) and creates nothing; the same key with another patient or file is refused with 409.",
)
MAX_KEY_LENGTH = 255


@extend_schema(parameters=[OpenApiParameter("q", OpenApiTypes.STR, description="A name, or the start of a medical record number.")])
class PatientList(AuditedApiList, ApiViewMixin, generics.ListCreateAPIView):
    """List the patients you may see (search with ?q= by name or medical record number), or register one."""

    serializer_class = PatientSerializer
    permission_required = {"GET": "diagnosis.view_patient", "POST": "diagnosis.add_patient"}
    audit_action = AuditEvent.Action.PATIENT_LISTED

    def audit_details(self, shown):
        return {"query": self.request.query_params.get("q", ""), "patients": ids(shown)}

    def get_queryset(self):
        return selectors.search_patients(self.request.user, self.request.query_params.get("q", ""))

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            patient = services.register_patient(actor=request.user, via="api", ip_address=client_ip(request), **serializer.validated_data)
        except services.PatientRegistrationRefused as refusal:
            return errors.refusal(str(refusal))
        return Response(self.get_serializer(patient).data, status=status.HTTP_201_CREATED)


class PatientDetail(ApiViewMixin, generics.RetrieveUpdateAPIView):
    """One patient; PATCH corrects names, date of birth, sex or record number (kept unique per site in any letter case)."""

    serializer_class = PatientSerializer
    # Registering a patient is not correcting one: PATCH needs its own permission.
    permission_required = {"GET": "diagnosis.view_patient", "PATCH": "diagnosis.change_patient"}
    lookup_url_kwarg = "patient_id"
    http_method_names = ["get", "patch", "head", "options"]

    def get_queryset(self):
        return selectors.patients_visible_to(self.request.user)

    def retrieve(self, request, *args, **kwargs):
        patient = self.get_object()
        audit(request, AuditEvent.Action.PATIENT_VIEWED, patient=patient, via="api")
        return Response(self.get_serializer(patient).data)

    @extend_schema(request=PatientUpdateSerializer, responses={200: PatientSerializer})
    def patch(self, request, *args, **kwargs):
        patient = self.get_object()
        changes = PatientUpdateSerializer(patient, data=request.data, partial=True)
        changes.is_valid(raise_exception=True)
        try:
            services.update_patient(actor=request.user, patient=patient, via="api", ip_address=client_ip(request), **changes.validated_data)
        except services.PatientRegistrationRefused as refusal:
            return errors.refusal(str(refusal))
        return Response(self.get_serializer(patient).data)


class PatientScans(AuditedApiList, ApiViewMixin, generics.ListCreateAPIView):
    """A patient's scans with their AI results, newest first; POST one image to submit a scan (202: analysis is asynchronous)."""

    serializer_class = ScanSerializer
    permission_required = {"GET": "diagnosis.view_scan", "POST": "diagnosis.add_scan"}
    parser_classes = [MultiPartParser]
    audit_action = AuditEvent.Action.SCAN_LISTED

    def patient(self):
        if not hasattr(self, "_patient"):
            self._patient = get_object_or_404(selectors.patients_visible_to(self.request.user), pk=self.kwargs["patient_id"])
        return self._patient

    def audited_patient(self):
        return self.patient()

    def audit_details(self, shown):
        return {"scans": ids(shown)}

    def get_queryset(self):
        return selectors.patient_history(self.patient())

    @extend_schema(
        request={"multipart/form-data": ScanUploadSerializer},
        parameters=[IDEMPOTENCY_KEY],
        responses={
            202: OpenApiResponse(ScanSerializer, description="Accepted: poll `status_url` (also the Location header) for the result."),
            409: OpenApiResponse(ErrorSerializer, description="The Idempotency-Key was used before for a different upload, "
                                 "or its upload's scan has since been moved to another patient."),
        },
    )
    def post(self, request, *args, **kwargs):
        patient = self.patient()
        key = request.headers.get("Idempotency-Key", "").strip()
        if len(key) > MAX_KEY_LENGTH:
            return errors.refusal(f"The Idempotency-Key may be at most {MAX_KEY_LENGTH} characters long.", code="invalid_idempotency_key")
        upload = ScanUploadSerializer(data=request.data)
        upload.is_valid(raise_exception=True)
        files, replayed = [upload.validated_data.pop("image")], False
        confirmation = upload.validated_data
        try:
            if key:
                scans, replayed = scan_intake.submit_scans_once(actor=request.user, patient=patient, uploaded_files=files, key=key, via="api",
                                                                ip_address=client_ip(request), **confirmation)
            else:
                scans = scan_intake.submit_scans(actor=request.user, patient=patient, uploaded_files=files, via="api",
                                                 ip_address=client_ip(request), **confirmation)
        except scan_intake.IdentityMismatch as mismatch:
            return errors.refusal(str(mismatch), code="identity_mismatch")
        except scan_intake.ScanRejected as error:
            return errors.refusal(str(error))
        except scan_intake.UploadKeyConflict as conflict:
            return errors.refusal(str(conflict), code="idempotency_key_reused", status_code=status.HTTP_409_CONFLICT)
        except scan_intake.UploadNotStored as unavailable:
            return errors.refusal(str(unavailable), code="store_unavailable", status_code=status.HTTP_503_SERVICE_UNAVAILABLE)
        data = ScanSerializer(selectors.scan_for(request.user, scans[0].pk), context={"request": request}).data
        headers = {"Location": data["status_url"], **({"Idempotent-Replayed": "true"} if replayed else {})}
        return Response(data, status=status.HTTP_202_ACCEPTED, headers=headers)


class ScanDetail(ApiViewMixin, generics.RetrieveAPIView):
    """One scan: its status and, once done, the AI result with the model version that made it. Poll this after an upload."""

    serializer_class = ScanSerializer
    permission_required = {"GET": "diagnosis.view_scan"}

    def get_object(self):
        scan = get_object_or_404(selectors.scans_visible_to(self.request.user), pk=self.kwargs["scan_id"])
        scan = selectors.scan_for(self.request.user, scan.pk)
        audit(self.request, AuditEvent.Action.SCAN_VIEWED, patient=scan.patient, scan=scan, via="api")
        return scan


class ScanMove(ApiViewMixin, generics.GenericAPIView):
    """Move a wrongly filed scan to the patient it belongs to (both must be patients you may see);
    recorded in the audit trail with the patient it came from, the one it went to and the reason."""

    serializer_class = ScanMoveSerializer
    permission_required = {"GET": "diagnosis.add_scan", "POST": "diagnosis.add_scan"}

    @extend_schema(request=ScanMoveSerializer, responses={200: OpenApiResponse(ScanSerializer, description="The scan, now filed under `patient`.")})
    def post(self, request, *args, **kwargs):
        scan = get_object_or_404(selectors.scans_visible_to(request.user), pk=kwargs["scan_id"])
        move = ScanMoveSerializer(data=request.data)
        move.is_valid(raise_exception=True)
        to_patient = get_object_or_404(selectors.patients_visible_to(request.user), pk=move.validated_data["patient"])
        try:
            services.move_scan(actor=request.user, scan=scan, to_patient=to_patient, reason=move.validated_data["reason"], via="api",
                               ip_address=client_ip(request))
        except services.MoveRefused as refusal:
            return errors.refusal(str(refusal))
        return Response(ScanSerializer(selectors.scan_for(request.user, scan.pk), context={"request": request}).data)


@extend_schema(parameters=[WorklistFilterSerializer])
class Worklist(AuditedApiList, ApiViewMixin, generics.ListAPIView):
    """Every scan you may see in the worklist page's triage order: likely positive and unreviewed first, then newest."""

    serializer_class = WorklistScanSerializer
    permission_required = {"GET": "diagnosis.view_scan"}
    audit_action = AuditEvent.Action.WORKLIST_VIEWED

    def audit_details(self, shown):
        return {"filters": self.request.query_params.dict(), "scans": ids(shown)}

    def get_queryset(self):
        filters = WorklistFilterSerializer(data=self.request.query_params, context={"request": self.request})
        filters.is_valid(raise_exception=True)
        return selectors.worklist(self.request.user, **filters.validated_data)
