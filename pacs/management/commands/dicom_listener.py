from django.core.management.base import BaseCommand

from pacs import listener
from portal.metrics_export import serve_in_background


class Command(BaseCommand):
    help = "Receive studies from registered PACS and modalities over DICOM (C-STORE, C-ECHO)."

    def handle(self, *args, **options):
        serve_in_background()  # instances received, at PORTAL_METRICS_BIND when set
        listener.serve()
