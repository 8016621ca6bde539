"""Reads, already scoped to what the user may see. The HTML views and the API both come here."""
from datetime import datetime, time, timedelta

from django.db.models import Prefetch, Q
from django.utils import timezone

from . import storage
from .models import Patient, Prediction, Review, Scan


def site_of(user):
    profile = getattr(user, "staff_profile", None)
    return profile.site if profile else None


def patients_visible_to(user):
    """The one rule for who sees which patients: a clinical role at its own site, or every site with
    the administrators' permission. Pages, the API and the django-rules object permissions ask here."""
    if not user.has_perm("diagnosis.view_patient"):
        return Patient.objects.none()
    if user.has_perm("diagnosis.view_every_site"):
        return Patient.objects.all()
    site = site_of(user)
    if site is None:
        return Patient.objects.none()
    return Patient.objects.filter(site=site)


def search_patients(user, query=""):
    patients = patients_visible_to(user).select_related("site")
    import unicodedata

    from django.core.exceptions import BadRequest

    query = query.strip()
    # A NUL byte breaks PostgreSQL's query; no name or record number holds a control character.
    if any(unicodedata.category(character) == "Cc" for character in query):
        raise BadRequest("The search may not contain control characters; type a name or a record number.")
    if query:
        patients = patients.filter(
            Q(medical_record_number__iexact=query)
            | Q(medical_record_number__istartswith=query)
            | Q(family_name__icontains=query)
            | Q(given_name__icontains=query)
        )
    return patients


def scans_visible_to(user):
    return Scan.objects.filter(patient__in=patients_visible_to(user))


def _with_results(scans):
    predictions = Prediction.objects.select_related("model_version").prefetch_related("reviews__reviewer")
    return scans.select_related("patient", "uploaded_by").prefetch_related(Prefetch("predictions", queryset=predictions))


def patient_history(patient):
    """Every scan of the patient with its results, newest first."""
    return _with_results(patient.scans.all()).order_by("-uploaded_at", "pk")


def newer_scans_in_history(patient, scan_id):
    """How many of the patient's scans come before this one in their history (to open the page
    that holds it); None for a scan that is not the patient's."""
    scan = patient.scans.filter(pk=scan_id).values("uploaded_at", "pk").first()
    if scan is None:
        return None
    return patient.scans.filter(Q(uploaded_at__gt=scan["uploaded_at"]) | Q(uploaded_at=scan["uploaded_at"], pk__lt=scan["pk"])).count()


def _for_worklist(scans):
    """Each scan with what a worklist row shows. The order and filters read the scan's own
    likely_positive, reviewed and triage columns (models.Scan), which are indexed."""
    return _with_results(scans).select_related("patient__site")


def _start_of(day):
    """Midnight at the start of `day` in the portal's time zone: a range on uploaded_at uses its index
    where `uploaded_at__date` would compute a date for every row."""
    return timezone.make_aware(datetime.combine(day, time.min))


def worklist(user, *, status="", result="", review="", date_from=None, date_to=None, site=None, since=None):
    """Scans across every patient the user may see, in triage order. Empty filters are ignored;
    `site` only narrows what `patients_visible_to` already allows."""
    scans = _for_worklist(scans_visible_to(user))
    if status:
        scans = scans.filter(status=status)
    if result:
        scans = scans.filter(status=Scan.Status.DONE, likely_positive=(result == "positive"))
    if review:
        scans = scans.filter(status=Scan.Status.DONE, reviewed=(review == "reviewed"))
    if date_from:
        scans = scans.filter(uploaded_at__gte=_start_of(date_from))
    if date_to:
        scans = scans.filter(uploaded_at__lt=_start_of(date_to + timedelta(days=1)))
    if site:
        scans = scans.filter(patient__site=site)
    if since:
        scans = scans.filter(uploaded_at__gt=since)
    return scans.order_by("triage", "-uploaded_at", "pk")


def worklist_row(user, scan_id):
    """One worklist row, with the same annotations as the list; raises Scan.DoesNotExist."""
    return _for_worklist(scans_visible_to(user)).get(pk=scan_id)


def scan_for(user, scan_id):
    return _with_results(scans_visible_to(user)).get(pk=scan_id)


def prediction_for(user, prediction_id):
    return Prediction.objects.select_related("scan__patient", "model_version").get(
        pk=prediction_id, scan__in=scans_visible_to(user)
    )


def reviewed_scans_for_training():
    """Every scan a clinician reviewed, labelled by its latest review: the AI's label when the
    reviewer agreed, else the other class. Yields (image path, label, patient id, site code);
    ml exports these as a training snapshot without importing the clinical app."""
    reviews = Review.objects.select_related("prediction__scan__patient__site", "prediction__model_version").order_by(
        "prediction__scan_id", "-created_at", "-id"
    )
    seen = set()
    for review in reviews:
        prediction, scan = review.prediction, review.prediction.scan
        if scan.pk in seen:
            continue
        seen.add(scan.pk)
        if review.agrees:
            label = prediction.label
        else:
            others = [name for name in prediction.model_version.class_names if name != prediction.label]
            if len(others) != 1:
                continue
            label = others[0]
        yield str(storage.path_of(scan.stored_name)), label, str(scan.patient_id), scan.patient.site.code


def prediction_with_reviews_for(user, prediction_id):
    """One prediction the user may see, with its model version and every review (history
    included); raises Prediction.DoesNotExist for one of another site."""
    return Prediction.objects.select_related("scan__patient", "model_version").prefetch_related("reviews__reviewer").get(
        pk=prediction_id, scan__in=scans_visible_to(user)
    )


def reviews_of(prediction):
    """Every review of the prediction, newest first; revised ones are kept with superseded_at set."""
    return prediction.reviews.select_related("reviewer").order_by("-created_at", "-id")
