"""The audit trail's writers, and the rule for reads of patient data.

Two helpers write rows, one per layer; nothing else creates an AuditEvent:
- `audit(request, action, ...)` here, for views (pages, the API, Django admin): what a user looked
  at, one row per action, with the actor and IP taken from the request.
- `services.record_audit(actor, action, ..., ip_address=None)`, for services: each write records
  its row inside its own transaction, so a refused write leaves no row. A service knows no request,
  so every service that records something a person did over the web or the API takes
  `ip_address=None` (a keyword) and hands it to record_audit, and every view or API view that calls
  it passes `ip_address=client_ip(request)`. Management commands and Celery tasks have no request
  and leave it None: a row without an address came from the command line or a worker. ml writes
  through it too, by the ML_AUDIT_RECORDER setting: ml.audit.record takes `ip_address` the same
  way, and client_ip is defined there because ml's views need it and ml may not import diagnosis.

The rule for images: a page (or a live-updated card) that shows a scan is the read, and it writes
the one row. The images and heatmaps it embeds carry that row's id (`?seen=<id>`), and a fetch
whose id names a row of the same user for the same patient, written within the session lifetime,
adds nothing: a browser loading a collapsed viewer, or reloading an image, is not a second look.
An image fetched without such an id (opened in a new tab, fetched by a script) is its own row."""
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from ml.audit import client_ip  # noqa: F401  (the one rule for the requester's address; ml's views need it too)

from . import services
from .models import AuditEvent
from .query_params import id_or_none

# The rows that show a scan's images on the page they render.
PAGE_READS = (AuditEvent.Action.PATIENT_VIEWED, AuditEvent.Action.SCAN_VIEWED, AuditEvent.Action.REPORT_VIEWED)


def audit(request, action, *, patient=None, scan=None, via="web", details=None):
    """One row for what the signed-in user of `request` did, from their address. Returns it."""
    return services.record_audit(request.user, action, patient=patient, scan=scan, via=via, ip_address=client_ip(request), details=details)


def seen_on_a_page(request, scan):
    """True when this image fetch belongs to a page view already in the trail (see the module)."""
    seen = id_or_none(request.GET.get("seen"))
    if seen is None:
        return False
    since = timezone.now() - timedelta(seconds=settings.SESSION_COOKIE_AGE)
    return AuditEvent.objects.filter(
        pk=seen, actor=request.user, patient_id=scan.patient_id, action__in=PAGE_READS, at__gte=since,
    ).exists()


def audit_image(request, action, scan):
    if not seen_on_a_page(request, scan):
        audit(request, action, patient=scan.patient, scan=scan)


def ids(objects):
    return [str(item.pk) for item in objects]


class AuditedApiList:
    """A DRF list view that writes one row per request, naming what the page of results showed.
    The view says which action (`audit_action`), and may name the patient (`audited_patient`) and
    more details (`audit_details`)."""

    audit_action = None

    def paginate_queryset(self, queryset):
        page = super().paginate_queryset(queryset)
        self.shown = list(queryset) if page is None else page
        return page

    def audited_patient(self):
        return None

    def audit_details(self, shown):
        return {}

    def list(self, request, *args, **kwargs):
        response = super().list(request, *args, **kwargs)
        details = {"page": request.query_params.get("page", "1"), **self.audit_details(self.shown)}
        audit(request, self.audit_action, patient=self.audited_patient(), via="api", details=details)
        return response
