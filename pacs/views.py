"""The pacs app's pages: earlier chest films fetched from the PACS for a patient (pacs.priors), and
the DICOM nodes administrators register (pacs.node_views). Thin: parse, call a service, render."""
from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.shortcuts import get_object_or_404, redirect, render

from diagnosis import selectors
from diagnosis.auditing import client_ip

from . import priors

SESSION_KEY = "pacs-studies-{}"
OUTCOME_WORDS = {"analysed": "analysed", "skipped": "skipped (not a frontal chest film)", "unmatched": "held as unmatched (the header disagrees with the record)"}


class RetrieveForm(forms.Form):
    studies = forms.MultipleChoiceField(choices=(), widget=forms.CheckboxSelectMultiple, error_messages={"required": "Choose at least one study to fetch."})

    def __init__(self, *args, study_uids=(), **kwargs):
        super().__init__(*args, **kwargs)
        # Only studies the last query returned for this patient may be fetched.
        self.fields["studies"].choices = [(uid, uid) for uid in study_uids]


def _summary(node, outcomes):
    if not outcomes:
        return f"{node.ae_title} sent no image for that study."
    counts = {outcome: outcomes.count(outcome) for outcome in dict.fromkeys(outcomes)}
    return f"{len(outcomes)} image{'s' * (len(outcomes) > 1)} from {node.ae_title}: " + ", ".join(f"{n} {OUTCOME_WORDS.get(o, o)}" for o, n in counts.items()) + "."


# Whoever may upload a film for this patient may fetch one: clinicians of its site (administrators everywhere).
@permission_required("diagnosis.add_scan", raise_exception=True)
def prior_studies(request, patient_id):
    """GET asks the PACS for the patient's studies (C-FIND or QIDO-RS); POST fetches the chosen ones (C-MOVE or WADO-RS)."""
    patient = get_object_or_404(selectors.patients_visible_to(request.user).select_related("site"), pk=patient_id)
    node, studies, error = priors.node_for(patient), [], None
    key = SESSION_KEY.format(patient.pk)
    if request.method == "POST" and node is not None:
        form = RetrieveForm(request.POST, study_uids=request.session.get(key, []))
        if form.is_valid():
            try:
                for study_uid in form.cleaned_data["studies"]:
                    outcomes = priors.retrieve_study(actor=request.user, patient=patient, node=node, study_uid=study_uid, ip_address=client_ip(request))
                    messages.success(request, _summary(node, outcomes))
            except priors.PacsUnavailable as refusal:
                messages.error(request, str(refusal))
            return redirect("diagnosis:patient_detail", patient_id=patient.pk)
        error = " ".join(form.errors.get("studies", []))
    if node is not None:
        try:
            studies = priors.find_studies(actor=request.user, patient=patient, node=node, ip_address=client_ip(request))
        except priors.PacsUnavailable as refusal:
            error = str(refusal)
        request.session[key] = [study.uid for study in studies if study.may_hold_chest_films]
    context = {"patient": patient, "node": node, "studies": studies, "error": error}
    return render(request, "pacs/prior_studies.html", context, status=400 if error and request.method == "POST" else 200)
