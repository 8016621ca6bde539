"""The audit trail for administrators: filter it, page through it, export what the filters select
as CSV. Clinicians are refused (403): the trail shows every site's patients."""
import csv

from django.contrib.auth.decorators import permission_required
from django.core.paginator import Paginator
from django.http import StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone

from . import selectors
from .auditing import audit
from .forms import AuditFilterForm
from .models import AuditEvent

READ_TRAIL = "diagnosis.view_auditevent"
PAGE_SIZE = 100
CSV_COLUMNS = ["at", "user", "action", "patient_id", "medical_record_number", "site", "scan_id", "via", "ip_address", "details"]


def _filtered(request):
    form = AuditFilterForm(request.GET)
    filters = form.filters()
    return form, filters, (AuditEvent.objects.none() if filters is None else selectors.audit_trail(**filters))


@permission_required(READ_TRAIL, raise_exception=True)
def audit_trail(request):
    form, filters, events = _filtered(request)
    page = Paginator(events, PAGE_SIZE).get_page(request.GET.get("page"))
    # Reading the trail shows who looked at which patient: that read is in the trail too.
    audit(request, AuditEvent.Action.TRAIL_VIEWED, details={"filters": request.GET.dict(), "page": page.number})
    return render(request, "diagnosis/audit_trail.html", {"form": form, "page": page}, status=400 if form.errors else 200)


def _cell(value):
    """A spreadsheet runs a cell that starts with = + - @ as a formula; a patient's name must never do that."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _row(event):
    patient = event.patient
    return [
        event.at.isoformat(), event.actor.username if event.actor else "", event.action, event.patient_id or "",
        patient.medical_record_number if patient else "", patient.site.code if patient else "", event.scan_id or "",
        event.via, event.ip_address or "", event.details_text,
    ]


class _Echo:
    def write(self, value):
        return value


@permission_required(READ_TRAIL, raise_exception=True)
def audit_trail_export(request):
    """The rows the filters select, all of them, as CSV (streamed, so a long trail is not held in memory)."""
    form, filters, events = _filtered(request)
    if filters is None:
        return render(request, "diagnosis/audit_trail.html", {"form": form, "page": None}, status=400)
    # Exporting the trail copies patient data out of the portal: that is itself in the trail.
    audit(request, AuditEvent.Action.TRAIL_EXPORTED, details={"filters": request.GET.dict()})
    writer = csv.writer(_Echo())
    rows = (writer.writerow([_cell(value) for value in _row(event)]) for event in events.iterator(chunk_size=500))
    response = StreamingHttpResponse((line for chunk in ([writer.writerow(CSV_COLUMNS)], rows) for line in chunk), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="audit-trail-{timezone.now():%Y%m%d-%H%M%S}.csv"'
    return response
