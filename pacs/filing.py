"""A person settles an instance the listener held as unmatched (pacs.receiving): files it to an
existing patient of its node's site, registers the patient from its header and files it there, or
dismisses it. Filing hands the kept file to diagnosis.scan_intake.submit_scans, the intake of the
upload page, the API and the listener, so every check holds (the header naming someone other than
the chosen patient needs a written reason, exactly as on the upload page) and the scan is analysed
as usual; its result goes back to the node like any film it sent.

Each instance is settled once: the first write claims the row with a conditional UPDATE (unmatched
to filed or dismissed) inside the transaction that makes the scan, so of two people (or a double
click) one files it and the other is told who did. A refusal rolls the claim back with everything else."""
import io

import pydicom
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.utils import timezone

from diagnosis import identity, scan_intake, services, storage
from diagnosis.models import AuditEvent
from diagnosis.services import record_audit
from ml.audit import written_reason
from ml.engine.decode.dicom import read_identity

from .models import ReceivedInstance


class FilingRefused(Exception):
    """A filing or dismissal we refuse; the message says why in one sentence."""


class AlreadySettled(FilingRefused):
    """Someone filed or dismissed the instance first (a double click, two people)."""


class IdentityRefused(FilingRefused):
    """The header names someone other than the chosen patient; the confirmation with a reason settles it."""


def settled_sentence(instance):
    """What became of an instance someone already settled."""
    who = instance.resolved_by.username if instance.resolved_by else "someone"
    when = f"{timezone.localtime(instance.resolved_at):%Y-%m-%d %H:%M}" if instance.resolved_at else ""
    if instance.outcome == ReceivedInstance.Outcome.FILED:
        patient = f" under {instance.scan.patient}" if instance.scan else ""
        return f"This image was already filed{patient} by {who} at {when}; nothing was changed."
    if instance.outcome == ReceivedInstance.Outcome.DISMISSED:
        return f"This image was already dismissed by {who} at {when}; nothing was changed."
    return "This image is not waiting to be filed; nothing was changed."


def _claim(actor, instance, outcome, reason):
    """Mark the instance settled if it is still unmatched (one UPDATE, so two at once cannot both)."""
    claimed = ReceivedInstance.objects.filter(pk=instance.pk, outcome=ReceivedInstance.Outcome.UNMATCHED).update(
        outcome=outcome, resolved_by=actor, resolved_at=timezone.now(), resolution_reason=reason)
    if not claimed:
        raise AlreadySettled(settled_sentence(ReceivedInstance.objects.select_related("resolved_by", "scan__patient").get(pk=instance.pk)))


def _details(instance, **more):
    return {"ae_title": instance.ae_title, "sop_instance_uid": instance.sop_instance_uid, "study_instance_uid": instance.study_instance_uid,
            "held_because": instance.reason, **{name: value for name, value in more.items() if value}}


def _delete_kept_file_on_commit(stored_name):
    """The held copy is no longer named once its row is settled; a store that does not answer
    leaves it to the sweep (diagnosis.stored_files), which now finds no row keeping it."""
    def delete():
        try:
            storage.delete(stored_name)
        except storage.StoreUnavailable:
            pass
    if stored_name:
        transaction.on_commit(delete)


def _kept_file(instance):
    try:
        return storage.read(instance.stored_name)
    except (FileNotFoundError, ValueError):
        raise FilingRefused("The image's file is no longer in the store, so it cannot be filed; ask the PACS to send the study again.")
    except storage.StoreUnavailable:
        raise FilingRefused(scan_intake.UPLOAD_NOT_STORED)


def _identity_refusal(data, patient, confirmed):
    header = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    differences = identity.mismatches(identity.header_patient_of_upload(read_identity(header)), patient)
    ask = "Write the reason for filing it under this patient anyway." if confirmed else (
        f"Choose the right patient, or confirm that it belongs to {patient.family_name.upper()}, {patient.given_name} and give a reason.")
    return IdentityRefused(f"{identity.mismatch_sentence(differences)} {ask}")


def _file(actor, instance, patient, confirm_identity_mismatch, reason, via, ip_address):
    """Inside the caller's transaction, once the instance is claimed: hand its file to the intake."""
    data = _kept_file(instance)
    upload = SimpleUploadedFile(f"{instance.sop_instance_uid}.dcm", data, content_type="application/dicom")
    try:
        (scan,) = scan_intake.submit_scans(actor=actor, patient=patient, uploaded_files=[upload], via=via, ip_address=ip_address,
                                           confirm_identity_mismatch=confirm_identity_mismatch, identity_mismatch_reason=reason)
    except scan_intake.IdentityMismatch:
        raise _identity_refusal(data, patient, confirm_identity_mismatch)
    except (scan_intake.ScanRejected, scan_intake.UploadNotStored) as refusal:
        raise FilingRefused(str(refusal))
    ReceivedInstance.objects.filter(pk=instance.pk).update(scan=scan, stored_name="")
    record_audit(actor, AuditEvent.Action.DICOM_FILED, patient=patient, scan=scan, via=via, ip_address=ip_address,
                 details=_details(instance, identity_mismatch_reason=scan.identity_mismatch_reason))
    _delete_kept_file_on_commit(instance.stored_name)
    return scan


def file_to_patient(*, actor, instance, patient, confirm_identity_mismatch=False, identity_mismatch_reason="", via="web", ip_address=None):
    """File the instance under `patient` (views find both through pacs.selectors, so they are ones
    the actor may see: None when the chosen patient is not; the site is checked again here).
    Returns the new scan."""
    if patient is None:
        raise FilingRefused("That patient is not one of this site's patients you can see; nothing was filed.")
    if instance.node is not None and patient.site_id != instance.node.site_id:
        raise FilingRefused(f"{patient} is not a patient of {instance.node.site}, the site of {instance.ae_title}; nothing was filed.")
    reason = written_reason(identity_mismatch_reason)
    with transaction.atomic():
        _claim(actor, instance, ReceivedInstance.Outcome.FILED, reason if confirm_identity_mismatch else "")
        return _file(actor, instance, patient, confirm_identity_mismatch, reason, via, ip_address)


def register_and_file(*, actor, instance, patient_details, confirm_identity_mismatch=False, identity_mismatch_reason="", via="web", ip_address=None):
    """Register the patient (`patient_details`: the PatientForm's fields, pre-filled from the
    header) at the node's site, and file the instance under them, all or nothing."""
    if instance.node is None:
        raise FilingRefused("The node that sent this image was removed, so its site is unknown; file it to an existing patient instead.")
    reason = written_reason(identity_mismatch_reason)
    try:
        with transaction.atomic():
            # Claimed first: a second click waits here and is told, rather than registering the patient twice.
            _claim(actor, instance, ReceivedInstance.Outcome.FILED, reason if confirm_identity_mismatch else "")
            patient = services.register_patient(actor=actor, site=instance.node.site, via=via, ip_address=ip_address, **patient_details)
            return _file(actor, instance, patient, confirm_identity_mismatch, reason, via, ip_address)
    except services.PatientRegistrationRefused as refusal:
        raise FilingRefused(str(refusal))


def dismiss(*, actor, instance, reason, via="web", ip_address=None):
    """Dismiss a film that does not belong in the portal: its file is deleted, its row stays
    (who, when, why), and a resend of it is acknowledged and not held again."""
    reason = written_reason(reason)
    if not reason:
        raise FilingRefused("Write why this image is dismissed; the reason is kept in the audit trail.")
    with transaction.atomic():
        _claim(actor, instance, ReceivedInstance.Outcome.DISMISSED, reason)
        ReceivedInstance.objects.filter(pk=instance.pk).update(stored_name="")
        record_audit(actor, AuditEvent.Action.DICOM_DISMISSED, via=via, ip_address=ip_address, details=_details(instance, reason=reason))
        _delete_kept_file_on_commit(instance.stored_name)
