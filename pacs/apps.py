from django.apps import AppConfig
from django.db.models.signals import post_migrate


class PacsConfig(AppConfig):
    name = "pacs"
    verbose_name = "PACS and DICOM"

    def ready(self):
        from diagnosis import roles

        # The role groups are granted this app's permissions, which exist only once its own migrations ran.
        post_migrate.connect(roles.ensure_role_groups, sender=self)
