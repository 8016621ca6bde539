"""What the listener does with one instance a node sent: route it, match its patient, and hand it to
the intake every upload uses (diagnosis.scan_intake), so the same checks hold. Returns the DIMSE
status for the sender; success only once the rows are committed.

Matching (docs/pacs.md): the patient is the one of the node's site whose medical record number is
the header's PatientID (ignoring letter case). An unknown PatientID, or a header whose name or birth
date disagrees with that record, is never filed by guess: the instance is kept as "unmatched", its
file stored, for a person to file or to register the patient (pacs.filing, the "Unmatched DICOM" page)."""
import io
import logging

import pydicom
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import IntegrityError, transaction
from pydicom.errors import InvalidDicomError

from diagnosis import identity, scan_intake, storage
from diagnosis.models import AuditEvent, Patient
from diagnosis.services import record_audit
from ml.engine.decode.dicom import read_identity
from portal import metrics

from . import routing
from .models import ReceivedInstance

logger = logging.getLogger(__name__)

SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700  # PS3.4 C.4.2.1.4: storing failed here; the sender should retry later
CANNOT_UNDERSTAND = 0xC000  # the dataset itself is refused; a retry of the same bytes will not help


def _audit(node, peer_ip, outcome, header_uids, reason="", patient=None, scan=None, via="dicom"):
    metrics.dicom_instance_received(outcome)  # every instance ends in exactly one of these audit rows
    record_audit(None, AuditEvent.Action.DICOM_RECEIVED, patient=patient, scan=scan, via=via, ip_address=peer_ip,
                 details={"ae_title": node.ae_title, **header_uids, "outcome": outcome, **({"reason": reason} if reason else {})})


def read_header(data):
    """(header, SOPInstanceUID) of an encoded instance; (None, why) when it is not readable DICOM."""
    try:
        header = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
        return header, str(header.SOPInstanceUID)
    except (InvalidDicomError, AttributeError, ValueError, TypeError, EOFError, OSError) as error:
        return None, f"The data is not a readable DICOM dataset ({type(error).__name__})."


def _match(node, ident):
    """(patient, None) when the header's PatientID (`ident`, its DicomIdentity) is a record of the
    node's site and nothing in the header disagrees with it; (None, why) otherwise."""
    patient_id = ident.patient_id.strip()
    if not patient_id:
        return None, "The header has no PatientID."
    patient = Patient.objects.filter(site=node.site, medical_record_number__iexact=patient_id).first()
    if patient is None:
        return None, f"No patient with record number {patient_id} at {node.site}."
    differences = identity.mismatches(identity.header_patient_of_upload(ident), patient)
    if differences:
        return None, identity.mismatch_sentence(differences)
    return patient, None


def _instance(node, ident, uids, outcome, reason=""):
    return ReceivedInstance.objects.create(node=node, ae_title=node.ae_title, outcome=outcome, reason=reason,
                                           header_patient_id=ident.patient_id[:64], header_patient_name=ident.patient_name[:200],
                                           header_birth_date=identity.header_date(ident.patient_birth_date),
                                           study_date=identity.header_date(ident.study_date), **uids)


def refuse(node, reason, peer_ip=None, via="dicom"):
    """Record an instance refused before it could be read (a STOW-RS part that is not DICOM)."""
    _audit(node, peer_ip, "refused", {}, reason, via=via)
    return CANNOT_UNDERSTAND


def receive(node, data, peer_ip=None, via="dicom"):
    """The DIMSE status for one instance a node sent (`data`: the encoded dataset with its file
    meta, as C-STORE and STOW-RS both deliver it); `via` says which ("dicom" or "dicomweb")."""
    header, sop_uid_or_reason = read_header(data)
    if header is None:
        return refuse(node, sop_uid_or_reason, peer_ip, via)
    uids = {"sop_instance_uid": sop_uid_or_reason[:64], "study_instance_uid": str(header.get("StudyInstanceUID", ""))[:64]}
    earlier = ReceivedInstance.objects.filter(sop_instance_uid=uids["sop_instance_uid"]).first()
    if earlier is not None:  # PACS resend whenever in doubt: acknowledge, make nothing new
        _audit(node, peer_ip, "duplicate", uids, f"Already received ({earlier.get_outcome_display().lower()}).", scan=earlier.scan, via=via)
        return SUCCESS
    try:
        return _file(node, header, data, uids, peer_ip, via)
    except scan_intake.ScanRejected as refusal:
        _audit(node, peer_ip, "refused", uids, str(refusal), via=via)
        return CANNOT_UNDERSTAND
    except IntegrityError:  # the same instance on two associations at once: the other one filed it
        _audit(node, peer_ip, "duplicate", uids, "Received on another association at the same time.", via=via)
        return SUCCESS
    except Exception:
        logger.exception("Storing instance %s from %s failed", uids["sop_instance_uid"], node.ae_title)
        return OUT_OF_RESOURCES


def _file(node, header, data, uids, peer_ip, via):
    reason = routing.skip_reason(header)
    ident = read_identity(header)
    if reason:
        with transaction.atomic():
            _instance(node, ident, uids, ReceivedInstance.Outcome.SKIPPED, reason)
            _audit(node, peer_ip, "skipped", uids, reason, via=via)
        return SUCCESS
    upload = SimpleUploadedFile(f"{uids['sop_instance_uid']}.dcm", data, content_type="application/dicom")
    patient, reason = _match(node, ident)
    if patient is None:
        image = scan_intake.validate_upload(upload)  # decoded like any upload: a broken file is refused, not kept
        stored_name = storage.write(image.data, image.format)
        try:
            with transaction.atomic():
                received = _instance(node, ident, uids, ReceivedInstance.Outcome.UNMATCHED, reason)
                received.stored_name = stored_name
                received.save(update_fields=["stored_name"])
                _audit(node, peer_ip, "unmatched", uids, reason, via=via)
        except BaseException:
            storage.delete(stored_name)
            raise
        return SUCCESS
    with transaction.atomic():
        received = _instance(node, ident, uids, ReceivedInstance.Outcome.ANALYSED)
        (scan,) = scan_intake.submit_scans(actor=None, patient=patient, uploaded_files=[upload], via=via, ip_address=peer_ip)
        received.scan = scan
        received.save(update_fields=["scan"])
        _audit(node, peer_ip, "analysed", uids, patient=patient, scan=scan, via=via)
    return SUCCESS
