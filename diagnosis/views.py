"""HTML views: parse the request, call one selector or service, render."""
import io
from functools import wraps

from PIL import Image

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from ml.engine.images import load_image_file

from . import roles, selectors, services, storage
from .forms import PatientForm, ReviewForm, ScanUploadForm
from .models import AuditEvent, Prediction, Scan


def clinical_staff_required(view):
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not roles.is_clinical_staff(request.user):
            raise PermissionDenied("Your account has no clinical role.")
        return view(request, *args, **kwargs)

    return wrapper


def client_ip(request):
    return request.META.get("REMOTE_ADDR")


def home(request):
    if roles.is_clinical_staff(request.user):
        return redirect("diagnosis:patient_list")
    raise PermissionDenied("Your account has no clinical role.")


@clinical_staff_required
def patient_list(request):
    query = request.GET.get("q", "")
    patients = selectors.search_patients(request.user, query)[:200]
    return render(request, "diagnosis/patient_list.html", {"patients": patients, "query": query})


@clinical_staff_required
def patient_create(request):
    fixed_site = None if roles.is_administrator(request.user) else roles.site_of(request.user)
    if fixed_site is None and not roles.is_administrator(request.user):
        messages.error(request, "Your account is not attached to a site, so you cannot register patients. Ask an administrator.")
        return redirect("diagnosis:patient_list")
    # Administrators choose the site; their own is preselected.
    form = PatientForm(request.POST or None, fixed_site=fixed_site, initial={"site": roles.site_of(request.user)})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        patient = services.register_patient(
            actor=request.user,
            site=fixed_site or data["site"],
            medical_record_number=data["medical_record_number"],
            family_name=data["family_name"],
            given_name=data["given_name"],
            date_of_birth=data["date_of_birth"],
            sex=data["sex"],
        )
        messages.success(request, f"Registered {patient}.")
        return redirect("diagnosis:patient_detail", patient_id=patient.pk)
    return render(request, "diagnosis/patient_form.html", {"form": form}, status=400 if form.errors else 200)


def _patient_page(request, patient, upload_form, status=200):
    context = {
        "patient": patient,
        "upload_form": upload_form,
        "scans": selectors.patient_history(patient),
    }
    return render(request, "diagnosis/patient_detail.html", context, status=status)


@clinical_staff_required
def patient_detail(request, patient_id):
    patient = get_object_or_404(selectors.patients_visible_to(request.user), pk=patient_id)
    services.record_audit(request.user, AuditEvent.Action.PATIENT_VIEWED, patient=patient, ip_address=client_ip(request))
    return _patient_page(request, patient, ScanUploadForm())


@clinical_staff_required
def patient_history_fragment(request, patient_id):
    """The history table alone; the patient page polls it while a result is pending."""
    patient = get_object_or_404(selectors.patients_visible_to(request.user), pk=patient_id)
    context = {"patient": patient, "scans": selectors.patient_history(patient)}
    return render(request, "diagnosis/_history.html", context)


@require_POST
@clinical_staff_required
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


@clinical_staff_required
def scan_image(request, scan_id):
    """The X-ray as PNG (DICOM is converted for the browser); logged, never cached."""
    scan = _scan_or_404(request, scan_id)
    buffer = io.BytesIO()
    Image.fromarray(load_image_file(storage.path_of(scan.stored_name))).save(buffer, format="PNG")
    services.record_audit(request.user, AuditEvent.Action.SCAN_IMAGE_VIEWED, patient=scan.patient, scan=scan, ip_address=client_ip(request))
    return _private_png(buffer.getvalue())


@clinical_staff_required
def scan_heatmap(request, scan_id, prediction_id):
    scan = _scan_or_404(request, scan_id)
    prediction = get_object_or_404(Prediction, pk=prediction_id, scan=scan)
    if not prediction.heatmap_name:
        raise Http404("This result has no heatmap.")
    services.record_audit(request.user, AuditEvent.Action.HEATMAP_VIEWED, patient=scan.patient, scan=scan, ip_address=client_ip(request))
    return _private_png(storage.read(prediction.heatmap_name))


@require_POST
@clinical_staff_required
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
