"""REST API for other hospital systems: token auth, same selectors and services as the pages."""
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import BasePermission
from rest_framework.response import Response

from diagnosis import roles, selectors, services
from diagnosis.models import AuditEvent, Site

from .serializers import PatientSerializer, ScanSerializer, ScanUploadSerializer


class IsClinicalStaff(BasePermission):
    message = "Your account has no clinical role."

    def has_permission(self, request, view):
        return roles.is_clinical_staff(request.user)


class PatientList(generics.ListCreateAPIView):
    """List the patients you may see (search with ?q= by name or medical record number), or register one."""

    serializer_class = PatientSerializer
    permission_classes = [IsClinicalStaff]

    def get_queryset(self):
        return selectors.search_patients(self.request.user, self.request.query_params.get("q", ""))

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        site_code = data.pop("site_code", None)
        if roles.is_administrator(self.request.user):
            if not site_code:
                raise ValidationError({"site_code": "Administrators must say which site the patient belongs to."})
            site = Site.objects.filter(code=site_code).first()
            if site is None:
                raise ValidationError({"site_code": f"No site has the code {site_code!r}."})
        else:
            site = roles.site_of(self.request.user)
            if site is None:
                raise PermissionDenied("Your account is not attached to a site; ask an administrator.")
        if selectors.patients_visible_to(self.request.user).filter(site=site, medical_record_number__iexact=data["medical_record_number"].strip()).exists():
            raise ValidationError({"medical_record_number": "A patient with this medical record number is already registered at this site."})
        serializer.instance = services.register_patient(actor=self.request.user, site=site, via="api", **data)


class PatientDetail(generics.RetrieveAPIView):
    serializer_class = PatientSerializer
    permission_classes = [IsClinicalStaff]
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
    permission_classes = [IsClinicalStaff]
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
            return Response({"error": str(error)}, status=status.HTTP_400_BAD_REQUEST)
        return Response(ScanSerializer(selectors.scan_for(request.user, scan.pk)).data, status=status.HTTP_202_ACCEPTED)


class ScanDetail(generics.RetrieveAPIView):
    """One scan: its status and, once done, the AI result with the model version that made it."""

    serializer_class = ScanSerializer
    permission_classes = [IsClinicalStaff]

    def get_object(self):
        scan = get_object_or_404(selectors.scans_visible_to(self.request.user), pk=self.kwargs["scan_id"])
        return selectors.scan_for(self.request.user, scan.pk)
