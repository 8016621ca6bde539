"""HTML views: parse the request, call one selector or service, render."""
import io
import uuid

from PIL import Image

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_POST

from ml.engine.images import load_image_file

from . import selectors, services, storage
from .forms import PatientForm, ReviewForm, ScanUploadForm, WorklistFilterForm
from .models import AuditEvent, Prediction, Scan
from .paging import CappedPaginator


def client_ip(request):
    return request.META.get("REMOTE_ADDR")


# Every list that grows with the hospital is shown a page at a time.
WORKLIST_PAGE_SIZE = 25
PATIENTS_PAGE_SIZE = 50
HISTORY_PAGE_SIZE = 20


def page_of(request, items, size, paginator=Paginator):
    return paginator(items, size).get_page(request.GET.get("page"))


@permission_required("diagnosis.view_scan", raise_exception=True)
def worklist(request):
    """The clinician's first page: every scan they may see, in triage order, filtered."""
    form = WorklistFilterForm(request.GET, chooses_site=request.user.has_perm("diagnosis.view_every_site"))
    # 100,000 scans: counting them all would cost more than the page (bench/pages.py).
    page = page_of(request, selectors.worklist(request.user, **form.filters()), WORKLIST_PAGE_SIZE, paginator=CappedPaginator)
    context = {"form": form, "page": page, "filtered": bool(form.filters()), "shown_at": timezone.now().isoformat()}
    return render(request, "diagnosis/worklist.html", context)


@permission_required("diagnosis.view_scan", raise_exception=True)
def worklist_news(request):
    """How many scans matching the worklist's filters arrived since it was shown. New rows are
    announced, not inserted, so the list never moves under the reader; 204 while there are none."""
    try:
        since = parse_datetime(request.GET.get("since", ""))
    except ValueError:
        since = None
    if since is None:
        return HttpResponse(status=204)
    form = WorklistFilterForm(request.GET, chooses_site=request.user.has_perm("diagnosis.view_every_site"))
    count = selectors.worklist(request.user, **form.filters(), since=since).count()
    if not count:
        return HttpResponse(status=204)
    return render(request, "diagnosis/_worklist_news.html", {"count": count})


def _unchanged(request, scan):
    """Live updates poll with the status they show; 204 (htmx leaves the page alone) until it changes."""
    return request.GET.get("shown") == scan.status


@permission_required("diagnosis.view_scan", raise_exception=True)
def worklist_row(request, scan_id):
    try:
        scan = selectors.worklist_row(request.user, scan_id)
    except Scan.DoesNotExist:
        raise Http404("No such scan.")
    if _unchanged(request, scan):
        return HttpResponse(status=204)
    return render(request, "diagnosis/_worklist_row.html", {"scan": scan})


@permission_required("diagnosis.view_scan", raise_exception=True)
def scan_card(request, scan_id):
    """One result card of the patient page; a pending card polls here and is replaced alone."""
    scan = _scan_or_404(request, scan_id)
    if _unchanged(request, scan):
        return HttpResponse(status=204)
    return render(request, "diagnosis/_scan_card.html", {"scan": scan})


@permission_required("diagnosis.view_patient", raise_exception=True)
def patient_list(request):
    query = request.GET.get("q", "")
    page = page_of(request, selectors.search_patients(request.user, query), PATIENTS_PAGE_SIZE)
    return render(request, "diagnosis/patient_list.html", {"page": page, "query": query})


@permission_required("diagnosis.add_patient", raise_exception=True)
def patient_create(request):
    # Only those who register at every site choose one; their own is preselected.
    chooses_site = request.user.has_perm("diagnosis.view_every_site")
    form = PatientForm(request.POST or None, chooses_site=chooses_site, initial={"site": selectors.site_of(request.user)})
    if request.method == "POST" and form.is_valid():
        try:
            patient = services.register_patient(actor=request.user, **form.cleaned_data)
        except services.PatientRegistrationRefused as refusal:
            form.add_error(None, str(refusal))
        else:
            messages.success(request, f"Registered {patient}.")
            return redirect("diagnosis:patient_detail", patient_id=patient.pk)
    return render(request, "diagnosis/patient_form.html", {"form": form}, status=400 if form.errors else 200)


def _history_page(request, patient):
    """The page asked for, or the one that holds ?scan= (a worklist row links to its scan)."""
    paginator = Paginator(selectors.patient_history(patient), HISTORY_PAGE_SIZE)
    scan_id = request.GET.get("scan", "")
    if "page" not in request.GET and scan_id:
        try:
            newer = selectors.newer_scans_in_history(patient, uuid.UUID(scan_id))
        except ValueError:
            newer = None
        if newer is not None:
            return paginator.get_page(newer // HISTORY_PAGE_SIZE + 1)
    return paginator.get_page(request.GET.get("page"))


def _patient_page(request, patient, upload_form, status=200):
    context = {"patient": patient, "upload_form": upload_form, "scans": _history_page(request, patient)}
    return render(request, "diagnosis/patient_detail.html", context, status=status)


@permission_required("diagnosis.view_patient", raise_exception=True)
def patient_detail(request, patient_id):
    patient = get_object_or_404(selectors.patients_visible_to(request.user).select_related("site"), pk=patient_id)
    services.record_audit(request.user, AuditEvent.Action.PATIENT_VIEWED, patient=patient, ip_address=client_ip(request))
    return _patient_page(request, patient, ScanUploadForm())


@require_POST
@permission_required("diagnosis.add_scan", raise_exception=True)
def scan_upload(request, patient_id):
    patient = get_object_or_404(selectors.patients_visible_to(request.user), pk=patient_id)
    form = ScanUploadForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            scans = services.submit_scans(actor=request.user, patient=patient, uploaded_files=form.cleaned_data["images"])
        except services.ScanRejected as error:
            form.add_error("images", str(error))
        else:
            count = len(scans)
            messages.success(request, f"{count} image{'s' if count > 1 else ''} received; the AI result will appear below when ready.")
            return redirect("diagnosis:patient_detail", patient_id=patient.pk)
    return _patient_page(request, patient, form, status=400)


def _scan_or_404(request, scan_id):
    try:
        return selectors.scan_for(request.user, scan_id)
    except Scan.DoesNotExist:
        raise Http404("No such scan.")


def _private_png(data):
    response = HttpResponse(data, content_type="image/png")
    response["Cache-Control"] = "private, no-store"
    return response


@permission_required("diagnosis.view_scan", raise_exception=True)
def scan_image(request, scan_id):
    """The X-ray as PNG (DICOM is converted for the browser); logged, never cached."""
    scan = _scan_or_404(request, scan_id)
    buffer = io.BytesIO()
    Image.fromarray(load_image_file(storage.path_of(scan.stored_name))).save(buffer, format="PNG")
    services.record_audit(request.user, AuditEvent.Action.SCAN_IMAGE_VIEWED, patient=scan.patient, scan=scan, ip_address=client_ip(request))
    return _private_png(buffer.getvalue())


@permission_required("diagnosis.view_prediction", raise_exception=True)
def scan_heatmap(request, scan_id, prediction_id):
    scan = _scan_or_404(request, scan_id)
    prediction = get_object_or_404(Prediction, pk=prediction_id, scan=scan)
    if not prediction.heatmap_name:
        raise Http404("This result has no heatmap.")
    services.record_audit(request.user, AuditEvent.Action.HEATMAP_VIEWED, patient=scan.patient, scan=scan, ip_address=client_ip(request))
    return _private_png(storage.read(prediction.heatmap_name))


@require_POST
@permission_required("diagnosis.add_review", raise_exception=True)
def prediction_review(request, prediction_id):
    try:
        prediction = selectors.prediction_for(request.user, prediction_id)
    except Prediction.DoesNotExist:
        raise Http404("No such result.")
    form = ReviewForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose whether you agree or disagree with the AI result before saving your review.")
    else:
        services.review_prediction(actor=request.user, prediction=prediction, agrees=form.cleaned_data["agrees"], note=form.cleaned_data["note"])
        messages.success(request, "Your review was saved.")
    return redirect("diagnosis:patient_detail", patient_id=prediction.scan.patient_id)
