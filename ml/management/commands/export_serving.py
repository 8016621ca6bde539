"""Export and validate a version's serving model from the shell (e.g. for a version registered
before serving exports existed). Runs here, never in a web request: it loads TensorFlow."""
from ml import services

from ._base import VersionOptionCommand


class Command(VersionOptionCommand):
    help = "Export a model version's OpenVINO serving model, check it against Keras, and record the result on the version."

    def add_arguments(self, parser):
        parser.add_argument("--version", type=int, required=True, help="The model version id.")
        parser.add_argument("--force", action="store_true", help="Export and validate again even if it was done before.")

    def handle(self, *args, version, force, **options):
        target = self.model_version(version)
        serving = services.prepare_serving(target, force=force)
        verdict = f"{serving.runtime} {serving.precision}" if serving.accepted else "refused; Keras serves"
        self.stdout.write(f"{target.label}: {verdict}. {serving.reason}")
