"""Results back into the PACS: a job per result and node (pacs.models.ResultSend) that sends the
result's Secondary Capture and SR (pacs.results) to the node its film came from.

The promise, on top of jobs.lifecycle's: a send is queued in the very transaction that records the
result, so it is never lost; it is tried again with a growing pause while the node cannot be
reached (the job goes back to the queue with `next_try_at`; the sweep leaves it there until then);
each object is marked sent the moment the node confirmed it, so a retry sends only what is left,
and a send that ended as sent is never claimed again. The objects' UIDs are fixed on the row: if a
worker dies after the PACS stored an object and before that was recorded, the retry stores the
same instance again, which a PACS keeps once. The sends run on their own worker (`bin/portal
pacs-worker`, queue "pacs"); one that finds other sends due to the same node claims them too
(jobs.lifecycle.claim_queued) and stores all their objects over one association, each send still
marked object by object and finished on its own.

A silent site's results are never sent (diagnosis.ai_visibility): none is queued for it, and one
queued before its site went back to silent is not sent."""
import dataclasses
import io
import logging
from datetime import timedelta

import pydicom
from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from pydicom.uid import ComprehensiveSRStorage, SecondaryCaptureImageStorage

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
PARTLY_SENT = ("The {stored} is in the PACS, but making the {name} failed because of an internal error; IT has the details "
               "in the worker log.")


class NotToBeSent(Exception):
    """The results must not go to this node (any more): the send ends as not sent, with this sentence."""


def execute_send(send_id):
    """Run one queued send in this process, with the other sends due to the same node (up to
    PORTAL_PACS_SENDS_PER_ASSOCIATION in all) over one association; the send as it ended (or went
    back to wait), None when it was not queued. Each of them ends on its own: a refused object
    fails its send only, and the others go on."""
    send = lifecycle.claim(ResultSend, send_id)
    if send is None:
        return None
    sends = [send, *_claim_more_for(send)]
    with lifecycle.heartbeats(sends):
        _send_together(sends)
    return ResultSend.objects.get(pk=send.pk)


def _claim_more_for(send):
    """The other sends due to the same node, oldest first; their own messages then claim nothing."""
    more = settings.PORTAL_PACS_SENDS_PER_ASSOCIATION - 1
    if send.node_id is None or more < 1:
        return []
    due = ResultSend.objects.filter(ResultSend.due(), node_id=send.node_id).exclude(pk=send.pk).order_by("created_at")
    return lifecycle.claim_queued(due, more)


def _send_together(sends):
    ready = []  # (send, scan, its objects still to store)
    for send in sends:
        try:
            scan, objects = _objects_of(send)
        except Exception as error:
            _end_with(send, error)
            continue
        if objects:
            ready.append((send, scan, objects))
        else:
            lifecycle.finish(send, ResultSend.Status.SENT, failure_reason="", last_error="")
    while ready:
        ready = _store(ready)


def _store(ready):
    """Store the objects of the `ready` sends over one association, each made just before its
    C-STORE and each send finished as soon as the node confirmed its last object; returns the sends
    still to store: those after an object the node refused (that object's send fails), to go over a
    new association. Empty otherwise. An object that cannot be made ends its own send only (the
    objects of it already stored stay recorded as stored), and the others go on."""
    node = ready[0][0].node
    owner = {each.sop_instance_uid: (send, scan) for send, scan, objects in ready for each in objects}
    left = {send.pk: len(objects) for send, _, objects in ready}
    done = set()  # the UIDs stored, or left out because their send ended
    ended = set()  # the sends ended on the way: an object of theirs could not be made

    def on_stored(name, dataset):
        send, scan = owner[str(dataset.SOPInstanceUID)]
        _stored(send, scan, node, name, dataset)
        done.add(str(dataset.SOPInstanceUID))
        left[send.pk] -= 1
        if not left[send.pk]:
            lifecycle.finish(send, ResultSend.Status.SENT, failure_reason="", last_error="")

    def made_for(send, each):
        def make():
            if send.pk not in ended:
                try:
                    return each.make()
                except Exception as error:
                    ended.add(send.pk)
                    _end_with(send, _NotMade(each.name, send, error))
            done.add(each.sop_instance_uid)
            return None
        return dataclasses.replace(each, make=make)

    try:
        transport.store(node, [made_for(send, each) for send, _, objects in ready for each in objects], on_stored)
    except transport.NodeUnreachable as error:
        found_down_at = timezone.now()  # one time for all: sends with the same tries come due together again
        for send, _, _ in ready:
            if left[send.pk] and send.pk not in ended:
                _try_again_later(send, str(error), found_down_at)
    except transport.ObjectRefused as error:
        refused = next(send for send, _, objects in ready for each in objects if each.sop_instance_uid not in done)
        _end_with(refused, error)
        return [(send, scan, [each for each in objects if each.sop_instance_uid not in done])
                for send, scan, objects in ready if left[send.pk] and send is not refused and send.pk not in ended]
    except Exception as error:
        for send, _, _ in ready:
            if left[send.pk] and send.pk not in ended:
                _end_with(send, error)
    return []


class _NotMade(Exception):
    """An object of a send could not be made (an internal error), perhaps after others of it were
    stored: those stay recorded as stored, and a send of the same row later sends only the rest."""

    def __init__(self, name, send, error):
        super().__init__(f"Making the {name} failed")
        self.name, self.error = name, error
        self.stored = [other for other, at in ((STRUCTURED_REPORT, send.sr_sent_at), (SECONDARY_CAPTURE, send.sc_sent_at)) if at]


def _end_with(send, error):
    """End a send that could not be made or stored, with the sentence its error calls for."""
    if isinstance(error, NotToBeSent):
        lifecycle.finish(send, ResultSend.Status.CANCELLED, failure_reason=str(error))
    elif isinstance(error, transport.ObjectRefused):
        lifecycle.finish(send, ResultSend.Status.FAILED, failure_reason=str(error))
    elif isinstance(error, _NotMade):
        logger.error("Making the %s of prediction %s for %s failed", error.name, send.prediction_id, send.ae_title, exc_info=error.error)
        reason = PARTLY_SENT.format(stored=" and the ".join(error.stored), name=error.name) if error.stored else INTERNAL_ERROR
        lifecycle.finish(send, ResultSend.Status.FAILED, failure_reason=reason)
    else:
        logger.error("Sending the results of prediction %s to %s failed", send.prediction_id, send.ae_title, exc_info=error)
        lifecycle.finish(send, ResultSend.Status.FAILED, failure_reason=INTERNAL_ERROR)


def _objects_of(send):
    """(the scan, a transport.Outgoing for each object of the send not stored yet)."""
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
    # The SR first: it is the result itself (finding, probability, threshold, version), a few kB
    # that reporting systems read. The 3.5 MB picture is made only once the SR is stored (the
    # film's decode and the capture, about 50 ms) and follows over the same association.
    objects = []
    if send.sr_sent_at is None:
        objects.append(transport.Outgoing(STRUCTURED_REPORT, ComprehensiveSRStorage, uids.structured_report,
                                          lambda: results.structured_report(header, facts, uids)))
    if send.sc_sent_at is None:
        objects.append(transport.Outgoing(SECONDARY_CAPTURE, SecondaryCaptureImageStorage, uids.secondary_capture, lambda: results.secondary_capture(
            header, decode_image_bytes(film, min_side=1).pixels, _heatmap(prediction), facts, uids)))
    return scan, objects


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


def _try_again_later(send, reason, found_down_at):
    """Back to the queue until next_try_at, or failed once the node has been unreachable too long."""
    give_up_at = send.created_at + timedelta(hours=settings.PORTAL_PACS_GIVE_UP_HOURS)
    if found_down_at >= give_up_at:
        lifecycle.finish(send, ResultSend.Status.FAILED,
                         failure_reason=f"{reason} Gave up after {settings.PORTAL_PACS_GIVE_UP_HOURS} hours of tries.")
        return
    delay = retry_delay(send.tries)
    next_try_at = found_down_at + timedelta(seconds=delay)
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
