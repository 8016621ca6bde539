"""Claim, heartbeat, finish, enqueue and sweep: the whole life of every background job.

The promise: a job that was accepted is never lost and never finished twice. The broker may be
down when it is enqueued (it stays queued; the sweep sends it), and a worker may die mid-job
(its heartbeat stops; the sweep puts it back in the queue, or fails it after
JOB_MAX_ATTEMPTS). A message delivered twice is harmless: only a queued job can be claimed,
and only the attempt that claimed a job can finish it.
"""
import functools
import logging
import operator
import os
import socket
import threading
import time
import traceback
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

from celery import current_app
from django.apps import apps
from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from portal import metrics

from .models import Job

logger = logging.getLogger(__name__)


def job_models():
    """Every concrete job model of the installed apps."""
    return [model for model in apps.get_models() if issubclass(model, Job)]


def claim(model, job_id):
    """Start a queued job in this process and return it; None when it is not queued (finished,
    cancelled, already running elsewhere, or gone), so a duplicate delivery does nothing.

    One conditional UPDATE: a claim racing another waits for that one's row lock, then finds the
    job no longer queued; a duplicate delivery writes nothing, so it does not wait for a commit to
    reach the disk (under a backlog most messages find their scan already claimed in a batch).
    From that UPDATE on the row is this attempt's: only the sweep (a minute without heartbeat) or a
    cancellation changes a running job, so reading it back gives this attempt."""
    if not model.objects.filter(pk=job_id, status=model.Status.QUEUED).update(attempts=F("attempts") + 1, **_claimed_fields(model)):
        return None
    return model.objects.get(pk=job_id)


def claim_queued(jobs, limit):
    """Start up to `limit` of the queued jobs in `jobs` (a queryset, taken in its order) in this
    process, all in one transaction (one commit, not one per job); returns them. A job whose row
    another transaction holds at this moment (another worker claiming it, or the sender stamping
    enqueued_at) is skipped, not waited for: its own message still claims it."""
    model = jobs.model
    with transaction.atomic():
        picked = list(jobs.filter(status=model.Status.QUEUED).select_for_update(skip_locked=True, of=("self",))[:limit])
        if not picked:
            return []
        fields = _claimed_fields(model)
        model.objects.filter(pk__in=[job.pk for job in picked]).update(attempts=F("attempts") + 1, **fields)
    for job in picked:
        job.attempts += 1
        for name, value in fields.items():
            setattr(job, name, value)
    return picked


def _claimed_fields(model):
    now = timezone.now()
    return {"status": model.Status.RUNNING, "started_at": now, "heartbeat_at": now, "worker": f"{socket.gethostname()}:{os.getpid()}"}


def finish(job, status, **fields):
    """End the attempt this process claimed. False when the row moved on meanwhile (cancelled, or
    the sweep gave it to another worker), so two endings never overwrite each other."""
    return bool(finish_all([job], status, **fields))


def run_to_end(model, job_id, work, *, refusals=(), unexpected_fails=True):
    """Claim a queued job, run `work(job)` under its heartbeat and finish it: succeeded with the
    fields `work` returns, failed with the sentence of an expected refusal (`refusals`), or with
    the type and message of anything else (its traceback in the log; with `unexpected_fails`
    False it is raised instead, for the sweep to retry). The claimed job, or None when it was not
    queued (a duplicate delivery). Evaluations, derivations and site re-measures end this way."""
    job = claim(model, job_id)
    if job is None:
        return None
    with heartbeat(job):
        try:
            fields = work(job)
        except refusals as refusal:
            finish(job, Job.Status.FAILED, failure_reason=str(refusal))
        except Exception as error:
            if not unexpected_fails:
                raise
            logger.error("%s %s failed:\n%s", model.__name__, job.pk, traceback.format_exc())
            finish(job, Job.Status.FAILED, failure_reason=f"{type(error).__name__}: {error}"[:2000])
        else:
            finish(job, Job.Status.SUCCEEDED, **fields)
    return job


def finish_all(jobs, status, **fields):
    """End the attempts this process claimed of jobs of one model, in two queries whatever their
    number; returns the jobs it still owned (status and finished_at set on them), leaving out those
    whose row moved on meanwhile. `fields` may be expressions (Case) to set a value per job.

    One conditional UPDATE ends exactly the attempts still running; the rows it wrote are then
    found by their attempt and its finished_at stamp, which no other attempt can have written (the
    UPDATE's row locks hold until the caller's transaction commits)."""
    if not jobs:
        return []
    model = type(jobs[0])
    attempts = functools.reduce(operator.or_, (Q(pk=job.pk, attempts=job.attempts) for job in jobs))
    finished_at = timezone.now()
    with transaction.atomic(savepoint=False):  # inside the caller's transaction, no savepoint to set and release
        model.objects.filter(attempts, status=model.Status.RUNNING).update(status=status, finished_at=finished_at, **fields)
        ended = set(model.objects.filter(attempts, status=status, finished_at=finished_at).values_list("pk", flat=True))
    owned = [job for job in jobs if job.pk in ended]
    for job in owned:
        job.status, job.finished_at = status, finished_at
    metrics.jobs_finished(model, status, len(owned))
    return owned


def retry_later(job, reason):
    """Give back the attempt this process claimed when something outside the job failed it (the
    file store did not answer): queued again without enqueued_at, so the next sweep (every 30 s)
    sends it to any worker; after JOB_MAX_ATTEMPTS it fails with the reason instead of looping.
    True when it was queued again."""
    model = type(job)
    if job.attempts >= settings.JOB_MAX_ATTEMPTS:
        finish(job, model.Status.FAILED, failure_reason=f"{reason} It was tried {job.attempts} times.")
        return False
    this_attempt = model.objects.filter(pk=job.pk, status=model.Status.RUNNING, attempts=job.attempts)
    return bool(this_attempt.update(status=model.Status.QUEUED, enqueued_at=None))


def send(model, job_ids):
    """Hand queued jobs to the broker now; returns the ids it accepted. A job the broker refused
    stays queued without enqueued_at, and the sweep tries again."""
    sent = []
    for job_id in job_ids:
        try:
            current_app.send_task(model.task_name, args=[str(job_id)], queue=model.queue)
        except Exception:
            logger.warning("Broker unavailable; %s %s stays queued for the sweep", model._meta.verbose_name, job_id, exc_info=True)
            continue
        model.objects.filter(pk=job_id, status=model.Status.QUEUED).update(enqueued_at=timezone.now())
        sent.append(job_id)
    return sent


def enqueue_on_commit(*jobs):
    """Send the jobs once the transaction that created them commits, so a worker never looks for
    a row that is not there yet (and nothing is sent for a rolled-back one)."""
    by_model = {}
    for job in jobs:
        by_model.setdefault(type(job), []).append(job.pk)
    for model, job_ids in by_model.items():
        transaction.on_commit(lambda model=model, job_ids=job_ids: send(model, job_ids))


# --- the sweep ------------------------------------------------------------------------------

@dataclass
class Swept:
    sent: list = field(default_factory=list)  # jobs handed to the broker (again)
    requeued: list = field(default_factory=list)  # running jobs whose worker went silent, put back in the queue
    failed: list = field(default_factory=list)  # running jobs whose worker went silent once too often


def sweep():
    """One pass over every kind of job; beat runs it every 30 seconds."""
    swept = Swept()
    for model in job_models():
        _sweep_abandoned(model, swept)
        _sweep_unsent(model, swept)
    if swept.sent or swept.failed:
        logger.warning("Job sweep: sent %s, of which requeued %s; failed %s", swept.sent, swept.requeued, swept.failed)
    return swept


def _sweep_abandoned(model, swept):
    limit = settings.JOB_HEARTBEAT_TIMEOUT
    for job in model.objects.filter(status=model.Status.RUNNING, heartbeat_at__lt=timezone.now() - limit):
        if job.attempts < settings.JOB_MAX_ATTEMPTS:
            still_silent = model.objects.filter(pk=job.pk, status=model.Status.RUNNING, attempts=job.attempts)
            if still_silent.update(status=model.Status.QUEUED, enqueued_at=None):
                swept.requeued.append(job)
        else:
            reason = (
                f"The worker {job.worker} stopped responding: no heartbeat since "
                f"{timezone.localtime(job.heartbeat_at):%Y-%m-%d %H:%M:%S} (limit {int(limit.total_seconds())} s), "
                f"after {job.attempts} attempt(s). It was probably killed or lost its machine."
            )
            if finish(job, model.Status.FAILED, failure_reason=reason):
                swept.failed.append(job)


def _sweep_unsent(model, swept):
    """Queued jobs the broker never accepted, or accepted long ago without any worker taking them
    (the filesystem broker drops a message whose worker died while reading it)."""
    stale = timezone.now() - settings.JOB_REQUEUE_AFTER
    queued = model.objects.filter(model.due(), status=model.Status.QUEUED).filter(Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=stale))
    sent = set(send(model, list(queued.values_list("pk", flat=True))))
    swept.sent += [job for job in model.objects.filter(pk__in=sent)]


# --- the heartbeat ---------------------------------------------------------------------------

_lock = threading.Lock()
_beating = {}  # (model, pk, attempts) -> callback(still_running) or None: the jobs this process runs
_thread = None


@contextmanager
def heartbeat(job, on_beat=None):
    """While the block runs, this process stamps the job's heartbeat_at every
    JOB_HEARTBEAT_SECONDS, from a thread of its own, and calls `on_beat(still_running)` after each
    stamp; still_running is False once the row is no longer this attempt's (cancelled, or swept)."""
    global _thread
    key = (type(job), job.pk, job.attempts)
    with _lock:
        _beating[key] = on_beat
        # A beat thread that died (an error it could not survive) is replaced, or no job of this
        # process would beat again and the sweep would re-run every one of them.
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_beat_until_idle, name="job-heartbeat", daemon=True)
            _thread.start()
    try:
        yield
    finally:
        with _lock:
            _beating.pop(key, None)


def heartbeats(jobs):
    """heartbeat() for each of `jobs` (a batch claimed together), until the returned stack is closed
    or its block ends."""
    beating = ExitStack()
    for job in jobs:
        beating.enter_context(heartbeat(job))
    return beating


def _beat_until_idle():
    """One thread per process beats for all its running jobs, and ends when there are none."""
    global _thread
    try:
        while True:
            time.sleep(settings.JOB_HEARTBEAT_SECONDS)
            with _lock:
                if not _beating:
                    _thread = None
                    return
                beating = dict(_beating)
            for (model, job_id, attempts), on_beat in beating.items():
                _beat(model, job_id, attempts, on_beat)
    finally:
        connection.close()


def _beat(model, job_id, attempts, on_beat):
    try:
        still_running = bool(
            model.objects.filter(pk=job_id, status=model.Status.RUNNING, attempts=attempts).update(heartbeat_at=timezone.now())
        )
        if on_beat is not None:
            on_beat(still_running)
    except Exception:
        # A locked or briefly unreachable database must not end the job; try again next beat.
        logger.warning("Heartbeat of %s %s failed", model._meta.verbose_name, job_id, exc_info=True)
        close_old_connections()


class AlreadyUnderway(Exception):
    """A second request for work already queued or running (two clicks, two tabs): the message says
    which job, and `job` is it."""

    def __init__(self, message, job):
        super().__init__(message)
        self.job = job


def underway(jobs):
    """The first queued or running job among `jobs` (a queryset of one job model), or None."""
    return jobs.filter(status__in=[jobs.model.Status.QUEUED, jobs.model.Status.RUNNING]).order_by("pk").first()
