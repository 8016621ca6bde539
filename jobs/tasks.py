"""Beat runs sweep_jobs every 30 seconds (CELERY_BEAT_SCHEDULE)."""
from celery import shared_task

from . import lifecycle


@shared_task
def sweep_jobs():
    swept = lifecycle.sweep()
    return {"sent": len(swept.sent), "requeued": len(swept.requeued), "failed": len(swept.failed)}
