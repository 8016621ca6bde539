"""`/api/v1/unmatched-instances/`: the instances the listener held as unmatched, under the rules of
the "Unmatched DICOM" page (pacs.selectors decides who sees which, pacs.filing writes): list them,
file one to a patient, register its patient and file it, or dismiss it."""
from django.core.exceptions import ObjectDoesNotExist
from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response

from diagnosis import selectors as diagnosis_selectors
from diagnosis.api import errors
from diagnosis.api.base import ApiViewMixin
from diagnosis.api.schema import ErrorSerializer
from diagnosis.api.serializers import PatientUpdateSerializer, ScanSerializer
from diagnosis.auditing import AuditedApiList, client_ip, ids
from diagnosis.models import AuditEvent

from . import filing, selectors
from .models import ReceivedInstance

PERMISSIONS = {"GET": "diagnosis.add_scan", "POST": "diagnosis.add_scan"}


class UnmatchedInstanceSerializer(serializers.ModelSerializer):
    site = serializers.CharField(source="node.site.code", default=None, read_only=True, help_text="The code of the node's site; null when the node was removed.")
    held_because = serializers.CharField(source="reason", read_only=True)

    class Meta:
        model = ReceivedInstance
        fields = ["id", "received_at", "ae_title", "site", "header_patient_id", "header_patient_name", "header_birth_date", "study_date",
                  "held_because", "sop_instance_uid", "study_instance_uid", "outcome", "resolved_at", "resolution_reason"]
        read_only_fields = fields


class IdentityConfirmation(serializers.Serializer):
    confirm_identity_mismatch = serializers.BooleanField(default=False, help_text="File it although its header names someone other than the patient.")
    identity_mismatch_reason = serializers.CharField(max_length=500, required=False, default="", allow_blank=True,
                                                     help_text="Why; required with `confirm_identity_mismatch`, kept on the scan and in the audit trail.")


class FileSerializer(IdentityConfirmation):
    patient = serializers.UUIDField(help_text="The id of a patient of the node's site that you may see.")


class RegisterSerializer(PatientUpdateSerializer):
    confirm_identity_mismatch = serializers.BooleanField(default=False)
    identity_mismatch_reason = serializers.CharField(max_length=500, required=False, default="", allow_blank=True)

    class Meta(PatientUpdateSerializer.Meta):
        fields = PatientUpdateSerializer.Meta.fields + ["confirm_identity_mismatch", "identity_mismatch_reason"]


class DismissSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500, help_text="Why it does not belong in the portal; kept in the audit trail.")


class UnmatchedInstanceList(AuditedApiList, ApiViewMixin, generics.ListAPIView):
    """The unmatched instances you may file (those of your site's nodes; administrators: every site), oldest first."""

    serializer_class = UnmatchedInstanceSerializer
    permission_required = PERMISSIONS
    audit_action = AuditEvent.Action.DICOM_UNMATCHED_VIEWED

    def get_queryset(self):
        return selectors.unmatched_visible_to(self.request.user)

    def audit_details(self, shown):
        return {"instances": ids(shown)}


SETTLED = {
    201: OpenApiResponse(ScanSerializer, description="The scan made from the instance, queued for analysis."),
    409: OpenApiResponse(ErrorSerializer, description="Someone already filed or dismissed it (`already_settled`); nothing was changed."),
}


class Settle(ApiViewMixin, generics.GenericAPIView):
    """A POST that settles one unmatched instance through pacs.filing."""

    permission_required = PERMISSIONS

    def instance(self):
        try:
            return selectors.received_instance_for(self.request.user, self.kwargs["instance_id"])
        except ObjectDoesNotExist:
            raise Http404

    def settle(self, write):
        instance = self.instance()
        given = self.get_serializer(data=self.request.data)
        given.is_valid(raise_exception=True)
        try:
            outcome = write(instance, dict(given.validated_data))
        except filing.AlreadySettled as refusal:
            return errors.refusal(str(refusal), code="already_settled", status_code=status.HTTP_409_CONFLICT)
        except filing.FilingRefused as refusal:
            return errors.refusal(str(refusal))
        if outcome is None:
            instance.refresh_from_db()
            return Response(UnmatchedInstanceSerializer(instance).data)
        scan = diagnosis_selectors.scan_for(self.request.user, outcome.pk)
        return Response(ScanSerializer(scan, context={"request": self.request}).data, status=status.HTTP_201_CREATED)


class FileInstance(Settle):
    """File the instance under a patient of its node's site (a header that disagrees needs the confirmation and a reason)."""

    serializer_class = FileSerializer

    @extend_schema(responses=SETTLED)
    def post(self, request, *args, **kwargs):
        def write(instance, data):
            patient = selectors.patient_to_file_to(request.user, instance, data.pop("patient"))
            return filing.file_to_patient(actor=request.user, instance=instance, patient=patient, via="api", ip_address=client_ip(request), **data)

        return self.settle(write)


class RegisterAndFile(Settle):
    """Register the patient at the node's site (the header's details, as corrected) and file the instance under them."""

    serializer_class = RegisterSerializer
    permission_required = {"GET": "diagnosis.add_patient", "POST": "diagnosis.add_patient"}

    @extend_schema(responses=SETTLED)
    def post(self, request, *args, **kwargs):
        def write(instance, data):
            confirmation = {name: data.pop(name) for name in ("confirm_identity_mismatch", "identity_mismatch_reason")}
            return filing.register_and_file(actor=request.user, instance=instance, patient_details=data, via="api", ip_address=client_ip(request), **confirmation)

        return self.settle(write)


class DismissInstance(Settle):
    """Dismiss an instance that does not belong in the portal: its file is deleted, who, when and why are kept."""

    serializer_class = DismissSerializer

    @extend_schema(responses={200: UnmatchedInstanceSerializer, 409: SETTLED[409]})
    def post(self, request, *args, **kwargs):
        def write(instance, data):
            filing.dismiss(actor=request.user, instance=instance, reason=data["reason"], via="api", ip_address=client_ip(request))

        return self.settle(write)
