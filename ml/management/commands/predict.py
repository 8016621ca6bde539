"""Classify image files with one model version: one JSON line per image, as the worker would answer."""
import json

from django.core.management.base import CommandError

from ml import services

from ._base import VersionOptionCommand


class Command(VersionOptionCommand):
    help = "Predict with a model version (default: the active one); prints one JSON line per image (PNG, JPEG or DICOM)."

    def add_arguments(self, parser):
        parser.add_argument("--version", type=int, default=None, help="Model version id (default: the active version).")
        parser.add_argument("images", nargs="+", metavar="IMAGE")

    def handle(self, *args, version, images, **options):
        model_version = self.model_version(version)
        failures = 0
        for result in services.predict_files(model_version, images):
            failures += "error" in result
            self.stdout.write(json.dumps(result, sort_keys=True))
        if failures:
            raise CommandError(f"{failures} of {len(images)} images could not be read.")
