"""The record of a site's going live or back to silent (diagnosis.site_going_live writes it), and the
job that measures a new version on a live site's blind-read films (diagnosis.site_remeasure), and the one
that checks a reduced precision on a silent site's films (diagnosis.site_precision)."""
from django.conf import settings
from django.db import models
from django.utils.timezone import localtime

from jobs.models import Job


class SiteModeDecision(models.Model):
    """An administrator put a site live, or back in its silent period. A decision to go live keeps
    the local validation report it was made on, the targets it missed and, when it missed any, the
    written reason for overriding them. Rows are only ever added; the site points at its newest."""

    site = models.ForeignKey("Site", on_delete=models.PROTECT, related_name="mode_decisions")
    mode = models.CharField(max_length=8)  # Site.Mode
    # The version whose blind reads were judged (going live); null going back to silent.
    version = models.ForeignKey("ml.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    report = models.JSONField(default=dict, blank=True)
    missed_targets = models.JSONField(default=list, blank=True)
    reason = models.TextField(blank=True, max_length=1000)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+")
    decided_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-decided_at", "-id"]

    def __str__(self):
        return f"{self.site} {self.mode} ({self.decided_at:%Y-%m-%d})"

    @property
    def overridden(self):
        return bool(self.missed_targets)

    @property
    def films(self):
        """How many blind-read films of the site the decision was made on."""
        return self.report.get("n_positive", 0) + self.report.get("n_negative", 0)

    @property
    def validated_on(self):
        """The line every result of a live site carries."""
        when = localtime(self.decided_at)
        version = self.version.label if self.version_id else "the model"
        return f"Validated on {self.films} films of this site ({version}, {when.day} {when:%b %Y})"


class SiteRemeasure(Job):
    """The job of running a candidate version on one live site's blind-read films, so that the site
    meets a new version on its own films before it sees its results (diagnosis.site_remeasure)."""

    task_name = "diagnosis.tasks.run_site_remeasure"
    queue = "training"  # loads a model and reads many films: never in the way of scan inference

    version = models.ForeignKey("ml.ModelVersion", on_delete=models.PROTECT, related_name="+")
    site = models.ForeignKey("Site", on_delete=models.PROTECT, related_name="remeasures")
    report = models.JSONField(null=True, blank=True)  # site_validation.report_on, with the candidate's probabilities
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]


class SitePrecisionCheck(Job):
    """The job of comparing a version's reduced-precision serving model (bf16 or int8) with its Keras
    fp32 reference on the films one site's model read in its silent period; a site whose check did
    not pass is served in fp32 (diagnosis.site_precision)."""

    task_name = "diagnosis.tasks.run_site_precision_check"
    queue = "training"  # loads two models and reads many films: never in the way of scan inference

    version = models.ForeignKey("ml.ModelVersion", on_delete=models.PROTECT, related_name="+")
    site = models.ForeignKey("Site", on_delete=models.PROTECT, related_name="precision_checks")
    precision = models.CharField(max_length=8, blank=True)  # the served variant's, as the worker loads it
    runtime = models.CharField(max_length=16, blank=True)
    n_films = models.PositiveIntegerField(null=True, blank=True)
    n_moved = models.PositiveIntegerField(null=True, blank=True)  # films whose probability moved by more than shifted.MOVED_BY
    moved_fraction = models.FloatField(null=True, blank=True)
    n_flipped = models.PositiveIntegerField(null=True, blank=True)  # labels changed at the version's stored threshold
    largest_move = models.FloatField(null=True, blank=True)
    passed = models.BooleanField(null=True, blank=True)
    reason = models.TextField(blank=True)  # the rule's sentence (shifted.judge_part)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
