"""The DICOM nodes the portal trusts, one row per instance they sent it, and one send per result going back to them."""
from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.utils import timezone

from diagnosis.models import Prediction, Scan, Site
from jobs.models import Job

# PS3.5 AE: 1-16 characters of the default repertoire, no backslash or control characters;
# leading and trailing spaces are not significant, so a title is stored without them.
ae_title_validator = RegexValidator(r"^[ -\[\]-~]{1,16}$", "An AE title is 1 to 16 printable characters without a backslash.")


class DicomNode(models.Model):
    """A PACS or modality registered by an administrator. Only a node with `may_send` may open an
    association with the listener, and only from its own host; the films it sends are filed under
    patients of its site."""

    ae_title = models.CharField("AE title", max_length=16, unique=True, validators=[ae_title_validator])
    host = models.CharField(max_length=253, help_text="The IP address or host name associations come from.")
    port = models.PositiveIntegerField(validators=[MinValueValidator(1), MaxValueValidator(65535)], help_text="Its own DICOM port (for results sent back).")
    dicomweb_url = models.URLField("DICOMweb base URL", blank=True)
    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="dicom_nodes", help_text="The site whose patients it sends.")
    may_send = models.BooleanField(default=True, help_text="Associations from it are accepted.")
    receives_results = models.BooleanField(default=False, help_text="Results go back to it.")
    # STOW-RS comes over HTTP with an API token, not an AE title: the token's user names the node.
    sender_account = models.OneToOneField(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="dicom_node",
                                          help_text="The account whose API token it uses to send over DICOMweb (STOW-RS).")
    serves_priors = models.BooleanField(default=False, help_text="The PACS the patient page asks for earlier films (C-FIND, C-MOVE).")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["ae_title"]
        verbose_name = "DICOM node"

    def save(self, *args, **kwargs):
        self.ae_title = self.ae_title.strip()
        super().save(*args, **kwargs)

    def __str__(self):
        return f"{self.ae_title} ({self.host}:{self.port})"


class ReceivedInstance(models.Model):
    """What became of one SOP instance a node sent: analysed (its scan), skipped (not a frontal
    chest radiograph; the reason) or unmatched (no patient, or a header that disagrees with the
    record; the file is kept for a person to file). A person then files an unmatched one (its scan,
    who, when, and the reason a disagreeing header was filed anyway) or dismisses it (who, when,
    why; its file is deleted): pacs.filing. One row per SOPInstanceUID, so a resend is
    acknowledged without a second scan."""

    class Outcome(models.TextChoices):
        ANALYSED = "analysed", "Analysed"
        SKIPPED = "skipped", "Skipped"
        UNMATCHED = "unmatched", "Unmatched"
        FILED = "filed", "Filed by a person"
        DISMISSED = "dismissed", "Dismissed by a person"

    sop_instance_uid = models.CharField("SOP Instance UID", max_length=64, unique=True)
    study_instance_uid = models.CharField("Study Instance UID", max_length=64, blank=True)
    node = models.ForeignKey(DicomNode, null=True, on_delete=models.SET_NULL, related_name="received")
    ae_title = models.CharField("sender's AE title", max_length=16)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, db_index=True)  # the unmatched count is asked on every page
    reason = models.TextField(blank=True)
    scan = models.OneToOneField(Scan, null=True, blank=True, on_delete=models.PROTECT, related_name="received_instance")
    stored_name = models.CharField(max_length=200, blank=True, help_text="An unmatched instance's file, waiting to be filed.")
    header_patient_id = models.CharField(max_length=64, blank=True)
    header_patient_name = models.CharField(max_length=200, blank=True)
    header_birth_date = models.DateField(null=True, blank=True)
    study_date = models.DateField(null=True, blank=True)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # Who filed or dismissed an unmatched instance, when, and why (a dismissal's reason, or the
    # reason a header that disagrees with the chosen patient was filed under them anyway).
    resolved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self):
        return f"{self.sop_instance_uid} from {self.ae_title}: {self.get_outcome_display()}"


class ResultSend(Job):
    """The job of sending one result (its Secondary Capture and SR) back to the node its film came
    from (pacs.sending). One per result and node, made in the transaction that records the result;
    its objects' UIDs are fixed here, so a retry makes the same instances and a PACS never holds two."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Waiting to send"
        RUNNING = "running", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Not sent"

    task_name = "pacs.tasks.send_result"
    # Their own queue and worker (`bin/portal pacs-worker`): a send never waits behind a batch of
    # scans, and the inference worker never spends its time building and storing DICOM objects.
    queue = "pacs"

    prediction = models.ForeignKey(Prediction, on_delete=models.PROTECT, related_name="pacs_sends")
    node = models.ForeignKey(DicomNode, null=True, on_delete=models.SET_NULL, related_name="result_sends")
    ae_title = models.CharField("node's AE title", max_length=16)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    series_instance_uid = models.CharField(max_length=64)
    sc_instance_uid = models.CharField("Secondary Capture's SOP Instance UID", max_length=64)
    sr_instance_uid = models.CharField("SR's SOP Instance UID", max_length=64)
    sc_sent_at = models.DateTimeField(null=True, blank=True)
    sr_sent_at = models.DateTimeField(null=True, blank=True)
    tries = models.PositiveIntegerField(default=0, help_text="Tries that found the node unreachable or busy.")
    next_try_at = models.DateTimeField(null=True, blank=True, help_text="Not sent again before this time (back-off).")
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["prediction", "node"], name="one_send_per_result_and_node")]

    @classmethod
    def due(cls):
        """Queued sends waiting out their back-off are not handed to the broker by the sweep."""
        return models.Q(next_try_at__isnull=True) | models.Q(next_try_at__lte=timezone.now())

    @property
    def sent_at(self):
        return self.finished_at if self.status == self.Status.SENT else None

    @property
    def status_sentence(self):
        """What the scan card and the API say about this send."""
        where = f"PACS {self.ae_title}"
        if self.status == self.Status.SENT:
            return f"Sent to {where} at {timezone.localtime(self.finished_at):%Y-%m-%d %H:%M:%S}."
        if self.status == self.Status.FAILED:
            return f"Failed to send to {where}: {self.failure_reason}"
        if self.status == self.Status.CANCELLED:
            return f"Not sent to {where}: {self.failure_reason}"
        if self.tries and self.status == self.Status.QUEUED:
            return f"Waiting to send to {where}: {self.last_error} Next try at {timezone.localtime(self.next_try_at):%H:%M:%S}."
        return f"Sending to {where}…"

    def __str__(self):
        return f"results of scan {self.prediction.scan_id} to {self.ae_title}: {self.get_status_display()}"
