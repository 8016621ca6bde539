"""Derive the int8 version of a model version from the shell: NNCF quantises its validated OpenVINO
export on its training images, the result is checked against Keras, and only if it keeps the AUC
and the labels (and is faster) is it registered, as a new candidate version. Loads TensorFlow."""
from django.core.management.base import BaseCommand, CommandError

from ml import services
from ml.models import ModelVersion


class Command(BaseCommand):
    help = "Quantise a model version's serving model to int8 and, if it passes the check against Keras, register it as a new candidate version."

    def add_arguments(self, parser):
        parser.add_argument("version", help="The model version, as its label (v3) or id (3).")
        parser.add_argument("--keep-fp32", default="", help="Backbone blocks to keep in fp32, comma-separated (e.g. block2,block14): "
                            "the ones bench/precision_blocks.py found to move the probability most.")

    def handle(self, *args, version, keep_fp32="", **options):
        number = version.lower().removeprefix("v")
        parent = ModelVersion.objects.filter(pk=int(number)).first() if number.isdigit() else None
        if parent is None:
            raise CommandError(f"Model version {version} does not exist.")
        try:
            derived = services.derive_int8(parent, keep_fp32=[block.strip() for block in keep_fp32.split(",") if block.strip()])
        except services.DerivationRefused as refusal:
            raise CommandError(str(refusal)) from None
        check = derived.record["int8_check"]
        self.stdout.write(
            f"{derived.label}: int8 version of {parent.label}, registered as a candidate (not promoted). "
            f"Calibrated on {derived.record['calibrated_on']}; on {check['validated_on']}: AUC {check['auc_keras']:.4f} (Keras) -> "
            f"{check['auc_int8']:.4f} (int8), {check['flip_fraction']:.1%} labels flipped, "
            f"{check['seconds_int8']:.3f} s against {check['seconds_fp32']:.3f} s for fp32. "
            f"Evaluate it before promoting it, as any version."
        )
