"""A model version's threshold and calibration re-fitted for one site (diagnosis.site_thresholds fits them)."""
from django.conf import settings
from django.db import models
from django.utils.timezone import localtime

from .clinical import Site


class SiteThreshold(models.Model):
    """A version's decision threshold, and its calibration, re-fitted for one site on that site's
    reviewed scans, kept with the figures the administrator saw before confirming. The newest row
    of a (version, site) pair is in force; rows are only ever added."""

    version = models.ForeignKey("ml.ModelVersion", on_delete=models.PROTECT, related_name="site_thresholds")
    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="thresholds")
    threshold = models.FloatField()
    # The temperature applied to the logit of the version's positive probability before the
    # threshold; null when calibration was not re-fitted (the fit did not help, or rows from before).
    temperature = models.FloatField(null=True, blank=True)
    figures = models.JSONField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.version.label} at {self.site.code}: threshold {self.threshold:.3f}"

    @property
    def n_reviewed(self):
        return self.figures.get("n_positive", 0) + self.figures.get("n_negative", 0)

    @property
    def description(self):
        """What made a result, in the words of its card, its report and the API."""
        fitted = "threshold and calibration" if self.temperature is not None else "threshold"
        when = localtime(self.created_at)
        return f"{fitted} fitted for {self.site.name} on {self.n_reviewed} reviewed scans ({when.day} {when:%b %Y})"
