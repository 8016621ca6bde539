"""Every write to the clinical domain goes through one function here."""
import hashlib
import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from ml.engine.images import ImageDecodeError, decode_image_bytes

from . import selectors, storage
from .models import AuditEvent, Patient, Prediction, Review, Scan

logger = logging.getLogger(__name__)


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
            scan_ids = [scan.pk for scan in scans]
            transaction.on_commit(lambda: enqueue_inference(scan_ids))
    except BaseException:
        for name in stored_names:
            storage.delete(name)
        raise
    return scans


def enqueue_inference(scan_ids):
    """Send each scan to the inference queue. If the broker is down the scan simply stays queued:
    the periodic sweep (requeue_stale_scans) sends it again, so nothing accepted is lost."""
    from .tasks import run_inference

    for scan_id in scan_ids:
        try:
            run_inference.delay(str(scan_id))
        except Exception:
            logger.warning("Broker unavailable; scan %s stays queued for the sweep", scan_id, exc_info=True)
            continue
        Scan.objects.filter(pk=scan_id).update(last_enqueued_at=timezone.now())


def requeue_stale_scans():
    """Re-send scans the broker may have lost: queued but never sent (or sent long ago), and
    processing far past any normal run (their worker died). Tasks are idempotent, so a duplicate is harmless."""
    now = timezone.now()
    never_sent = Scan.objects.filter(status=Scan.Status.QUEUED, last_enqueued_at__isnull=True, uploaded_at__lt=now - timedelta(seconds=10))
    sent_long_ago = Scan.objects.filter(status=Scan.Status.QUEUED, last_enqueued_at__lt=now - settings.SCAN_REQUEUE_AFTER)
    abandoned = Scan.objects.filter(status=Scan.Status.PROCESSING, started_at__lt=now - settings.SCAN_PROCESSING_TIMEOUT)
    scan_ids = list((never_sent | sent_long_ago | abandoned).values_list("pk", flat=True))
    enqueue_inference(scan_ids)
    return scan_ids


def start_processing(scan_id):
    """Claim a scan for a worker. Returns None when there is nothing to do (already finished,
    or gone), so a redelivered or duplicate task is harmless."""
    with transaction.atomic():
        scan = Scan.objects.select_for_update().filter(pk=scan_id).first()
        if scan is None or scan.status in {Scan.Status.DONE, Scan.Status.FAILED}:
            return None
        if scan.attempts >= settings.SCAN_MAX_ATTEMPTS:
            mark_scan_failed(scan, f"The analysis was interrupted {scan.attempts} times (the worker stopped); please upload the image again or contact IT.")
            return None
        scan.status = Scan.Status.PROCESSING
        scan.attempts += 1
        scan.started_at = timezone.now()
        scan.save(update_fields=["status", "attempts", "started_at"])
    return scan


def record_prediction(*, scan, model_version, result, heatmap_name, inference_ms):
    """Write the model's answer and finish the scan, in one transaction."""
    finished_at = timezone.now()
    try:
        with transaction.atomic():
            prediction = Prediction.objects.create(
                scan=scan,
                model_version=model_version,
                label=result["label"],
                probabilities=result["probabilities"],
                positive_probability=result["positive_probability"],
                threshold=result["threshold"],
                heatmap_name=heatmap_name,
                inference_ms=inference_ms,
                queue_to_result_ms=(finished_at - scan.uploaded_at).total_seconds() * 1000,
            )
            Scan.objects.filter(pk=scan.pk).update(status=Scan.Status.DONE, finished_at=finished_at, failure_reason="")
    except IntegrityError:
        # A duplicate delivery already recorded this version's answer; keep the first.
        if heatmap_name:
            storage.delete(heatmap_name)
        Scan.objects.filter(pk=scan.pk).update(status=Scan.Status.DONE)
        return Prediction.objects.get(scan=scan, model_version=model_version)
    return prediction


def mark_scan_failed(scan, reason):
    Scan.objects.filter(pk=scan.pk).update(status=Scan.Status.FAILED, failure_reason=reason, finished_at=timezone.now())


def review_prediction(*, actor, prediction, agrees, note="", via="web"):
    with transaction.atomic():
        review = Review.objects.create(prediction=prediction, reviewer=actor, agrees=agrees, note=note.strip())
        record_audit(actor, AuditEvent.Action.PREDICTION_REVIEWED, patient=prediction.scan.patient, scan=prediction.scan, via=via)
    return review
