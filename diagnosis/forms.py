from django import forms

from .models import AuditEvent, Patient, Review, Site
from .query_params import sane_date


class MultipleImageInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleImageField(forms.FileField):
    widget = MultipleImageInput

    def clean(self, data, initial=None):
        files = data if isinstance(data, (list, tuple)) else [data]
        return [file for file in files if file]


class PatientForm(forms.ModelForm):
    """The patient's details. `register_patient` decides the site and refuses a record number already
    used there; the site field is offered only to someone who registers at every site."""

    # Declared rather than listed in Meta.fields, so the form leaves the site and the unique record
    # number rule to the service instead of checking them a second time.
    site = forms.ModelChoiceField(queryset=Site.objects.all(), required=False)

    class Meta:
        model = Patient
        fields = ["medical_record_number", "family_name", "given_name", "date_of_birth", "sex"]
        # An <input type="date"> takes ISO dates only: a localised one would show an empty field.
        widgets = {"date_of_birth": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")}

    def __init__(self, *args, chooses_site=False, **kwargs):
        super().__init__(*args, **kwargs)
        if not chooses_site:
            del self.fields["site"]


class IdentityConfirmationForm(forms.Form):
    """A header naming someone other than the chosen patient is filed under them only when the
    person confirms and writes why (scan_intake.validate_uploads): the upload page and the filing
    of an unmatched DICOM instance (pacs) ask it the same way."""

    confirm_identity_mismatch = forms.BooleanField(required=False, label="This X-ray belongs to this patient although its header names another person")
    identity_mismatch_reason = forms.CharField(
        required=False, max_length=500, label="Reason (kept in the audit trail)", widget=forms.TextInput(attrs={"size": 50}),
    )

    def confirmation(self):
        return {name: self.cleaned_data.get(name) for name in ("confirm_identity_mismatch", "identity_mismatch_reason")}


class ScanUploadForm(IdentityConfirmationForm):
    images = MultipleImageField(
        label="Chest X-ray images (PNG, JPEG or DICOM)",
        required=False,
        widget=MultipleImageInput(attrs={"accept": ".png,.jpg,.jpeg,.dcm,image/png,image/jpeg,application/dicom"}),
    )
    # The confirmation fields are shown only with an identity refusal.
    field_order = ["images"]


class ReviewForm(forms.Form):
    finding = forms.ChoiceField(choices=Review.Finding.choices, widget=forms.RadioSelect)
    agrees = forms.TypedChoiceField(
        choices=[("yes", "I agree with the AI result"), ("no", "I disagree with the AI result")],
        coerce=lambda value: value == "yes",
        widget=forms.RadioSelect,
    )
    note = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args, blind=False, **kwargs):
        super().__init__(*args, **kwargs)
        if blind:  # a blind read (ai_visibility): the reader never saw the AI result, so cannot agree with it
            del self.fields["agrees"]


class ScanMoveForm(forms.Form):
    """Where a wrongly filed scan belongs: the right patient's record number (looked up among the
    patients the user may see) and why."""

    medical_record_number = forms.CharField(max_length=64, label="Right patient's medical record number")
    reason = forms.CharField(max_length=500, label="Reason")


class DateRangeForm(forms.Form):
    """Filters with a `date_from` and a `date_to`: a range that ends before it starts is a sentence."""

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("date_from") and cleaned.get("date_to") and cleaned["date_from"] > cleaned["date_to"]:
            raise forms.ValidationError("The “from” date is after the “to” date.")
        return cleaned


class WorklistFilterForm(DateRangeForm):
    """The worklist's filters, read from the query string; every field may be left empty."""

    status = forms.ChoiceField(
        required=False,
        choices=[("", "Any status"), ("queued", "Waiting"), ("processing", "Analysing"), ("done", "Done"), ("failed", "Failed")],
    )
    result = forms.ChoiceField(required=False, choices=[("", "Any result"), ("positive", "Likely positive"), ("negative", "Negative")])
    review = forms.ChoiceField(
        required=False,
        choices=[("", "Reviewed or not"), ("unreviewed", "Unreviewed"), ("reviewed", "Reviewed"), ("disagreed", "AI and clinician disagree")],
    )
    date_from = forms.DateField(required=False, label="Uploaded from", validators=[sane_date], widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, label="Uploaded to", validators=[sane_date], widget=forms.DateInput(attrs={"type": "date"}))
    site = forms.ModelChoiceField(queryset=Site.objects.all(), required=False, empty_label="Every site")

    def __init__(self, *args, chooses_site=False, reads_blind=False, **kwargs):
        super().__init__(*args, **kwargs)
        if not chooses_site:
            del self.fields["site"]
        if reads_blind:  # a silent period: neither the AI result nor a disagreement with it may be a filter (they would tell it)
            del self.fields["result"]
            self.fields["review"].choices = [choice for choice in self.fields["review"].choices if choice[0] != "disagreed"]

    def filters(self):
        """The valid filters as keyword arguments for `selectors.worklist`; an invalid one is dropped
        (and shown as an error) rather than emptying the list."""
        if not self.is_valid() and self.non_field_errors():
            return {}
        return {name: value for name, value in self.cleaned_data.items() if value}


class AuditFilterForm(DateRangeForm):
    """The audit trail's filters (query string); every field may be left empty."""

    user = forms.CharField(required=False, max_length=150, label="User name")
    action = forms.ChoiceField(required=False, choices=[("", "Any action"), *AuditEvent.Action.choices])
    patient = forms.CharField(required=False, max_length=64, label="Patient (record number or id)")
    date_from = forms.DateField(required=False, label="From", validators=[sane_date], widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, label="To", validators=[sane_date], widget=forms.DateInput(attrs={"type": "date"}))

    def filters(self):
        """Keyword arguments for `selectors.audit_trail`; None when a filter is invalid, so that a
        mistyped filter never shows (or exports) the whole trail."""
        if not self.is_valid():
            return None
        return {name: value for name, value in self.cleaned_data.items() if value}


class AccountForm(forms.Form):
    """An account's site and role, and whether it may sign in. The roles offered are those the
    administrator may give (staff.grantable_roles)."""

    site = forms.ModelChoiceField(queryset=Site.objects.all(), empty_label=None)
    role = forms.ChoiceField()
    is_active = forms.BooleanField(required=False, initial=True, label="Active (may sign in)")

    def __init__(self, *args, grantable_roles=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = [(name, name.removesuffix("s")) for name in grantable_roles]


class NewAccountForm(AccountForm):
    """The one screen that makes an account: who, where, which role (a new account is active)."""

    username = forms.RegexField(regex=r"^[\w.@+-]+$", max_length=150, help_text="Letters, digits and @ . + - _ only.",
                                error_messages={"invalid": "A username may hold only letters, digits and @ . + - _."})
    first_name = forms.CharField(max_length=150, label="Given name")
    last_name = forms.CharField(max_length=150, label="Family name")
    email = forms.EmailField(required=False)
    field_order = ["username", "first_name", "last_name", "email", "site", "role"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        del self.fields["is_active"]
