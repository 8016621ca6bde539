from django.core.management.base import BaseCommand


class VersionOptionCommand(BaseCommand):
    """A command whose --version names a model version, not Django's version (which it replaces)."""

    def create_parser(self, prog_name, subcommand, **kwargs):
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)
