"""The clinical domain's models, one module per part; every model is importable from here
(`from diagnosis.models import Scan`), which is the way the rest of the code imports them."""
from .audit import AuditEvent
from .clinical import Patient, Prediction, Review, Scan, Site, StaffProfile, UploadKey
from .site_mode import SiteModeDecision, SitePrecisionCheck, SiteRemeasure
from .thresholds import SiteThreshold

__all__ = ["AuditEvent", "Patient", "Prediction", "Review", "Scan", "Site", "SiteModeDecision", "SitePrecisionCheck", "SiteRemeasure", "SiteThreshold", "StaffProfile", "UploadKey"]
