from django.apps import AppConfig
from django.db.models.signals import post_migrate


class DiagnosisConfig(AppConfig):
    name = "diagnosis"
    verbose_name = "Clinical"

    def ready(self):
        from . import roles
        from . import signals  # noqa: F401  (connects the token revocation and lockout audit receivers)

        post_migrate.connect(roles.ensure_role_groups, sender=self)
