from django.core.management.base import BaseCommand, CommandError

from ml import selectors
from ml.models import ModelVersion


class VersionOptionCommand(BaseCommand):
    """A command whose --version names a model version, not Django's version (which it replaces)."""

    def create_parser(self, prog_name, subcommand, **kwargs):
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def model_version(self, version):
        """The version --version names (the active one when it names none), or a CommandError in words."""
        try:
            return ModelVersion.objects.get(pk=version) if version is not None else selectors.active_version()
        except ModelVersion.DoesNotExist:
            raise CommandError(f"Model version {version} does not exist.") from None
        except selectors.NoActiveModelVersion as error:
            raise CommandError(str(error)) from error
