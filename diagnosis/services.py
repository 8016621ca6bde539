"""Every write to the clinical domain goes through one function here."""
import hashlib
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from jobs import lifecycle
from ml.engine.dicom import chest_radiograph_refusal
from ml.engine.images import ImageDecodeError, decode_image_bytes

from . import selectors, storage
from .inference import analyse_scan, record_prediction  # noqa: F401  (the worker side of these services)
from .models import AuditEvent, Patient, Prediction, Review, Scan, UploadKey


class ScanRejected(Exception):
    """An upload we refuse; the message says why, in words for the person who sent it."""


@dataclass(frozen=True)
class ValidatedImage:
    data: bytes
    format: str
    width: int
    height: int


def record_audit(actor, action, *, patient=None, scan=None, via="web", ip_address=None):
    AuditEvent.objects.create(
        actor=actor if actor and actor.is_authenticated else None,
        action=action,
        patient=patient,
        scan=scan,
        via=via,
        ip_address=ip_address,
    )


class PatientRegistrationRefused(Exception):
    """A registration we refuse; the message says why in one sentence."""


class PatientAlreadyRegistered(PatientRegistrationRefused):
    pass


def register_patient(*, actor, medical_record_number, family_name, given_name, site=None, date_of_birth=None, sex=Patient.Sex.UNKNOWN, via="web"):
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
            record_audit(actor, AuditEvent.Action.PATIENT_CREATED, patient=patient, via=via)
    except IntegrityError as error:
        # The record number per site (ignoring case) is the only unique rule a new patient can break.
        raise PatientAlreadyRegistered(f"A patient with medical record number {medical_record_number} is already registered at {site}.") from error
    return patient


def validate_upload(uploaded_file, *, label=None):
    """Decode the whole image; its name and Content-Type prove nothing. `label` names the file
    in the message when several were sent."""
    prefix = f"{label}: " if label else ""
    if uploaded_file.size == 0:
        raise ScanRejected(f"{prefix}The file is empty.")
    limit = settings.SCAN_MAX_UPLOAD_BYTES
    if uploaded_file.size > limit:
        raise ScanRejected(f"{prefix}The file is {uploaded_file.size / 2**20:.1f} MB; the limit is {limit / 2**20:.0f} MB.")
    data = b"".join(uploaded_file.chunks())
    try:
        image = decode_image_bytes(data, max_pixels=settings.SCAN_MAX_PIXELS, min_side=settings.SCAN_MIN_SIDE)
    except ImageDecodeError as error:
        raise ScanRejected(f"{prefix}{error}") from error
    # The model reads chest radiographs only: a CT, an MR or another body part would get an answer it cannot give.
    refusal = image.identity and chest_radiograph_refusal(image.identity)
    if refusal:
        raise ScanRejected(f"{prefix}{refusal}")
    return ValidatedImage(data=data, format=image.format, width=image.width, height=image.height)


def submit_scans(*, actor, patient, uploaded_files, via="web"):
    """Accept one or many X-rays for a patient, all or none.

    Every file is decoded before anything is stored. The scan rows and audit rows are written in
    one transaction, and the inference tasks are sent only after it commits, so a worker never
    looks for a scan that is not there yet.
    """
    if not uploaded_files:
        raise ScanRejected("Choose at least one X-ray image to upload.")
    if len(uploaded_files) > settings.SCAN_MAX_FILES_PER_UPLOAD:
        raise ScanRejected(f"Upload at most {settings.SCAN_MAX_FILES_PER_UPLOAD} images at a time.")
    several = len(uploaded_files) > 1
    images = [
        validate_upload(upload, label=f"File {index} ({upload.name})" if several else None)
        for index, upload in enumerate(uploaded_files, start=1)
    ]
    stored_names = []
    try:
        with transaction.atomic():
            scans = []
            for image in images:
                stored_names.append(storage.write(image.data, image.format))
                scan = Scan.objects.create(
                    patient=patient,
                    uploaded_by=actor,
                    stored_name=stored_names[-1],
                    file_format=image.format,
                    width=image.width,
                    height=image.height,
                    size_bytes=len(image.data),
                    sha256=hashlib.sha256(image.data).hexdigest(),
                )
                record_audit(actor, AuditEvent.Action.SCAN_UPLOADED, patient=patient, scan=scan, via=via)
                scans.append(scan)
            lifecycle.enqueue_on_commit(*scans)
    except BaseException:
        for name in stored_names:
            storage.delete(name)
        raise
    return scans


def review_prediction(*, actor, prediction, agrees, note="", via="web"):
    """Record the clinician's review, or revise it: their earlier review of this prediction stays
    as history (superseded) and the new one is current. Returns (review, revised)."""
    with transaction.atomic():
        # Locking the prediction queues two reviews by the same clinician at once instead of racing.
        Prediction.objects.select_for_update().filter(pk=prediction.pk).first()
        revised = Review.objects.filter(prediction=prediction, reviewer=actor, superseded_at__isnull=True).update(superseded_at=timezone.now())
        review = Review.objects.create(prediction=prediction, reviewer=actor, agrees=agrees, note=note.strip())
        Scan.objects.filter(pk=prediction.scan_id, reviewed=False).update(reviewed=True)  # the worklist's review state
        record_audit(actor, AuditEvent.Action.PREDICTION_REVIEWED, patient=prediction.scan.patient, scan=prediction.scan, via=via)
    return review, bool(revised)


PATIENT_CORRECTABLE_FIELDS = ("family_name", "given_name", "date_of_birth", "sex", "medical_record_number")


def update_patient(*, actor, patient, via="web", **changes):
    """Correct a patient's names, date of birth, sex or record number; one audit row per change.
    The record number stays unique per site in any letter case (the database says so)."""
    unknown = set(changes) - set(PATIENT_CORRECTABLE_FIELDS)
    if unknown:
        raise PatientRegistrationRefused(f"These fields cannot be changed: {', '.join(sorted(unknown))}.")
    for name, value in changes.items():
        setattr(patient, name, value.strip() if isinstance(value, str) and name != "sex" else value)
    try:
        with transaction.atomic():
            patient.save(update_fields=list(changes) or None)
            record_audit(actor, AuditEvent.Action.PATIENT_UPDATED, patient=patient, via=via)
    except IntegrityError as error:
        raise PatientAlreadyRegistered(
            f"A patient with medical record number {patient.medical_record_number} is already registered at {patient.site}."
        ) from error
    return patient


class UploadKeyConflict(Exception):
    """An Idempotency-Key reused for a different request; the message says so."""


def _fingerprint(patient, uploaded_files):
    digest = hashlib.sha256(str(patient.pk).encode())
    for upload in uploaded_files:
        for chunk in upload.chunks():
            digest.update(chunk)
        upload.seek(0)
    return digest.hexdigest()


def submit_scans_once(*, actor, patient, uploaded_files, key, via="api"):
    """submit_scans with an Idempotency-Key: the first request with a key makes the scans; a retry
    with the same key, patient and files gets those scans back and creates nothing. Returns
    (scans, replayed). Raises UploadKeyConflict when the key was used for something else."""
    fingerprint = _fingerprint(patient, uploaded_files)
    try:
        with transaction.atomic():
            # The unique (user, key) row is written first, so of two identical requests at once
            # only one gets past here; the other waits for it and then finds its scans.
            upload_key = UploadKey.objects.create(user=actor, key=key, fingerprint=fingerprint)
            scans = submit_scans(actor=actor, patient=patient, uploaded_files=uploaded_files, via=via)
            upload_key.scans.set(scans)
            return scans, False
    except IntegrityError:
        pass
    earlier = UploadKey.objects.get(user=actor, key=key)
    if earlier.fingerprint != fingerprint:
        raise UploadKeyConflict("This Idempotency-Key was already used for a different upload; send a new key for a new upload.")
    return list(earlier.scans.order_by("uploaded_at", "pk")), True
