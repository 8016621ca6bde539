import os

from celery import Celery
from celery.signals import task_postrun, worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.local")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_postrun.connect
def close_stale_database_connections(**kwargs):
    """A worker keeps its database connection across tasks (CELERY_DB_REUSE_MAX); like a web
    request, each task ends by closing it if it broke or outlived CONN_MAX_AGE."""
    from django.db import close_old_connections

    close_old_connections()


@worker_ready.connect
def serve_metrics(**kwargs):
    """In the worker's main process, once its pool runs: what its children counted, at PORTAL_METRICS_BIND."""
    from .metrics_export import serve_in_background

    serve_in_background()
