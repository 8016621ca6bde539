"""Remove stored files (films, heatmaps) that no scan or result names: diagnosis.stored_files."""
from datetime import timedelta

from django.core.management.base import BaseCommand

from diagnosis.stored_files import GRACE, sweep_unreferenced


class Command(BaseCommand):
    help = "Delete stored films and heatmaps that no scan or result names, once older than --grace-minutes (an upload may be committing)."

    def add_arguments(self, parser):
        parser.add_argument("--grace-minutes", type=float, default=GRACE.total_seconds() / 60)

    def handle(self, *args, grace_minutes, **options):
        swept = sweep_unreferenced(timedelta(minutes=grace_minutes))
        self.stdout.write(f"Swept {len(swept)} stored file(s) that no scan or result names.")
