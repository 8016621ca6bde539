from django.apps import AppConfig
from django.db.models.signals import post_migrate


class PacsConfig(AppConfig):
    name = "pacs"
    verbose_name = "PACS and DICOM"

    def ready(self):
        from diagnosis import roles, stored_files
        from diagnosis.inference import predictions_recorded

        from . import sends
        from .models import ReceivedInstance

        # The role groups are granted this app's permissions, which exist only once its own migrations ran.
        post_migrate.connect(roles.ensure_role_groups, sender=self)
        # A result of a film a node sent is queued to go back to it in the transaction that records it.
        predictions_recorded.connect(sends.queue_sends, dispatch_uid="pacs_queue_result_sends")
        # An unmatched instance's film is named by its row alone until a person files or dismisses it.
        stored_files.KEPT_BY_OTHER_APPS.append(lambda: ReceivedInstance.objects.exclude(stored_name="").values_list("stored_name", flat=True))
