"""Results back into the PACS: a job per result and node (pacs.models.ResultSend) that sends the
result's Secondary Capture and SR (pacs.results) to the node its film came from.

The promise, on top of jobs.lifecycle's: a send is queued in the very transaction that records the
result, so it is never lost; it is tried again with a growing pause while the node cannot be
reached (the job goes back to the queue with `next_try_at`; the sweep leaves it there until then);
each object is marked sent the moment the node confirmed it, so a retry sends only what is left,
and a send that ended as sent is never claimed again. The objects' UIDs are fixed on the row: if a
worker dies after the PACS stored an object and before that was recorded, the retry stores the
same instance again, which a PACS keeps once.

A silent site's results are never sent (diagnosis.ai_visibility): none is queued for it, and one
queued before its site went back to silent is not sent."""
import io
import logging
from datetime import timedelta

import pydicom
from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from diagnosis import storage
from diagnosis.ai_visibility import withheld_sentence
from diagnosis.models import AuditEvent, Prediction, Site
from diagnosis.services import record_audit
from jobs import lifecycle
from ml import trust
from ml.engine import decode_image_bytes
from portal import metrics

from . import results, transport
from .models import ResultSend

logger = logging.getLogger(__name__)

SECONDARY_CAPTURE, STRUCTURED_REPORT = "Secondary Capture", "Structured Report"
INTERNAL_ERROR = "Making or sending the results failed because of an internal error; IT has the details in the worker log."


class NotToBeSent(Exception):
    """The results must not go to this node (any more): the send ends as not sent, with this sentence."""


def execute_send(send_id):
    """Run one queued send in this process; the send as it ended (or went back to wait), None when it was not queued."""
    send = lifecycle.claim(ResultSend, send_id)
    if send is None:
        return None
    with lifecycle.heartbeat(send):
        try:
            _send(send)
        except transport.NodeUnreachable as error:
            _try_again_later(send, str(error))
        except transport.ObjectRefused as error:
            lifecycle.finish(send, ResultSend.Status.FAILED, failure_reason=str(error))
        except NotToBeSent as error:
            lifecycle.finish(send, ResultSend.Status.CANCELLED, failure_reason=str(error))
        except Exception:
            logger.exception("Sending the results of prediction %s to %s failed", send.prediction_id, send.ae_title)
            lifecycle.finish(send, ResultSend.Status.FAILED, failure_reason=INTERNAL_ERROR)
        else:
            lifecycle.finish(send, ResultSend.Status.SENT, failure_reason="", last_error="")
    return ResultSend.objects.get(pk=send.pk)


def _send(send):
    prediction = Prediction.objects.select_related("scan__patient__site", "model_version").get(pk=send.prediction_id)
    scan, node = prediction.scan, send.node
    if scan.patient.site.mode != Site.Mode.LIVE:
        raise NotToBeSent(withheld_sentence(scan.patient.site))
    if node is None:
        raise NotToBeSent(f"The DICOM node {send.ae_title} was removed before the results were sent.")
    if not node.receives_results:
        raise NotToBeSent(f"The DICOM node {send.ae_title} no longer takes results.")
    # Through the storage API: the film may be in a bucket, not on this host's disk. Read once for
    # both the header and the pixels (a second GET of the whole film from a bucket otherwise).
    film = storage.read(scan.stored_name)
    header = pydicom.dcmread(io.BytesIO(film), stop_before_pixels=True)
    if not header.get("StudyInstanceUID"):
        raise transport.ObjectRefused("The film's header has no Study Instance UID: there is no study to put the results in.")
    facts, uids = result_facts(prediction), results.ObjectUids(send.series_instance_uid, send.sc_instance_uid, send.sr_instance_uid)
    objects = []
    if send.sc_sent_at is None:
        objects.append((SECONDARY_CAPTURE, results.secondary_capture(header, decode_image_bytes(film, min_side=1).pixels, _heatmap(prediction), facts, uids)))
    if send.sr_sent_at is None:
        objects.append((STRUCTURED_REPORT, results.structured_report(header, facts, uids)))
    transport.store(node, objects, lambda name, dataset: _stored(send, scan, node, name, dataset))


def result_facts(prediction):
    version = prediction.model_version
    notes = trust.result_trust(version)
    validation = notes["validation"]
    if validation:
        status = f"{'measured' if validation['caveat'] else 'validated'} on its {validation['described']}"
    else:
        status = "not validated on independent sources"
    return results.ResultFacts(
        positive=prediction.is_positive, probability=prediction.positive_probability, threshold=prediction.threshold,
        threshold_origin="site threshold" if prediction.site_threshold_id else "version threshold",
        version=version.label, validation=status, demo=version.trained_on_synthetic_data,
    )


def _heatmap(prediction):
    """The stored grey map (uint8), or None for a result without one (or an old blended overlay)."""
    if not (prediction.heatmap_name and prediction.heatmap_is_map):
        return None
    return storage.load_pixels(prediction.heatmap_name)


def _stored(send, scan, node, name, dataset):
    """The node confirmed one object: record it, with its audit row, before the next is sent."""
    field = "sc_sent_at" if name == SECONDARY_CAPTURE else "sr_sent_at"
    now = timezone.now()
    with transaction.atomic():
        ResultSend.objects.filter(pk=send.pk).update(**{field: now})
        setattr(send, field, now)
        record_audit(None, AuditEvent.Action.DICOM_SENT, patient=scan.patient, scan=scan, via="dicom", details={
            "ae_title": node.ae_title, "object": name, "sop_instance_uid": str(dataset.SOPInstanceUID),
            "study_instance_uid": str(dataset.StudyInstanceUID), "over": "STOW-RS" if node.dicomweb_url else "C-STORE",
        })
        metrics.dicom_object_sent(name)


def retry_delay(tries):
    """The pause before try number `tries` + 1: doubling from the first, never above the maximum."""
    return min(settings.PORTAL_PACS_RETRY_FIRST_SECONDS * 2 ** min(tries, 20), settings.PORTAL_PACS_RETRY_MAX_SECONDS)


def _try_again_later(send, reason):
    """Back to the queue until next_try_at, or failed once the node has been unreachable too long."""
    give_up_at = send.created_at + timedelta(hours=settings.PORTAL_PACS_GIVE_UP_HOURS)
    if timezone.now() >= give_up_at:
        lifecycle.finish(send, ResultSend.Status.FAILED,
                         failure_reason=f"{reason} Gave up after {settings.PORTAL_PACS_GIVE_UP_HOURS} hours of tries.")
        return
    delay = retry_delay(send.tries)
    next_try_at = timezone.now() + timedelta(seconds=delay)
    # attempts counts the claims a dying worker may cost (the sweep fails a job after
    # JOB_MAX_ATTEMPTS of them); an attempt that ended by finding the node down is not one.
    waiting = ResultSend.objects.filter(pk=send.pk, status=ResultSend.Status.RUNNING, attempts=send.attempts).update(
        status=ResultSend.Status.QUEUED, attempts=0, tries=F("tries") + 1, next_try_at=next_try_at, last_error=reason,
        enqueued_at=None, worker="")
    if not waiting:
        return
    logger.warning("Results of scan %s wait for %s until %s: %s", send.prediction_id, send.ae_title, next_try_at, reason)
    try:
        current_app.send_task(ResultSend.task_name, args=[str(send.pk)], queue=ResultSend.queue, countdown=delay)
    except Exception:
        logger.warning("Broker unavailable; send %s waits for the sweep", send.pk, exc_info=True)
        return
    # Handed to the broker for next_try_at: the sweep sends it again only if nobody took it by then.
    ResultSend.objects.filter(pk=send.pk, status=ResultSend.Status.QUEUED).update(enqueued_at=next_try_at)
