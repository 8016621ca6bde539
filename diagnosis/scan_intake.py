"""Scan intake: the write path of an upload, from the bytes a clinician or another system sends to
the queued Scan rows. Every file is decoded completely and checked (diagnosis.services holds the
other clinical writes; portal/uploads.py is the upload handler that receives each file's bytes).

Three entry points, one per kind of caller: submit_scans (all or none: the API), submit_valid_scans
(keep the valid files, name each refused one: the upload page) and submit_scans_once (submit_scans
with an Idempotency-Key: the API's retries)."""
import hashlib
import logging
from dataclasses import dataclass, field, replace

from django.conf import settings
from django.db import IntegrityError, transaction

from jobs import lifecycle
from ml.audit import written_reason
from ml.engine import ImageDecodeError, chest_radiograph_refusal, decode_image_bytes

from . import identity, storage
from .models import AuditEvent, Scan, UploadKey
from .services import record_audit

logger = logging.getLogger(__name__)


class ScanRejected(Exception):
    """An upload we refuse; the message says why, in words for the person who sent it.
    `rejections` maps the position (from 1) of each refused file to its sentence; it is empty when
    the upload as a whole is refused (no file, too many). `mismatched` holds the positions refused
    for their header's identity alone, which a confirmation settles (the page then unfolds it)."""

    def __init__(self, message, rejections=None, mismatched=frozenset()):
        super().__init__(message)
        self.rejections = rejections or {}
        self.mismatched = set(mismatched)


class IdentityMismatch(ScanRejected):
    """A DICOM header names someone other than the chosen patient; the upload may be confirmed
    with a reason (pages show the confirmation with this refusal, the API documents its fields)."""


@dataclass(frozen=True)
class ValidatedImage:
    data: bytes
    format: str
    width: int
    height: int
    identity: object = None  # the DICOM header's DicomIdentity, None for PNG and JPEG
    original_name: str = ""
    pixels: object = None  # the decoded film (uint8, (H, W)), kept for the worker (storage.keep_decoded)
    confirmed_mismatch: dict = field(default_factory=dict)  # what differs and the uploader's reason, once confirmed


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
    return ValidatedImage(data=data, format=image.format, width=image.width, height=image.height, identity=image.identity,
                          original_name=uploaded_file.name, pixels=image.pixels)


def validate_uploads(uploaded_files, *, patient, confirm_identity_mismatch=False, identity_mismatch_reason=""):
    """Decode every file, not only up to the first bad one, and check that each DICOM header names
    the chosen patient. A header naming someone else refuses its file unless the uploader confirmed
    with a written reason; a confirmed file carries what differs, to be kept with its scan.

    Returns (images, rejections, mismatched): the valid images in the order sent; {position from 1:
    a sentence naming the file (by number and name when several were sent) and why} for each
    refused one; and the positions refused for their identity alone (the pages then offer the
    confirmation)."""
    several = len(uploaded_files) > 1
    reason = written_reason(identity_mismatch_reason)
    images, rejections, mismatched = [], {}, set()
    for position, upload in enumerate(uploaded_files, start=1):
        label = f"File {position} ({upload.name})" if several else None
        try:
            image = validate_upload(upload, label=label)
        except ScanRejected as refusal:
            rejections[position] = str(refusal)
            continue
        differences = identity.mismatches(identity.header_patient_of_upload(image.identity), patient)
        if differences and not (confirm_identity_mismatch and reason):
            mismatched.add(position)
            ask = "Write the reason for filing it under this patient anyway." if confirm_identity_mismatch else (
                f"Upload it for the right patient, or confirm that it belongs to {patient.family_name.upper()}, {patient.given_name} and give a reason."
            )
            rejections[position] = f"{label + ': ' if label else ''}{identity.mismatch_sentence(differences)} {ask}"
            continue
        mismatch = {"identity_mismatch": identity.mismatch_sentence(differences), "identity_mismatch_reason": reason} if differences else {}
        images.append(replace(image, confirmed_mismatch=mismatch))
    return images, rejections, mismatched


def _check_count(uploaded_files):
    if not uploaded_files:
        raise ScanRejected("Choose at least one X-ray image to upload.")
    if len(uploaded_files) > settings.SCAN_MAX_FILES_PER_UPLOAD:
        raise ScanRejected(f"Upload at most {settings.SCAN_MAX_FILES_PER_UPLOAD} images at a time.")


def submit_scans(*, actor, patient, uploaded_files, via="web", ip_address=None, **confirmation):
    """Accept one or many X-rays for a patient, all or none (the API: a retry resends them all).
    Every bad file is named in the refusal, not only the first; a refusal that is only about
    identity is an IdentityMismatch, which the uploader may confirm (`confirm_identity_mismatch`
    with `identity_mismatch_reason`, kept on the scan and in its audit row)."""
    _check_count(uploaded_files)
    images, rejections, mismatched = validate_uploads(uploaded_files, patient=patient, **confirmation)
    if rejections:
        refusal = IdentityMismatch if set(rejections) == mismatched else ScanRejected
        raise refusal(" ".join(rejections.values()), rejections)
    return _store_scans(actor=actor, patient=patient, images=images, via=via, ip_address=ip_address)


def submit_valid_scans(*, actor, patient, uploaded_files, via="web", ip_address=None, **confirmation):
    """The upload page: keep every valid file and name each refused one, so a clinician who sent
    ten images with one damaged file does not have to send the other nine again. Returns
    (scans, rejections, mismatched) as validate_uploads names them; raises ScanRejected (an
    IdentityMismatch when identity is all that is wrong) when no file is valid."""
    _check_count(uploaded_files)
    images, rejections, mismatched = validate_uploads(uploaded_files, patient=patient, **confirmation)
    if not images:
        raise (IdentityMismatch if set(rejections) == mismatched else ScanRejected)(" ".join(rejections.values()), rejections, mismatched)
    return _store_scans(actor=actor, patient=patient, images=images, via=via, ip_address=ip_address), rejections, mismatched


def _store_scans(*, actor, patient, images, via, ip_address):
    """Store validated images. The scan rows and audit rows are written in one transaction, and
    the inference tasks are sent only after it commits, so a worker never looks for a scan that
    is not there yet. Each film's decoded pixels wait beside it for the worker (storage.keep_decoded)."""
    stored_names = []
    try:
        with transaction.atomic():
            scans = []
            for image in images:
                stored_names.append(storage.write(image.data, image.format))
                storage.keep_decoded(stored_names[-1], image.pixels)
                scan = Scan.objects.create(
                    patient=patient,
                    uploaded_by=actor,
                    stored_name=stored_names[-1],
                    file_format=image.format,
                    width=image.width,
                    height=image.height,
                    size_bytes=len(image.data),
                    sha256=hashlib.sha256(image.data).hexdigest(),
                    **identity.scan_fields(image.identity, image.original_name),
                    **image.confirmed_mismatch,
                )
                record_audit(actor, AuditEvent.Action.SCAN_UPLOADED, patient=patient, scan=scan, via=via, ip_address=ip_address, details={
                    "file_format": scan.file_format, "size_bytes": scan.size_bytes, "sha256": scan.sha256, **image.confirmed_mismatch,
                })
                scans.append(scan)
            lifecycle.enqueue_on_commit(*scans)
    except storage.StoreUnavailable as error:
        _remove_stored(stored_names)
        logger.error("An upload for patient %s was not stored: %s", patient.pk, error)
        raise UploadNotStored(UPLOAD_NOT_STORED) from error
    except BaseException:
        _remove_stored(stored_names)
        raise
    return scans


UPLOAD_NOT_STORED = ("The image store did not answer, so nothing was uploaded and no scan was recorded; "
                     "send the images again in a minute. If this goes on, tell IT that the object store is down.")


class UploadNotStored(Exception):
    """The file store did not answer: nothing of the upload was kept (a 503 with a sentence)."""


def _remove_stored(stored_names):
    """The files of a rolled-back upload. A store that does not answer keeps them: without a scan
    row they are swept later (manage.py sweep_stored_files), never shown to anyone."""
    for name in stored_names:
        try:
            storage.delete(name)
        except storage.StoreUnavailable:
            logger.warning("%s stays in the store without a scan row until the sweep removes it.", name)
        storage.discard_decoded(name)


class UploadKeyConflict(Exception):
    """An Idempotency-Key reused for a different request; the message says so."""


def _fingerprint(patient, uploaded_files):
    digest = hashlib.sha256(str(patient.pk).encode())
    for upload in uploaded_files:
        for chunk in upload.chunks():
            digest.update(chunk)
        upload.seek(0)
    return digest.hexdigest()


def submit_scans_once(*, actor, patient, uploaded_files, key, via="api", ip_address=None, **confirmation):
    """submit_scans with an Idempotency-Key: the first request with a key makes the scans; a retry
    with the same key, patient and files gets those scans back and creates nothing. Returns
    (scans, replayed). Raises UploadKeyConflict when the key was used for something else."""
    fingerprint = _fingerprint(patient, uploaded_files)
    try:
        with transaction.atomic():
            # The unique (user, key) row is written first, so of two identical requests at once
            # only one gets past here; the other waits for it and then finds its scans.
            upload_key = UploadKey.objects.create(user=actor, key=key, fingerprint=fingerprint)
            scans = submit_scans(actor=actor, patient=patient, uploaded_files=uploaded_files, via=via, ip_address=ip_address, **confirmation)
            upload_key.scans.set(scans)
            return scans, False
    except IntegrityError:
        pass
    earlier = UploadKey.objects.get(user=actor, key=key)
    if earlier.fingerprint != fingerprint:
        raise UploadKeyConflict("This Idempotency-Key was already used for a different upload; send a new key for a new upload.")
    if earlier.scans.exclude(patient=patient).exists():
        # Replaying would hand back a scan filed under someone else now (perhaps at a site the
        # caller may not see): the upload was accepted, and its answer has changed since.
        raise UploadKeyConflict("The upload with this Idempotency-Key was accepted, but its scan has since been moved to another patient; "
                                "send a new key to upload it again.")
    return list(earlier.scans.order_by("uploaded_at", "pk")), True
