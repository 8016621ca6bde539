"""The one audit trail (diagnosis.audit_trail and diagnosis.auditing write it)."""
import json

from django.conf import settings
from django.db import models

from .clinical import Patient, Scan


class AuditEvent(models.Model):
    """The one audit trail: who saw or changed what, to which patient's data, and every change to
    models, training, accounts and sign-ins. Rows are only ever added (services.record_audit).

    One user action is one row: a page that shows a patient's images is the read, and the images it
    embeds are fetched with that row's id (`?seen=`) and add nothing (see diagnosis.auditing)."""

    class Action(models.TextChoices):
        PATIENT_CREATED = "patient.created", "Patient registered"
        PATIENT_LISTED = "patient.listed", "Patient list or search viewed"
        PATIENT_VIEWED = "patient.viewed", "Patient record viewed"
        PATIENT_UPDATED = "patient.updated", "Patient record corrected"
        SCAN_UPLOADED = "scan.uploaded", "Scan uploaded"
        SCAN_LISTED = "scan.listed", "Patient's scans listed"
        SCAN_VIEWED = "scan.viewed", "Scan and result viewed"
        SCAN_IMAGE_VIEWED = "scan.image_viewed", "Scan image viewed"
        HEATMAP_VIEWED = "scan.heatmap_viewed", "Heatmap viewed"
        WORKLIST_VIEWED = "worklist.viewed", "Worklist viewed"
        PREDICTION_VIEWED = "prediction.viewed", "AI result viewed"
        PREDICTION_REVIEWED = "prediction.reviewed", "Prediction reviewed"
        SCAN_MOVED = "scan.moved", "Scan moved to another patient"
        REVIEWS_LISTED = "review.listed", "Reviews of a result listed"
        MODEL_PROMOTED = "model.promoted", "Model version promoted"
        MODEL_DERIVATION_STARTED = "model.derivation_started", "Reduced-precision derivation requested"
        MODEL_DERIVED = "model.derived", "Reduced-precision model version derived"
        MODEL_DERIVATION_REFUSED = "model.derivation_refused", "Reduced-precision model version refused"
        TRAINING_STARTED = "training.started", "Training job started"
        TRAINING_CANCELLED = "training.cancelled", "Training job cancelled"
        EVALUATION_STARTED = "evaluation.started", "Evaluation run started"
        USER_CREATED = "user.created", "User created"
        USER_CHANGED = "user.changed", "User's role, site or access changed"
        USER_PASSWORD_LINK = "user.password_link", "Set-password link issued"
        ROLE_CHANGED = "user.role_changed", "User's role changed"
        PASSWORD_CHANGED = "user.password_changed", "Password changed"
        PASSWORD_SET_BY_LINK = "user.password_set_by_link", "Password set through a one-time link"
        SIGNED_IN = "signin.succeeded", "Signed in"
        SIGNIN_FAILED = "signin.failed", "Sign-in refused (wrong username or password)"
        SIGNED_OUT = "signin.signed_out", "Signed out"
        TRAIL_VIEWED = "audit.viewed", "Audit trail viewed"
        TOKEN_CREATED = "token.created", "API token created"
        TOKEN_REVOKED = "token.revoked", "API token revoked"
        SIGNIN_LOCKED_OUT = "signin.locked_out", "Sign-in locked out"
        SIGNIN_UNLOCKED = "signin.unlocked", "Sign-in unlocked by an administrator"
        TRAIL_EXPORTED = "audit.exported", "Audit trail exported"
        REPORT_VIEWED = "scan.report_viewed", "Scan report viewed"
        SITE_THRESHOLD_SET = "site.threshold_set", "Site threshold fitted"
        SITE_MODE_CHANGED = "site.mode_changed", "Site switched live or back to silent"
        SITE_REMEASURE_STARTED = "site.remeasure_started", "Version re-measured on live sites' blind reads"
        SITE_PRECISION_CHECK_STARTED = "site.precision_check_started", "Reduced precision checked on silent sites' films"
        DICOM_RECEIVED = "dicom.received", "DICOM instance received from a node"
        DICOM_REFUSED = "dicom.refused", "DICOM association refused"
        DICOM_NODE_CHANGED = "dicom.node_changed", "DICOM node registered, changed or removed"
        DICOM_SENT = "dicom.sent", "Result sent to a DICOM node"
        DICOM_QUERIED = "dicom.queried", "PACS queried for a patient's studies"
        DICOM_RETRIEVED = "dicom.retrieved", "Study retrieved from a PACS"
        DICOM_UNMATCHED_VIEWED = "dicom.unmatched_viewed", "Unmatched DICOM instances viewed"
        DICOM_FILED = "dicom.filed", "Unmatched DICOM instance filed to a patient"
        DICOM_DISMISSED = "dicom.dismissed", "Unmatched DICOM instance dismissed"

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    action = models.CharField(max_length=32, choices=Action.choices, db_index=True)
    patient = models.ForeignKey(Patient, null=True, on_delete=models.PROTECT, related_name="+")
    scan = models.ForeignKey(Scan, null=True, on_delete=models.PROTECT, related_name="+")
    via = models.CharField(max_length=8, default="web")
    ip_address = models.GenericIPAddressField(null=True)
    # What changed on a write ({"changes": {field: [old, new]}}; a moved scan's from and to patient),
    # what was confirmed (a mismatch's reason), or what a read showed (a search's query and the
    # patients listed, a version promoted, the user whose role changed).
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]

    @property
    def details_text(self):
        """The details as JSON text, as the trail page and its CSV export show them."""
        return json.dumps(self.details, ensure_ascii=False) if self.details else ""
