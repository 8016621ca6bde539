"""Every write to the clinical domain goes through one function here, except an upload's: that
flow (validation, storage, idempotency) is diagnosis.scan_intake."""
from django.db import IntegrityError, transaction
from django.utils import timezone

from ml.audit import written_reason

from . import ai_visibility, selectors
from .audit_trail import changes_between, record_audit  # noqa: F401  (record_audit: the name other modules and ML_AUDIT_RECORDER use)
from .inference import analyse_scan, record_prediction  # noqa: F401  (the worker side of these services)
from .models import AuditEvent, Patient, Prediction, Review, Scan


PATIENT_CORRECTABLE_FIELDS = ("family_name", "given_name", "date_of_birth", "sex", "medical_record_number")


class PatientRegistrationRefused(Exception):
    """A registration we refuse; the message says why in one sentence."""


class PatientAlreadyRegistered(PatientRegistrationRefused):
    pass


def register_patient(*, actor, medical_record_number, family_name, given_name, site=None, date_of_birth=None, sex=Patient.Sex.UNKNOWN, via="web", ip_address=None):
    """Register a patient at the right site: a clinician at their own site whatever `site` says;
    someone who sees every site at the site they name. The database refuses a record number already
    used at that site in any letter case."""
    if actor.has_perm("diagnosis.view_every_site"):
        if site is None:
            raise PatientRegistrationRefused("Say which site the patient belongs to.")
    else:
        site = selectors.site_of(actor)
        if site is None:
            raise PatientRegistrationRefused("Your account is not attached to a site, so you cannot register patients. Ask an administrator.")
    medical_record_number = medical_record_number.strip()
    try:
        with transaction.atomic():
            patient = Patient.objects.create(
                site=site,
                medical_record_number=medical_record_number,
                family_name=family_name.strip(),
                given_name=given_name.strip(),
                date_of_birth=date_of_birth,
                sex=sex,
                created_by=actor,
            )
            fields = {name: getattr(patient, name) for name in PATIENT_CORRECTABLE_FIELDS}
            record_audit(actor, AuditEvent.Action.PATIENT_CREATED, patient=patient, via=via, ip_address=ip_address, details={"changes": changes_between({}, fields), "site": site.code})
    except IntegrityError as error:
        # The record number per site (ignoring case) is the only unique rule a new patient can break.
        raise PatientAlreadyRegistered(f"A patient with medical record number {medical_record_number} is already registered at {site}.") from error
    return patient


class ReviewRefused(Exception):
    """A review we refuse; the message says why in one sentence."""


def review_prediction(*, actor, prediction, agrees=None, finding=None, note="", via="web", ip_address=None):
    """Record the clinician's review (their finding, whether they agree with the AI, a note), or
    revise it: their earlier review of this prediction stays as history (superseded) and the new
    one is current. The pages and the API require a finding; None means "not recorded". Whether
    the reviewer could see the AI result is decided here, by the one rule (ai_visibility), and kept
    on the review: a blind read has a finding and no agreement. Returns (review, revised)."""
    ai_result_visible = ai_visibility.ai_result_shown(actor, prediction.scan)
    if ai_result_visible and agrees is None:
        raise ReviewRefused("Say whether you agree with the AI result.")
    if not ai_result_visible and agrees is not None:
        raise ReviewRefused(f"{ai_visibility.withheld_sentence(prediction.scan.patient.site)} Give your finding only, without agreeing or disagreeing.")
    with transaction.atomic():
        # Locking the prediction queues two reviews by the same clinician at once instead of racing.
        Prediction.objects.select_for_update().filter(pk=prediction.pk).first()
        current = Review.objects.filter(prediction=prediction, reviewer=actor, superseded_at__isnull=True)
        before = current.values("finding", "agrees", "note").first() or {}
        revised = current.update(superseded_at=timezone.now())
        review = Review.objects.create(prediction=prediction, reviewer=actor, finding=finding, agrees=agrees, note=note.strip(),
                                       ai_result_visible=ai_result_visible)
        Scan.objects.filter(pk=prediction.scan_id, reviewed=False).update(reviewed=True)  # the worklist's review state
        after = {"finding": review.finding, "agrees": review.agrees, "note": review.note}
        details = {"prediction": prediction.pk, "revised": bool(revised), "changes": changes_between(before, after), "blind": not ai_result_visible}
        record_audit(actor, AuditEvent.Action.PREDICTION_REVIEWED, patient=prediction.scan.patient, scan=prediction.scan, via=via, ip_address=ip_address, details=details)
    return review, bool(revised)


def update_patient(*, actor, patient, via="web", ip_address=None, **changes):
    """Correct a patient's names, date of birth, sex or record number; one audit row per correction,
    with each changed field's old and new value. The record number stays unique per site in any
    letter case (the database says so)."""
    unknown = set(changes) - set(PATIENT_CORRECTABLE_FIELDS)
    if unknown:
        raise PatientRegistrationRefused(f"These fields cannot be changed: {', '.join(sorted(unknown))}.")
    before = {name: getattr(patient, name) for name in changes}
    for name, value in changes.items():
        setattr(patient, name, value.strip() if isinstance(value, str) and name != "sex" else value)
    changed = changes_between(before, {name: getattr(patient, name) for name in changes})
    if not changed:  # an empty PATCH, or one repeating the record: nothing was corrected, so no row
        return patient
    try:
        with transaction.atomic():
            patient.save(update_fields=list(changed))
            record_audit(actor, AuditEvent.Action.PATIENT_UPDATED, patient=patient, via=via, ip_address=ip_address, details={"changes": changed})
    except IntegrityError as error:
        raise PatientAlreadyRegistered(
            f"A patient with medical record number {patient.medical_record_number} is already registered at {patient.site}."
        ) from error
    return patient


class MoveRefused(Exception):
    """A move of a scan we refuse; the message says why in one sentence."""


def move_scan(*, actor, scan, to_patient, reason, via="web", ip_address=None):
    """File a scan under the right patient. Both must be ones the actor may see (views look them up
    through the selectors, so another site's ids are a 404 before this is reached; checked again
    here because a service must not trust its caller). One audit row, with from, to and why."""
    reason = written_reason(reason)
    if not reason:
        raise MoveRefused("Write why the scan is being moved; the reason is kept in the audit trail.")
    visible = selectors.patients_visible_to(actor)
    if not visible.filter(pk=scan.patient_id).exists() or not visible.filter(pk=to_patient.pk).exists():
        raise MoveRefused("You may only move scans between patients you can see.")
    if to_patient.pk == scan.patient_id:
        raise MoveRefused(f"The scan is already filed under {to_patient}.")
    with transaction.atomic():
        scan = Scan.objects.select_for_update().select_related("patient").get(pk=scan.pk)
        from_patient = scan.patient
        scan.patient = to_patient
        scan.save(update_fields=["patient"])
        details = {
            "from_patient": str(from_patient.pk), "from": str(from_patient),
            "to_patient": str(to_patient.pk), "to": str(to_patient), "reason": reason[:500],
        }
        record_audit(actor, AuditEvent.Action.SCAN_MOVED, patient=to_patient, scan=scan, via=via, ip_address=ip_address, details=details)
    return scan
