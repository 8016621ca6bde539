import re

from django import forms
from django.conf import settings

from ml.engine import BACKBONES, DEFAULT_BACKBONE
from ml.engine.data.splits import parse_source_names

from .models import TrainingJob
from .services.training import MAX_EPOCHS, MAX_IMAGE_SIZE


class TrainingJobForm(forms.Form):
    """Types only; whether the data and settings can be trained on is decided by start_training_job."""

    source = forms.ChoiceField(
        label="Data", choices=TrainingJob.Source.choices, initial=TrainingJob.Source.FOLDER, widget=forms.RadioSelect
    )
    dataset = forms.CharField(
        label="Dataset folder",
        required=False,
        max_length=500,
        help_text="A folder in the datasets folder with one sub-folder of images per class, e.g. covid/ and normal/.",
        widget=forms.TextInput(attrs={"list": "dataset-folders", "autocomplete": "off"}),
    )
    held_out_sources = forms.CharField(
        label="Hold out sources",
        required=False,
        max_length=500,
        help_text="Optional, comma-separated: sources named in the folder's details.csv origin column (a name or its start, "
                  "e.g. COVID-CXNet, NIH) whose films are kept out of training and measured apart afterwards: the "
                  "source-held-out test of the generalisation report.",
    )
    backbone = forms.ChoiceField(choices=[(name, name) for name in BACKBONES], initial=DEFAULT_BACKBONE)
    epochs = forms.IntegerField(min_value=1, max_value=MAX_EPOCHS, initial=10)
    image_size = forms.IntegerField(
        label="Image size (pixels)", min_value=32, max_value=MAX_IMAGE_SIZE, initial=299,
        help_text="Xception needs at least 71, InceptionV3 at least 75.",
    )
    batch_size = forms.IntegerField(min_value=1, max_value=512, initial=16)
    weights = forms.CharField(
        label="Starting weights",
        max_length=500,
        help_text="imagenet (when the training machine can download it), none (random), or the name of a file in the weights folder.",
        widget=forms.TextInput(attrs={"list": "weight-choices", "autocomplete": "off"}),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["weights"].initial = settings.ML_DEFAULT_WEIGHTS

    def clean_held_out_sources(self):
        return parse_source_names(self.cleaned_data["held_out_sources"])

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("source") == TrainingJob.Source.FOLDER and not cleaned.get("dataset"):
            self.add_error("dataset", "Choose a dataset folder.")
        return cleaned


class PromoteForm(forms.Form):
    reason = forms.CharField(
        required=False, max_length=500, label="Reason (kept in the promotion record)",
        widget=forms.TextInput(attrs={"placeholder": "e.g. better sensitivity on the evaluation set"}),
    )
    override = forms.BooleanField(
        required=False, label="Override the safeguards: I have read the concerns above and take responsibility (a reason is required)",
    )


class DerivationForm(forms.Form):
    """The int8 derivation's one option: the blocks (ml.engine.serve.blocks, "block1" to "block14"
    for Xception) its int8 model leaves in fp32, for a model whose whole network in int8 is refused
    (bench/precision_blocks.py says which). Whether each exists is the derivation's to say: it
    answers with the model's own block names."""

    keep_fp32 = forms.CharField(required=False, max_length=200)  # the field's markup is the version page's

    def clean_keep_fp32(self):
        names = [name.strip() for name in self.cleaned_data["keep_fp32"].split(",") if name.strip()]
        for name in names:
            if not re.fullmatch(r"[A-Za-z0-9 -]{1,40}", name):
                raise forms.ValidationError(f"“{name[:40]}” is not a block name: give names such as block1 or block14, separated by commas.")
        return list(dict.fromkeys(names))
