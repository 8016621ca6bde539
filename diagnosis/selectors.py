"""Reads, already scoped to what the user may see. The HTML views and the API both come here."""
import uuid
from datetime import datetime, time, timedelta

from django.core.exceptions import BadRequest
from django.db.models import BooleanField, Case, Exists, ExpressionWrapper, F, IntegerField, OuterRef, Prefetch, Q, Subquery, Value, When
from django.utils import timezone

from . import ai_visibility, storage
from .models import AuditEvent, Patient, Prediction, Review, Scan, Site
from .query_params import refuse_control_characters


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


def sites_visible_to(user):
    """The sites whose patients the user may see: every site, their own, or none."""
    if user.has_perm("diagnosis.view_every_site"):
        return Site.objects.all()
    site = site_of(user) if user.has_perm("diagnosis.view_patient") else None
    return Site.objects.filter(pk=site.pk) if site else Site.objects.none()


def search_patients(user, query=""):
    patients = patients_visible_to(user).select_related("site")
    query = refuse_control_characters(query.strip())
    if query:
        patients = patients.filter(
            Q(medical_record_number__iexact=query)
            | Q(medical_record_number__istartswith=query)
            | Q(family_name__icontains=query)
            | Q(given_name__icontains=query)
        )
    return patients


def patient_by_record_number(user, medical_record_number, *, prefer_site=None):
    """The patient the user may see with this record number (any letter case), or None. Record
    numbers are unique per site; for someone who sees several sites, one at `prefer_site` wins."""
    matches = list(patients_visible_to(user).filter(medical_record_number__iexact=medical_record_number.strip())[:20])
    if len(matches) > 1:
        matches = [patient for patient in matches if patient.site_id == getattr(prefer_site, "pk", prefer_site)]
    return matches[0] if len(matches) == 1 else None


def scans_visible_to(user):
    return Scan.objects.filter(patient__in=patients_visible_to(user))


def _with_results(scans):
    predictions = Prediction.objects.select_related("model_version", "site_threshold__site").prefetch_related("reviews__reviewer", "pacs_sends")
    # The site (its mode and the decision behind it) says whether and how a result is shown (ai_visibility).
    return scans.select_related("patient__site__mode_decision__version", "uploaded_by").prefetch_related(Prefetch("predictions", queryset=predictions))


def patient_history(patient):
    """Every scan of the patient with its results, newest first."""
    return _with_results(patient.scans.all()).order_by("-uploaded_at", "pk")


def taken_before(scan):
    """The patient's films taken before `scan`, newest first, with their results: the priors the viewer
    sets beside it. When a film was taken is its header's study date where it has a real one (a prior
    may be uploaded after the current film), else when it was uploaded."""
    def taken(each):
        return (each.study_date_known or timezone.localdate(each.uploaded_at), each.uploaded_at)
    others = _with_results(scan.patient.scans.exclude(pk=scan.pk))
    return sorted((other for other in others if taken(other) < taken(scan)), key=taken, reverse=True)


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


def _disagreeing_reviews():
    """Current reviews that disagree with the latest AI result of the outer scan."""
    latest = Prediction.objects.filter(scan=OuterRef(OuterRef("pk"))).order_by("-created_at").values("pk")[:1]
    return Review.objects.filter(prediction=Subquery(latest), agrees=False, superseded_at__isnull=True)


def worklist(user, *, status="", result="", review="", date_from=None, date_to=None, site=None, since=None):
    """Scans across every patient the user may see, in triage order. Empty filters are ignored;
    `site` only narrows what `patients_visible_to` already allows. Someone who reads blind (a site in
    its silent period, ai_visibility) gets the newest first, and may not filter by the AI result."""
    visible = scans_visible_to(user)
    blind = ai_visibility.reads_blind(user, visible)
    scans = _for_worklist(visible)
    if status:
        scans = scans.filter(status=status)
    if result and blind:
        raise BadRequest("The worklist cannot be filtered by the AI result: your site is in its silent period, in which results are withheld.")
    if result:
        scans = scans.filter(status=Scan.Status.DONE, likely_positive=(result == "positive"))
    if review == "disagreed" and blind:
        raise BadRequest("The worklist cannot be filtered by disagreement with the AI result: your site is in its silent period, in which results are withheld.")
    if review == "disagreed":
        scans = scans.filter(Exists(_disagreeing_reviews()))
    elif review:
        scans = scans.filter(status=Scan.Status.DONE, reviewed=(review == "reviewed"))
    if date_from:
        scans = scans.filter(uploaded_at__gte=_start_of(date_from))
    if date_to:
        scans = scans.filter(uploaded_at__lt=_start_of(date_to + timedelta(days=1)))
    if site:
        scans = scans.filter(patient__site=site)
    if since:
        scans = scans.filter(uploaded_at__gt=since)
    return scans.order_by("-uploaded_at", "pk") if blind else scans.order_by("triage", "-uploaded_at", "pk")


def worklist_row(user, scan_id):
    """One worklist row, with the same annotations as the list; raises Scan.DoesNotExist."""
    return _for_worklist(scans_visible_to(user)).get(pk=scan_id)


def scan_for(user, scan_id):
    return _with_results(scans_visible_to(user)).get(pk=scan_id)


def prediction_for(user, prediction_id):
    return Prediction.objects.select_related("scan__patient", "model_version", "site_threshold__site").get(
        pk=prediction_id, scan__in=scans_visible_to(user)
    )


def review_says_positive(review):
    """What a review says the scan shows, as truth for training and for fitting a site's threshold:
    True for the model's positive class, False for not it, None when it cannot be told (left out).
    The clinician's finding when they recorded one (indeterminate: None). Reviews from before
    findings were asked keep the earlier rule: agreeing keeps the AI's label; disagreeing with a
    positive label says negative, and with a negative one says positive only for a two-class model
    (with more classes it could be any other)."""
    if review.finding == Review.Finding.INDETERMINATE:
        return None
    if review.finding is not None:
        return review.finding == Review.Finding.POSITIVE
    said_positive = review.prediction.is_positive
    if review.agrees:
        return said_positive
    if said_positive or len(review.prediction.model_version.class_names) == 2:
        return not said_positive
    return None


def training_label(review):
    """The class a reviewed scan is trained as, or None to leave it out (review_says_positive):
    the model's positive class, or the other class of a two-class model. An old review that agreed
    with a negative label of a model with more classes keeps that label."""
    prediction = review.prediction
    positive = prediction.model_version.positive_class
    says_positive = review_says_positive(review)
    if says_positive is None:
        return None
    if says_positive:
        return positive
    if review.finding is None and review.agrees:
        return prediction.label
    others = [name for name in prediction.model_version.class_names if name != positive]
    return others[0] if len(others) == 1 else None


def reviewed_scans_for_training():
    """Every scan a clinician reviewed, labelled by its latest review (training_label). Yields
    (image path, label, patient id, site code); ml exports these as a training snapshot without
    importing the clinical app."""
    reviews = Review.objects.select_related("prediction__scan__patient__site", "prediction__model_version").order_by(
        "prediction__scan_id", "-created_at", "-id"
    )
    seen = set()
    for review in reviews:
        scan = review.prediction.scan
        if scan.pk in seen:
            continue
        seen.add(scan.pk)
        label = training_label(review)
        if label is not None:
            yield str(storage.local_path(scan.stored_name)), label, str(scan.patient_id), scan.patient.site.code


def prediction_with_reviews_for(user, prediction_id):
    """One prediction the user may see, with its model version and every review (history
    included); raises Prediction.DoesNotExist for one of another site."""
    return Prediction.objects.select_related("scan__patient", "model_version", "site_threshold__site").prefetch_related("reviews__reviewer").get(
        pk=prediction_id, scan__in=scans_visible_to(user)
    )


def reviews_of(prediction):
    """Every review of the prediction, newest first; revised ones are kept with superseded_at set."""
    return prediction.reviews.select_related("reviewer").order_by("-created_at", "-id")


def audit_trail(*, user="", action="", patient="", date_from=None, date_to=None):
    """The audit trail, newest first, filtered: `user` is a user name, `patient` a record number
    (any site, any letter case) or a patient id. Only for those allowed to read the trail."""
    events = AuditEvent.objects.select_related("actor", "patient__site", "scan").order_by("-at", "-id")
    if user:
        events = events.filter(actor__username__iexact=user)
    if action:
        events = events.filter(action=action)
    if patient:
        try:
            events = events.filter(patient_id=uuid.UUID(patient))
        except ValueError:
            events = events.filter(patient__medical_record_number__iexact=patient.strip())
    if date_from:
        events = events.filter(at__date__gte=date_from)
    if date_to:
        events = events.filter(at__date__lte=date_to)
    return events
