"""Beat runs sweep_jobs every 30 seconds (CELERY_BEAT_SCHEDULE)."""
import logging

from celery import shared_task

from . import lifecycle

logger = logging.getLogger(__name__)


@shared_task
def sweep_jobs():
    swept = lifecycle.sweep()
    return {"sent": len(swept.sent), "requeued": len(swept.requeued), "failed": len(swept.failed)}
