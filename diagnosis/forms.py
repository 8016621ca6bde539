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
    """The patient's details. `register_patient` decides the site and refuses a record number already
    used there; the site field is offered only to someone who registers at every site."""

    # Declared rather than listed in Meta.fields, so the form leaves the site and the unique record
    # number rule to the service instead of checking them a second time.
    site = forms.ModelChoiceField(queryset=Site.objects.all(), required=False)

    class Meta:
        model = Patient
        fields = ["medical_record_number", "family_name", "given_name", "date_of_birth", "sex"]
        widgets = {"date_of_birth": forms.DateInput(attrs={"type": "date"})}

    def __init__(self, *args, chooses_site=False, **kwargs):
        super().__init__(*args, **kwargs)
        if not chooses_site:
            del self.fields["site"]


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
