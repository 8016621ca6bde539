from django import forms

from .models import Patient, Site


class MultipleImageInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleImageField(forms.FileField):
    widget = MultipleImageInput

    def clean(self, data, initial=None):
        files = data if isinstance(data, (list, tuple)) else [data]
        return [file for file in files if file]


class PatientForm(forms.ModelForm):
    class Meta:
        model = Patient
        fields = ["medical_record_number", "family_name", "given_name", "date_of_birth", "sex", "site"]
        widgets = {"date_of_birth": forms.DateInput(attrs={"type": "date"})}

    def __init__(self, *args, fixed_site=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fixed_site = fixed_site
        if fixed_site is not None:
            # Clinicians register patients at their own site only.
            del self.fields["site"]
        else:
            self.fields["site"].queryset = Site.objects.all()

    def clean(self):
        cleaned = super().clean()
        site = self.fixed_site or cleaned.get("site")
        mrn = (cleaned.get("medical_record_number") or "").strip()
        if site and mrn and Patient.objects.filter(site=site, medical_record_number__iexact=mrn).exists():
            self.add_error("medical_record_number", f"A patient with medical record number {mrn} is already registered at {site}.")
        return cleaned


class ScanUploadForm(forms.Form):
    images = MultipleImageField(
        label="Chest X-ray images (PNG, JPEG or DICOM)",
        required=False,
        widget=MultipleImageInput(attrs={"accept": ".png,.jpg,.jpeg,.dcm,image/png,image/jpeg,application/dicom"}),
    )


class ReviewForm(forms.Form):
    agrees = forms.TypedChoiceField(
        choices=[("yes", "I agree with the AI result"), ("no", "I disagree with the AI result")],
        coerce=lambda value: value == "yes",
        widget=forms.RadioSelect,
    )
    note = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))
