"""REST API for other hospital systems: token auth, same selectors and services as the pages."""
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from diagnosis import selectors, services
from diagnosis.models import AuditEvent

from . import errors
from .permissions import HasRolePermission
from .serializers import PatientSerializer, ScanSerializer, ScanUploadSerializer


class PatientList(generics.ListCreateAPIView):
    """List the patients you may see (search with ?q= by name or medical record number), or register one."""

    serializer_class = PatientSerializer
    permission_classes = [HasRolePermission]
    permission_required = {"GET": "diagnosis.view_patient", "POST": "diagnosis.add_patient"}

    def get_queryset(self):
        return selectors.search_patients(self.request.user, self.request.query_params.get("q", ""))

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            patient = services.register_patient(actor=request.user, via="api", **serializer.validated_data)
        except services.PatientRegistrationRefused as refusal:
            return errors.refusal(str(refusal))
        return Response(self.get_serializer(patient).data, status=status.HTTP_201_CREATED)


class PatientDetail(generics.RetrieveAPIView):
    serializer_class = PatientSerializer
    permission_classes = [HasRolePermission]
    permission_required = {"GET": "diagnosis.view_patient"}
    lookup_url_kwarg = "patient_id"

    def get_queryset(self):
        return selectors.patients_visible_to(self.request.user)

    def retrieve(self, request, *args, **kwargs):
        patient = self.get_object()
        services.record_audit(request.user, AuditEvent.Action.PATIENT_VIEWED, patient=patient, via="api", ip_address=request.META.get("REMOTE_ADDR"))
        return Response(self.get_serializer(patient).data)


class PatientScans(generics.ListCreateAPIView):
    """A patient's scans with their AI results, newest first; POST one image to submit a scan (202: analysis is asynchronous)."""

    serializer_class = ScanSerializer
    permission_classes = [HasRolePermission]
    permission_required = {"GET": "diagnosis.view_scan", "POST": "diagnosis.add_scan"}
    parser_classes = [MultiPartParser]

    def patient(self):
        return get_object_or_404(selectors.patients_visible_to(self.request.user), pk=self.kwargs["patient_id"])

    def get_queryset(self):
        return selectors.patient_history(self.patient())

    @extend_schema(request={"multipart/form-data": ScanUploadSerializer}, responses={202: ScanSerializer})
    def post(self, request, *args, **kwargs):
        patient = self.patient()
        upload = ScanUploadSerializer(data=request.data)
        upload.is_valid(raise_exception=True)
        try:
            (scan,) = services.submit_scans(actor=request.user, patient=patient, uploaded_files=[upload.validated_data["image"]], via="api")
        except services.ScanRejected as error:
            return errors.refusal(str(error))
        return Response(ScanSerializer(selectors.scan_for(request.user, scan.pk)).data, status=status.HTTP_202_ACCEPTED)


class ScanDetail(generics.RetrieveAPIView):
    """One scan: its status and, once done, the AI result with the model version that made it."""

    serializer_class = ScanSerializer
    permission_classes = [HasRolePermission]
    permission_required = {"GET": "diagnosis.view_scan"}

    def get_object(self):
        scan = get_object_or_404(selectors.scans_visible_to(self.request.user), pk=self.kwargs["scan_id"])
        return selectors.scan_for(self.request.user, scan.pk)
