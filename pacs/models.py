"""The DICOM nodes the portal trusts, and one row per instance they sent it."""
from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

from diagnosis.models import Scan, Site

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
    record; the file is kept for a person to file). One row per SOPInstanceUID, so a resend is
    acknowledged without a second scan."""

    class Outcome(models.TextChoices):
        ANALYSED = "analysed", "Analysed"
        SKIPPED = "skipped", "Skipped"
        UNMATCHED = "unmatched", "Unmatched"

    sop_instance_uid = models.CharField("SOP Instance UID", max_length=64, unique=True)
    study_instance_uid = models.CharField("Study Instance UID", max_length=64, blank=True)
    node = models.ForeignKey(DicomNode, null=True, on_delete=models.SET_NULL, related_name="received")
    ae_title = models.CharField("sender's AE title", max_length=16)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    reason = models.TextField(blank=True)
    scan = models.OneToOneField(Scan, null=True, blank=True, on_delete=models.PROTECT, related_name="received_instance")
    stored_name = models.CharField(max_length=200, blank=True, help_text="An unmatched instance's file, waiting to be filed.")
    header_patient_id = models.CharField(max_length=64, blank=True)
    header_patient_name = models.CharField(max_length=200, blank=True)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self):
        return f"{self.sop_instance_uid} from {self.ae_title}: {self.get_outcome_display()}"
