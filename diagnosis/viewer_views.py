"""The DICOM viewer's two addresses: the original stored film for Cornerstone (WADO-URI style: the
file itself, application/dicom) and the scan viewer page, the film at full size with an earlier film
of the patient beside it. Same rules as the film image (diagnosis.scan_views.scan_image): the scan
must be one the user may see, nothing is cached, and a fetch is audited unless the page that embeds
it already was (diagnosis.auditing)."""
import uuid

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.http import HttpResponse
from django.shortcuts import render

from . import ai_visibility, selectors, viewer_files
from .auditing import audit, audit_image
from .models import AuditEvent
from .scan_views import scan_or_404, stored_or_404


@permission_required("diagnosis.view_scan", raise_exception=True)
def scan_dicom(request, scan_id):
    """The film as the viewer reads it: the stored DICOM as it came, or a PNG or JPEG upload's own
    pixels in a DICOM wrapper (diagnosis.viewer_files)."""
    scan = scan_or_404(request, scan_id)
    data = stored_or_404(scan, lambda: viewer_files.viewer_dicom(scan))
    audit_image(request, AuditEvent.Action.SCAN_IMAGE_VIEWED, scan)
    response = HttpResponse(data, content_type="application/dicom")
    response["Cache-Control"] = "private, no-store"
    response["Content-Disposition"] = f'inline; filename="scan-{scan.pk}.dcm"'
    return response


def _prior(request, scan, priors):
    """The earlier film asked for (?prior=<scan id>), or None; one that is not an earlier film of this
    patient that the user may see is said so, never shown."""
    asked = request.GET.get("prior", "")
    if not asked:
        return None
    try:
        wanted = uuid.UUID(asked)
    except ValueError:
        wanted = None
    prior = next((each for each in priors if each.pk == wanted), None)
    if prior is None:
        messages.error(request, "That is not an earlier film of this patient; the film is shown alone.")
    return prior


def _pane(user, scan, role):
    """One film of the page; its heatmap is layered over it only where its AI result may be shown."""
    shown = ai_visibility.ai_result_shown(user, scan)
    return {"scan": scan, "role": role, "prediction": scan.latest_prediction if shown else None}


@permission_required("diagnosis.view_scan", raise_exception=True)
def scan_viewer(request, scan_id):
    """The film in the viewer, and beside it, when asked, an earlier film of the patient: their
    zoom and pan move together, each with its AI result and reviews. One row per film shown."""
    scan = scan_or_404(request, scan_id)
    priors = selectors.taken_before(scan)
    prior = _prior(request, scan, priors)
    seen = audit(request, AuditEvent.Action.SCAN_VIEWED, patient=scan.patient, scan=scan,
                 details={"viewer": True, **({"beside": str(prior.pk)} if prior else {})})
    panes = [_pane(request.user, scan, "Current film")]
    if prior:
        audit(request, AuditEvent.Action.SCAN_VIEWED, patient=prior.patient, scan=prior, details={"viewer": True, "beside": str(scan.pk)})
        panes.append(_pane(request.user, prior, "Earlier film"))
    context = {"scan": scan, "patient": scan.patient, "priors": priors, "prior": prior, "panes": panes, "seen": seen}
    return render(request, "diagnosis/scan_viewer.html", context)
