"""Celery tasks of the pacs app: each hands its message to one service."""
from celery import shared_task


# On the pacs queue (ResultSend.queue), served by `bin/portal pacs-worker`, which loads no TensorFlow.
# acks_late as the other jobs; a worker that dies mid-send leaves the job to the heartbeat sweep.
@shared_task(acks_late=True, reject_on_worker_lost=True, soft_time_limit=120, time_limit=150)
def send_result(send_id):
    from .sending import execute_send  # highdicom and the network libraries: loaded by the worker's first send only

    execute_send(int(send_id))
