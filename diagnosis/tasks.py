"""Celery tasks: each hands its message to one service."""
from celery import shared_task

from . import services


# acks_late keeps a message on Redis until the scan is analysed; on the filesystem broker the
# message is gone once read, and the job sweep (jobs.tasks.sweep_jobs) re-runs a scan whose worker died.
@shared_task(acks_late=True, reject_on_worker_lost=True, soft_time_limit=240, time_limit=300)
def run_inference(scan_id):
    services.analyse_scan(scan_id)
