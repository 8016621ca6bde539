"""HTML views of one scan: its upload, its live-updated card and worklist row, its move to another
patient, its report, its image and heatmaps, and the review of its result. Like every view here they
parse the request, call one selector or service, and render (the patient and worklist pages are in
diagnosis.views)."""
import functools
import io
import logging

from PIL import Image

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from . import ai_visibility, scan_intake, selectors, services, storage
from .auditing import audit, audit_image, client_ip
from .forms import ReviewForm, ScanMoveForm, ScanUploadForm
from .models import AuditEvent, Prediction
from .views import patient_page

logger = logging.getLogger(__name__)


def _visible_or_404(select, request, object_id, missing):
    """What the selector `select` finds among the rows the user may see, or a 404 saying `missing`:
    another site's scan is as absent as one that never existed."""
    try:
        return select(request.user, object_id)
    except ObjectDoesNotExist:
        raise Http404(missing)


def scan_or_404(request, scan_id):
    return _visible_or_404(selectors.scan_for, request, scan_id, "No such scan.")


def _unchanged(request, scan):
    """Live updates poll with the status they show; 204 (htmx leaves the page alone) until it changes."""
    return request.GET.get("shown") == scan.status


@permission_required("diagnosis.view_scan", raise_exception=True)
def worklist_row(request, scan_id):
    scan = _visible_or_404(selectors.worklist_row, request, scan_id, "No such scan.")
    if _unchanged(request, scan):
        return HttpResponse(status=204)
    return render(request, "diagnosis/_worklist_row.html", {"scan": scan})


@permission_required("diagnosis.view_scan", raise_exception=True)
def scan_card(request, scan_id):
    """One result card of the patient page; a pending card polls here and is replaced alone."""
    scan = scan_or_404(request, scan_id)
    if _unchanged(request, scan):
        return HttpResponse(status=204)
    # Only a card that changed shows something new: that is a read (a 204 shows nothing).
    seen = audit(request, AuditEvent.Action.SCAN_VIEWED, patient=scan.patient, scan=scan, details={"live_update": True})
    return render(request, "diagnosis/_scan_card.html", {"scan": scan, "seen": seen})


def _wants_json(request):
    # The upload page's script (static/upload.js) asks for JSON to show a status per file.
    return "application/json" in request.headers.get("Accept", "")


def _upload_outcome(files, scans, rejections, mismatched):
    """For the upload script: one entry per file sent, in order, with its scan or why it was refused
    (and whether for its header's identity alone, which the page's confirmation can settle); a
    refusal of the upload as a whole (no file, too many) comes under "refused"."""
    accepted = iter(scans)
    outcome = []
    for index, upload in enumerate(files, start=1):
        if index in rejections:
            outcome.append({"name": upload.name, "refused": rejections[index], "identity": index in mismatched})
        else:
            scan = next(accepted)
            outcome.append({"name": upload.name, "scan": str(scan.pk), "card_url": reverse("diagnosis:scan_card", args=[scan.pk])})
    whole = [reason for index, reason in rejections.items() if not 1 <= index <= len(files)]
    return {"files": outcome, "refused": whole}


@require_POST
@permission_required("diagnosis.add_scan", raise_exception=True)
def scan_upload(request, patient_id):
    """Keeps every valid file and names each refused one (scan_intake.submit_valid_scans)."""
    patient = get_object_or_404(selectors.patients_visible_to(request.user), pk=patient_id)
    form = ScanUploadForm(request.POST, request.FILES)
    files = form.cleaned_data["images"] if form.is_valid() else []
    confirmation = form.confirmation()
    scans, rejections, mismatched, refused_status = [], {}, set(), 400
    try:
        scans, rejections, mismatched = scan_intake.submit_valid_scans(actor=request.user, patient=patient, uploaded_files=files,
                                                                        ip_address=client_ip(request), **confirmation)
    except scan_intake.ScanRejected as refusal:
        rejections = refusal.rejections or {0: str(refusal)}
        mismatched = refusal.mismatched
    except scan_intake.UploadNotStored as unavailable:
        # Every file was sent and none kept: each says why, and the page says it once.
        rejections, refused_status = dict.fromkeys(range(1, len(files) + 1), str(unavailable)), 503
    if _wants_json(request):
        return JsonResponse(_upload_outcome(files, scans, rejections, mismatched), status=200 if scans else refused_status)
    for reason in dict.fromkeys(rejections.values()):
        form.add_error("images", reason)
    if not scans:
        return patient_page(request, patient, form, status=refused_status, identity_refused=bool(mismatched))
    count = len(scans)
    messages.success(request, f"{count} image{'s' if count > 1 else ''} received; the AI result will appear below when ready.")
    for reason in rejections.values():
        messages.error(request, f"Not uploaded: {reason}")
    return redirect("diagnosis:patient_detail", patient_id=patient.pk)


@require_POST
@permission_required("diagnosis.add_scan", raise_exception=True)
def scan_move(request, scan_id):
    """File a scan under the patient it belongs to; the reason and both patients go in the audit trail."""
    scan = scan_or_404(request, scan_id)
    form = ScanMoveForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Give the right patient's medical record number and the reason for moving the scan.")
        return redirect("diagnosis:patient_detail", patient_id=scan.patient_id)
    number = form.cleaned_data["medical_record_number"]
    to_patient = selectors.patient_by_record_number(request.user, number, prefer_site=scan.patient.site_id)
    if to_patient is None:
        messages.error(request, f"No patient you can see has the medical record number {number}; nothing was moved.")
        return redirect("diagnosis:patient_detail", patient_id=scan.patient_id)
    try:
        services.move_scan(actor=request.user, scan=scan, to_patient=to_patient, reason=form.cleaned_data["reason"], ip_address=client_ip(request))
    except services.MoveRefused as refusal:
        messages.error(request, str(refusal))
        return redirect("diagnosis:patient_detail", patient_id=scan.patient_id)
    messages.success(request, f"The scan was moved from {scan.patient} to {to_patient}.")
    return redirect("diagnosis:patient_detail", patient_id=to_patient.pk)


@permission_required("diagnosis.view_scan", raise_exception=True)
def scan_report(request, scan_id):
    """One printable page: the patient, the film and its heatmap, the result with its model's
    figures, the current reviews and the disclaimer. Reading it is recorded like any record view."""
    scan = scan_or_404(request, scan_id)
    # The report is the read; the images it embeds carry its row (diagnosis.auditing).
    seen = audit(request, AuditEvent.Action.REPORT_VIEWED, patient=scan.patient, scan=scan)
    prediction = scan.latest_prediction
    shown = ai_visibility.ai_result_shown(request.user, scan)
    context = {
        "seen": seen,
        "scan": scan,
        "patient": scan.patient,
        "prediction": prediction if shown else None,
        "withheld": ai_visibility.withheld_sentence(scan.patient.site) if prediction and not shown else "",
        **_report_reviews(request.user, scan, prediction),
        "printed_at": timezone.now(),
    }
    return render(request, "diagnosis/scan_report.html", context)


def _report_reviews(user, scan, prediction):
    """The current reviews the reader may read (ai_visibility.reviews_shown), and what is held back."""
    if prediction is None:
        return {"reviews": [], "held_back": ""}
    shown, held_back = ai_visibility.reviews_shown(user, scan, prediction, prediction.reviews.all())
    return {"reviews": [review for review in shown if review.is_current], "held_back": ai_visibility.held_back_sentence(held_back) if held_back else ""}


def _private_png(data):
    response = HttpResponse(data, content_type="image/png")
    response["Cache-Control"] = "private, no-store"
    return response


def stored_or_404(scan, read):
    """A file of the scan from storage; one that has gone missing is a 404 for the reader (nothing was
    shown, so nothing is audited) and an error in the log for hospital IT, never a 500."""
    try:
        return read()
    except FileNotFoundError:
        logger.error("A stored file of scan %s is missing from the scan storage.", scan.pk)
        raise Http404("The image of this scan is missing from storage.") from None
    except storage.StoreUnavailable as error:
        logger.error("A stored file of scan %s could not be read: %s", scan.pk, error)
        raise StoreNotAnswering from None


class StoreNotAnswering(Exception):
    """The image store did not answer: the image view says so with a 503 (_store_answering)."""


STORE_NOT_ANSWERING = "The image store did not answer; reload the page in a minute. If this goes on, tell IT that the object store is down."


def _store_answering(view):
    """A 503 with a sentence, not a 500, while the image store is down."""
    @functools.wraps(view)
    def answered(request, *args, **kwargs):
        try:
            return view(request, *args, **kwargs)
        except StoreNotAnswering:
            return HttpResponse(STORE_NOT_ANSWERING, status=503, content_type="text/plain; charset=utf-8", headers={"Retry-After": "60"})
    return answered


@permission_required("diagnosis.view_scan", raise_exception=True)
@_store_answering
def scan_image(request, scan_id):
    """The X-ray as PNG (DICOM is converted for the browser); never cached, and audited unless the
    page that embeds it already was (diagnosis.auditing)."""
    scan = scan_or_404(request, scan_id)
    buffer = io.BytesIO()
    Image.fromarray(stored_or_404(scan, lambda: storage.load_pixels(scan.stored_name))).save(buffer, format="PNG")
    audit_image(request, AuditEvent.Action.SCAN_IMAGE_VIEWED, scan)
    return _private_png(buffer.getvalue())


@permission_required("diagnosis.view_prediction", raise_exception=True)
@_store_answering
def scan_heatmap(request, scan_id, prediction_id):
    scan = scan_or_404(request, scan_id)
    if not ai_visibility.ai_result_shown(request.user, scan):
        raise PermissionDenied(ai_visibility.withheld_sentence(scan.patient.site))
    prediction = get_object_or_404(Prediction, pk=prediction_id, scan=scan)
    if not prediction.heatmap_name:
        raise Http404("This result has no heatmap.")
    data = stored_or_404(scan, lambda: storage.read(prediction.heatmap_name))
    audit_image(request, AuditEvent.Action.HEATMAP_VIEWED, scan)
    return _private_png(data)


@require_POST
@permission_required("diagnosis.add_review", raise_exception=True)
def prediction_review(request, prediction_id):
    prediction = _visible_or_404(selectors.prediction_for, request, prediction_id, "No such result.")
    blind = not ai_visibility.ai_result_shown(request.user, prediction.scan)
    form = ReviewForm(request.POST, blind=blind)
    if not form.is_valid():
        messages.error(request, "Choose your finding (COVID-19 positive, negative or indeterminate) before saving your review." if blind else
                       "Choose your finding (COVID-19 positive, negative or indeterminate) and whether you agree with the AI result before saving your review.")
        return _back_to_the_card(prediction.scan)
    try:
        _, revised = services.review_prediction(actor=request.user, prediction=prediction, ip_address=client_ip(request), **form.cleaned_data)
    except services.ReviewRefused as refusal:
        messages.error(request, str(refusal))
    else:
        messages.success(request, "Your review was revised; the earlier one is kept in its history." if revised else "Your review was saved.")
    return _back_to_the_card(prediction.scan)


def _back_to_the_card(scan):
    """The patient page at the card just reviewed (the page of the history that holds it), not at its top."""
    return redirect(f"{reverse('diagnosis:patient_detail', args=[scan.patient_id])}?scan={scan.pk}#scan-{scan.pk}")
