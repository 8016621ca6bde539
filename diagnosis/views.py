"""HTML views of the worklist and of patients: parse the request, call one selector or service,
render. The views of one scan (upload, card, move, report, images, review) are in diagnosis.scan_views."""
import copy
import uuid

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone

from . import ai_visibility, selectors, services
from .auditing import audit, client_ip, ids
from .forms import PatientForm, ScanUploadForm, WorklistFilterForm
from .models import AuditEvent
from .paging import CappedPaginator
from .query_params import moment_or_none


# Every list that grows with the hospital is shown a page at a time.
WORKLIST_PAGE_SIZE = 25
PATIENTS_PAGE_SIZE = 50
HISTORY_PAGE_SIZE = 20


def page_of(request, items, size, paginator=Paginator):
    return paginator(items, size).get_page(request.GET.get("page"))


def worklist_filters(request):
    user = request.user
    return WorklistFilterForm(request.GET, chooses_site=user.has_perm("diagnosis.view_every_site"),
                              reads_blind=ai_visibility.reads_blind(user, selectors.scans_visible_to(user)))


@permission_required("diagnosis.view_scan", raise_exception=True)
def worklist(request):
    """The clinician's first page: every scan they may see, in triage order, filtered."""
    form = worklist_filters(request)
    # 100,000 scans: counting them all would cost more than the page (bench/pages.py).
    page = page_of(request, selectors.worklist(request.user, **form.filters()), WORKLIST_PAGE_SIZE, paginator=CappedPaginator)
    audit(request, AuditEvent.Action.WORKLIST_VIEWED, details={"filters": request.GET.dict(), "scans": ids(page)})
    context = {"form": form, "page": page, "filtered": bool(form.filters()), "shown_at": timezone.now().isoformat(), "reads_blind": "result" not in form.fields}
    return render(request, "diagnosis/worklist.html", context)


@permission_required("diagnosis.view_scan", raise_exception=True)
def worklist_news(request):
    """How many scans matching the worklist's filters arrived since it was shown. New rows are
    announced, not inserted, so the list never moves under the reader; 204 while there are none."""
    since = moment_or_none(request.GET.get("since"))  # the page's own shown_at
    if since is None:
        return HttpResponse(status=204)
    form = worklist_filters(request)
    count = selectors.worklist(request.user, **form.filters(), since=since).count()
    if not count:
        return HttpResponse(status=204)
    return render(request, "diagnosis/_worklist_news.html", {"count": count})


@permission_required("diagnosis.view_patient", raise_exception=True)
def patient_list(request):
    query = request.GET.get("q", "")
    page = page_of(request, selectors.search_patients(request.user, query), PATIENTS_PAGE_SIZE)
    audit(request, AuditEvent.Action.PATIENT_LISTED, details={"query": query, "page": page.number, "patients": ids(page)})
    return render(request, "diagnosis/patient_list.html", {"page": page, "query": query})


@permission_required("diagnosis.add_patient", raise_exception=True)
def patient_create(request):
    # Only those who register at every site choose one; their own is preselected.
    chooses_site = request.user.has_perm("diagnosis.view_every_site")
    form = PatientForm(request.POST or None, chooses_site=chooses_site, initial={"site": selectors.site_of(request.user)})
    if request.method == "POST" and form.is_valid():
        try:
            patient = services.register_patient(actor=request.user, ip_address=client_ip(request), **form.cleaned_data)
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


def patient_page(request, patient, upload_form, status=200, identity_refused=False):
    """The patient page; scan_views.scan_upload shows it again, with its form's errors, after a refused upload."""
    # Showing the page (again, after a refused upload) is the read; its images carry the row's id.
    seen = audit(request, AuditEvent.Action.PATIENT_VIEWED, patient=patient)
    context = {
        "seen": seen,
        "patient": patient,
        "upload_form": upload_form,
        "identity_refused": identity_refused,
        "scans": _history_page(request, patient),
        "max_files": settings.SCAN_MAX_FILES_PER_UPLOAD,
    }
    return render(request, "diagnosis/patient_detail.html", context, status=status)


@permission_required("diagnosis.view_patient", raise_exception=True)
def patient_detail(request, patient_id):
    patient = get_object_or_404(selectors.patients_visible_to(request.user).select_related("site"), pk=patient_id)
    return patient_page(request, patient, ScanUploadForm())


@permission_required("diagnosis.change_patient", raise_exception=True)
def patient_edit(request, patient_id):
    """Correct a patient's details (names, birth date, sex, record number); audited with what changed."""
    patient = get_object_or_404(selectors.patients_visible_to(request.user), pk=patient_id)
    if request.method != "POST":
        audit(request, AuditEvent.Action.PATIENT_VIEWED, patient=patient)
    # The form writes into its instance while validating: give it a copy, so the service sees the old values.
    form = PatientForm(request.POST or None, instance=copy.copy(patient))
    if request.method == "POST" and form.is_valid():
        changes = {name: form.cleaned_data[name] for name in form.changed_data}
        try:
            services.update_patient(actor=request.user, patient=patient, ip_address=client_ip(request), **changes)
        except services.PatientRegistrationRefused as refusal:
            form.add_error(None, str(refusal))
        else:
            messages.success(request, f"Corrected the details of {patient}." if changes else "Nothing was changed.")
            return redirect("diagnosis:patient_detail", patient_id=patient.pk)
    return render(request, "diagnosis/patient_form.html", {"form": form, "patient": patient}, status=400 if form.errors else 200)
