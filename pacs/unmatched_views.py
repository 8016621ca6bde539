"""The "Unmatched DICOM" pages: the instances the listener held because their PatientID is unknown
at the node's site or their header disagrees with the record (pacs.receiving), for the people who
may upload films for that site's patients to file, register or dismiss (pacs.filing). Thin: parse,
call pacs.selectors or pacs.filing, render. Every look is an audit row, every write is the service's."""
from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from diagnosis.auditing import audit, client_ip, ids
from diagnosis.forms import IdentityConfirmationForm, PatientForm
from diagnosis.models import AuditEvent
from diagnosis.views import page_of

from . import filing, selectors

PAGE_SIZE = 50


class FileToPatientForm(IdentityConfirmationForm):
    patient = forms.UUIDField(error_messages={"required": "Choose the patient to file the image to.", "invalid": "Choose the patient to file the image to."})


class RegisterFromHeaderForm(PatientForm, IdentityConfirmationForm):
    pass


class DismissForm(forms.Form):
    reason = forms.CharField(max_length=500, label="Why it does not belong in the portal (kept in the audit trail)",
                             error_messages={"required": "Write why this image is dismissed; the reason is kept in the audit trail."})


def _header_name(instance):
    """(family, given) from the header's PN (FAMILY^Given^Middle), written as people write names."""
    family, _, rest = instance.header_patient_name.partition("^")
    given = " ".join(part for part in rest.split("^") if part)

    def spoken(name):
        return name.strip().title() if name.isupper() else name.strip()

    return spoken(family), spoken(given)


def _register_initial(instance):
    family, given = _header_name(instance)
    return {"medical_record_number": instance.header_patient_id, "family_name": family, "given_name": given, "date_of_birth": instance.header_birth_date}


def _instance_or_404(request, instance_id):
    try:
        return selectors.received_instance_for(request.user, instance_id)
    except ObjectDoesNotExist:
        raise Http404("No such unmatched image.")


@permission_required("diagnosis.add_scan", raise_exception=True)
def unmatched_list(request):
    page = page_of(request, selectors.unmatched_visible_to(request.user), PAGE_SIZE)
    audit(request, AuditEvent.Action.DICOM_UNMATCHED_VIEWED, details={"page": page.number, "instances": ids(page)})
    return render(request, "pacs/unmatched_list.html", {"page": page})


@permission_required("diagnosis.add_scan", raise_exception=True)
def unmatched_detail(request, instance_id, forms_shown=None, error="", status=200):
    """One held instance: its header, why it was held, and the three ways to settle it."""
    instance = _instance_or_404(request, instance_id)
    query = request.GET.get("q", request.POST.get("q", instance.header_patient_id))
    candidates = list(selectors.patients_to_file_to(request.user, instance, query)[:20]) if instance.outcome == "unmatched" else []
    chosen = getattr((forms_shown or {}).get("file_form"), "cleaned_data", {}).get("patient")
    chosen = chosen and selectors.patient_to_file_to(request.user, instance, chosen)
    if chosen and chosen not in candidates:  # a refused filing shows the patient chosen, whatever the search
        candidates.insert(0, chosen)
    if request.method == "GET":
        audit(request, AuditEvent.Action.DICOM_UNMATCHED_VIEWED, details={"instance": instance.pk, "query": query, "patients": ids(candidates)})
    shown = {"file_form": FileToPatientForm(), "register_form": RegisterFromHeaderForm(initial=_register_initial(instance)), "dismiss_form": DismissForm(),
             **(forms_shown or {})}
    context = {"instance": instance, "query": query, "candidates": candidates, "error": error, "preview": selectors.film_preview(instance),
               "settled": "" if instance.outcome == "unmatched" else filing.settled_sentence(instance),
               "may_register": request.user.has_perm("diagnosis.add_patient"), **shown}
    return render(request, "pacs/unmatched_detail.html", context, status=status)


def _settle(request, instance_id, form, write, forms_key, done):
    """Validate `form`, call `write(instance, form)`; on success a message and the list, on
    a refusal the page again with the sentence (409 when someone else settled it first)."""
    instance = _instance_or_404(request, instance_id)
    if not form.is_valid():
        sentence = " ".join(error for errors in form.errors.values() for error in errors)
        return unmatched_detail(request, instance_id, {forms_key: form}, sentence, status=400)
    try:
        outcome = write(instance, form)
    except filing.AlreadySettled as refusal:
        return unmatched_detail(request, instance_id, {}, str(refusal), status=409)
    except filing.FilingRefused as refusal:
        form.identity_refused = isinstance(refusal, filing.IdentityRefused)  # unfolds the confirmation, as the upload page does
        return unmatched_detail(request, instance_id, {forms_key: form}, str(refusal), status=400)
    messages.success(request, done(instance, outcome))
    return redirect("pacs:unmatched_list")


@require_POST
@permission_required("diagnosis.add_scan", raise_exception=True)
def unmatched_file(request, instance_id):
    def write(instance, form):
        patient = selectors.patient_to_file_to(request.user, instance, form.cleaned_data["patient"])
        return filing.file_to_patient(actor=request.user, instance=instance, patient=patient, ip_address=client_ip(request), **form.confirmation())

    return _settle(request, instance_id, FileToPatientForm(request.POST), write, "file_form", _filed)


@require_POST
@permission_required("diagnosis.add_scan", raise_exception=True)
def unmatched_register(request, instance_id):
    if not request.user.has_perm("diagnosis.add_patient"):
        raise PermissionDenied

    def write(instance, form):
        details = {name: form.cleaned_data[name] for name in PatientForm.Meta.fields}
        return filing.register_and_file(actor=request.user, instance=instance, patient_details=details, ip_address=client_ip(request), **form.confirmation())

    return _settle(request, instance_id, RegisterFromHeaderForm(request.POST), write, "register_form", _filed)


@require_POST
@permission_required("diagnosis.add_scan", raise_exception=True)
def unmatched_dismiss(request, instance_id):
    def write(instance, form):
        return filing.dismiss(actor=request.user, instance=instance, reason=form.cleaned_data["reason"], ip_address=client_ip(request))

    return _settle(request, instance_id, DismissForm(request.POST), write, "dismiss_form",
                   lambda instance, outcome: f"The image from {instance.ae_title} was dismissed and its file deleted.")


def _filed(instance, scan):
    return f"The image from {instance.ae_title} was filed under {scan.patient}; its AI result will appear on the patient's page when ready."
