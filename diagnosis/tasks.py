"""Celery tasks: each hands its message to one service."""
from celery import shared_task
from celery.signals import worker_init

from ml import runtime

from . import services


@worker_init.connect
def share_cores_among_processes(sender=None, **kwargs):
    # In the parent, before the pool forks: each child then gives its runtime cores / concurrency threads.
    runtime.set_concurrency(getattr(sender, "concurrency", 1))


# acks_late keeps a message on Redis until the scan is analysed; on the filesystem broker the
# message is gone once read, and the job sweep (jobs.tasks.sweep_jobs) re-runs a scan whose worker died.
@shared_task(acks_late=True, reject_on_worker_lost=True, soft_time_limit=240, time_limit=300)
def run_inference(scan_id):
    services.analyse_scan(scan_id)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def run_site_remeasure(job_id):
    from .site_remeasure import execute_remeasure  # loads ml's services; the inference worker never runs it

    execute_remeasure(int(job_id))


@shared_task(acks_late=True, reject_on_worker_lost=True)
def run_site_precision_check(job_id):
    from .site_precision import execute_check  # loads two models; the inference worker never runs it

    execute_check(int(job_id))
