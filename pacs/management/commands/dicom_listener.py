from django.core.management.base import BaseCommand

from pacs import listener


class Command(BaseCommand):
    help = "Receive studies from registered PACS and modalities over DICOM (C-STORE, C-ECHO)."

    def handle(self, *args, **options):
        listener.serve()
