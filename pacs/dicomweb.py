"""DICOMweb STOW-RS (`POST /dicomweb/studies`, PS3.18 10.5) for a PACS that pushes over HTTP.

The body is multipart/related; type="application/dicom", one DICOM file per part. Each part goes
through pacs.receiving like an instance C-STOREd to the listener, so every check holds (decode,
chest radiograph only, identity, once per SOPInstanceUID). The sender authenticates with an API
token; the token's user must be the `sender_account` of a DicomNode that may send, and that node
(its AE title, its site) is the sender, as the calling AE title is on an association."""
from email import policy
from email.parser import BytesParser

from django.contrib.auth.decorators import login_not_required
from django.urls import path
from drf_spectacular.utils import extend_schema
from knox.auth import TokenAuthentication
from rest_framework import exceptions, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from diagnosis.auditing import client_ip
from diagnosis.models import AuditEvent
from diagnosis.services import record_audit

from . import receiving
from .models import DicomNode

DICOM = "application/dicom"
# PS3.18 Table 10.5.3-1 and PS3.4 C.4.2.1.4; a refused part is "cannot understand" (0xC000).
STORED = receiving.SUCCESS


class DicomJsonRenderer(JSONRenderer):
    media_type = "application/dicom+json"


def _element(vr, *values):
    return {"vr": vr, "Value": list(values)} if values else {"vr": vr}


def _reference(sop_class, sop_instance, failure=None):
    item = {"00081150": _element("UI", sop_class), "00081155": _element("UI", sop_instance)} if sop_instance else {}
    if failure is not None:
        item["00081197"] = _element("US", failure)
    return item


def stow_response(outcomes):
    """The PS3.18 Store Instances Response and its HTTP status for [(class, instance, status)]:
    200 all stored, 202 some stored, 409 none stored."""
    stored = [_reference(cls, uid) for cls, uid, code in outcomes if code == STORED]
    failed = [_reference(cls, uid, code) for cls, uid, code in outcomes if code != STORED]
    body = {}
    if stored:
        body["00081199"] = _element("SQ", *stored)
    if failed:
        body["00081198"] = _element("SQ", *failed)
    http_status = status.HTTP_200_OK if not failed else status.HTTP_202_ACCEPTED if stored else status.HTTP_409_CONFLICT
    return body, http_status


def _uids(data):
    """(SOP Class UID, SOP Instance UID) of a part, empty where it cannot be read."""
    header, _ = receiving.read_header(data)
    if header is None:
        return "", ""
    return str(header.get("SOPClassUID", "")), str(header.get("SOPInstanceUID", ""))


def _message(content_type, body=b""):
    return BytesParser(policy=policy.HTTP).parsebytes(b"Content-Type: " + content_type.encode("latin-1", "replace") + b"\r\n\r\n" + body)


def check_media_type(content_type):
    """UnsupportedMediaType unless the request says multipart/related of DICOM files."""
    message = _message(content_type)
    if message.get_content_type() != "multipart/related" or message.get_param("type") not in (None, DICOM):
        raise exceptions.UnsupportedMediaType(content_type, f'Send multipart/related; type="{DICOM}", one DICOM file per part.')


def dicom_parts(content_type, body):
    """[(part content type, bytes)] of a multipart/related body; ParseError when it holds none."""
    message = _message(content_type, body)
    parts = [] if not message.is_multipart() else [(part.get_content_type(), part.get_payload(decode=True) or b"") for part in message.iter_parts()]
    if not parts:
        raise exceptions.ParseError("The multipart body holds no part (or no boundary): send one DICOM file per part.")
    return parts


class StoreInstances(APIView):
    """STOW-RS: store DICOM instances sent by a registered node over HTTP (docs/pacs.md)."""

    authentication_classes = [TokenAuthentication]
    permission_classes = [IsAuthenticated]
    renderer_classes = [DicomJsonRenderer, JSONRenderer]
    throttle_classes = []  # a PACS sends studies in bursts; the node's account is the gate

    def sender(self, request):
        node = DicomNode.objects.select_related("site").filter(sender_account=request.user).first()
        refusal = ("Your account is not the sender account of any DICOM node." if node is None else
                   None if node.may_send else "The node is registered but not allowed to send.")
        if refusal:
            record_audit(request.user, AuditEvent.Action.DICOM_REFUSED, via="dicomweb", ip_address=client_ip(request),
                         details={"ae_title": node.ae_title if node else "", "reason": refusal})
            raise exceptions.PermissionDenied(refusal)
        return node

    # Not in the OpenAPI document: a DICOM standard (PS3.18) with multipart DICOM bodies, documented in docs/pacs.md.
    @extend_schema(exclude=True)
    def post(self, request):
        node = self.sender(request)
        content_type = request.META.get("CONTENT_TYPE", "")
        check_media_type(content_type)
        parts = dicom_parts(content_type, request.stream.read() if request.stream else b"")
        peer_ip, outcomes = client_ip(request), []
        for part_type, data in parts:
            if part_type != DICOM:
                outcomes.append(("", "", receiving.refuse(node, f"A part of type {part_type}, not {DICOM}.", peer_ip, via="dicomweb")))
                continue
            outcomes.append((*_uids(data), receiving.receive(node, data, peer_ip=peer_ip, via="dicomweb")))
        body, http_status = stow_response(outcomes)
        return Response(body, status=http_status)


app_name = "dicomweb"
urlpatterns = [
    # Token authentication inside DRF: the site-wide login redirect must not apply.
    path("studies", login_not_required(StoreInstances.as_view()), name="stow"),
]
