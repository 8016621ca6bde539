"""The inference write path: claim queued scans, run the active model once for all of them, and
record each answer with the version, runtime and heatmap that made it. Its own module because it
is the worker's side of the clinical services (re-exported by `diagnosis.services`)."""
import functools
import io
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

from PIL import Image

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import prefetch_related_objects
from django.utils import timezone

from jobs import lifecycle
from ml import runtime
from ml.engine.images import ImageDecodeError, load_image_file
from ml.selectors import NoActiveModelVersion, active_version_or_none

from . import site_thresholds, storage
from .models import Prediction, Scan

logger = logging.getLogger(__name__)


# A task drains a backlog for at most this long, then leaves the rest to the next message: well
# inside the task's time limits, and a worker being stopped finishes its task soon.
DRAIN_SECONDS = 30


def analyse_scan(scan_id):
    """Run the active model on a queued scan and record its answer: the inference worker's whole job.

    Under a backlog it also takes up to INFERENCE_BATCH_SIZE - 1 other queued scans (oldest first)
    and predicts them all in one call; a lone scan is analysed at once, never waiting for company.
    While a full batch goes on, three are in flight: the forward pass of one runs in its own thread
    (it releases the GIL), the next is claimed and its films read and prepared in threads, and the
    answers of the one before are written; so the cores are never left to one Python thread between
    passes. This goes on until a batch is not full, DRAIN_SECONDS have passed or another version was
    made active. Each extra scan is claimed exactly as its own message would claim it, so that
    message later finds it taken and does nothing, and a worker dying mid-batch leaves every claimed
    scan to the heartbeat sweep. A scan that is not queued (already done, or taken by another
    worker) is left alone."""
    scan = lifecycle.claim(Scan, scan_id)
    if scan is None:
        return None
    started = time.monotonic()
    batch = _with_sites([scan, *_claim_backlog(settings.INFERENCE_BATCH_SIZE - 1)])
    answered = {}
    with ExitStack() as task:
        beating = task.enter_context(_heartbeats(batch))
        try:
            version, predictor = runtime.active_predictor()
        except NoActiveModelVersion as error:
            _fail_all(batch, str(error))
            return None
        except Exception:
            logger.exception("Loading the model failed for scans %s", [each.pk for each in batch])
            _fail_all(batch, INTERNAL_ERROR)
            return None
        preparing = _prepare(batch, predictor)
        in_pass = None  # (scans, their pass, their heartbeats): recorded while the next batch is in the pass
        while batch or in_pass:
            passing = None
            if batch:
                go_on = len(batch) == settings.INFERENCE_BATCH_SIZE and time.monotonic() - started < DRAIN_SECONDS and _still_active(version)
                following = _with_sites(_claim_backlog(settings.INFERENCE_BATCH_SIZE)) if go_on else []
                following_beating = task.enter_context(_heartbeats(following))
                films = [future.result() for future in preparing]
                preparing = _prepare(following, predictor)
                passing = (*_start_pass(predictor, batch, films), beating)
                batch, beating = following, following_beating
            if in_pass:
                scans, pass_result, its_beating = in_pass
                answered.update(_record(version, scans, pass_result))
                its_beating.close()  # this batch is finished: its heartbeats stop
            in_pass = passing
    return answered.get(scan.pk)


def _still_active(version):
    """False once an administrator promoted another version (or rolled back): the next message
    loads that one, so no scan claimed after a promotion is read by the version it replaced."""
    active = active_version_or_none()
    return active is not None and active.pk == version.pk


def _claim_backlog(size):
    """Up to `size` other queued scans, oldest first, claimed together."""
    return lifecycle.claim_queued(Scan.objects.order_by("uploaded_at"), size) if size > 0 else []


def _with_sites(scans):
    prefetch_related_objects(scans, "patient__site")  # two queries for the batch, not two per scan
    return scans


def _heartbeats(scans):
    """The scans' heartbeats, running until the returned stack is closed."""
    beating = ExitStack()
    for each in scans:
        beating.enter_context(lifecycle.heartbeat(each))
    return beating


def _prepare(scans, predictor):
    """Futures of each scan's film as the model takes it, or of the sentence why it cannot be analysed."""
    return [_threads().submit(_read_and_prepare, each, predictor) for each in scans]


def _start_pass(predictor, scans, films):
    """Fail the scans whose film could not be read; start the forward pass of the others in the
    pass's own thread. Returns (the scans in the pass, the future of (results, ms per scan))."""
    readable, prepared = [], []
    for each, film in zip(scans, films):
        if isinstance(film, str):
            _fail(each, film)
        else:
            readable.append(each)
            prepared.append(film)
    return readable, _pass_thread().submit(_timed_pass, predictor, prepared)


def _timed_pass(predictor, films):
    started = time.perf_counter()
    # One forward pass gives the probabilities and the heatmap of the label, for the whole batch.
    results = predictor.predict_prepared(films)
    return results, (time.perf_counter() - started) * 1000 / max(1, len(films))  # each scan's share of the call


def _record(version, scans, pass_result):
    """{scan id: Prediction} for the scans of a pass, once it ends: the site's threshold applied,
    heatmaps written and answers recorded; an internal error fails them all."""
    try:
        results, inference_ms = pass_result.result()
        decisions = _decide(version, scans, results)
        heatmap_names = list(_threads().map(_store_heatmap, [result for result, _ in decisions]))
    except Exception:
        logger.exception("Inference failed for scans %s", [each.pk for each in scans])
        return _fail_all(scans, INTERNAL_ERROR)
    return _record_answers(version, scans, decisions, heatmap_names, inference_ms)


def _decide(version, scans, results):
    """(result, SiteThreshold or None) per scan: a threshold fitted for the scan's site on its
    reviewed scans decides where there is one (looked up once per site of the batch)."""
    fits = {}
    decisions = []
    for each, result in zip(scans, results):
        site = each.patient.site
        if site.pk not in fits:
            fits[site.pk] = site_thresholds.current(version, site)
        decisions.append(site_thresholds.apply(version, result, fits[site.pk]))
    return decisions


@functools.cache  # once per process, on its first scan (after the fork): starting 16 threads per batch cost more
def _threads():
    """Reading and preparing the films (harmonising is most of a scan's cost for a model trained on
    harmonised films) and encoding and writing the heatmaps run in threads, one per scan of a batch
    (Pillow, zlib and fsync release the GIL): both cores prepare and encode, and the heatmaps' fsyncs
    wait on the disk together (one journal commit): 16 took 87 ms one after another, 3 ms at once,
    measured here. Two batches' worth: under a backlog the next batch is being prepared while the
    heatmaps of the one before are written."""
    return ThreadPoolExecutor(2 * max(1, settings.INFERENCE_BATCH_SIZE), thread_name_prefix="inference-files")


@functools.cache  # made after the fork, like _threads
def _pass_thread():
    """One thread runs the forward passes, one after another, so that the worker's own thread writes
    the answers of the batch before meanwhile."""
    return ThreadPoolExecutor(1, thread_name_prefix="inference-pass")


def _read_and_prepare(scan, predictor):
    """The scan's film as the model takes it (decoded, harmonised, resized: `predictor.prepare`),
    or the sentence saying why it cannot be analysed; one odd film fails alone, not its batch."""
    pixels = storage.take_decoded(scan.stored_name)  # the film as the upload was decoded, if it waited for us
    if pixels is None:
        try:
            pixels = load_image_file(storage.path_of(scan.stored_name))
        except ImageDecodeError as error:
            return f"The stored image could not be read: {error}"
    try:
        return predictor.prepare(pixels)
    except Exception:
        logger.exception("Preparing scan %s for the model failed", scan.pk)
        return INTERNAL_ERROR


def _store_heatmap(result):
    return storage.write(grey_png(result["heatmap"]), "png")


@transaction.atomic  # one commit for the batch, not one per scan (each commit waits for the disk); a savepoint per scan
def _record_answers(version, readable, decisions, heatmap_names, inference_ms):
    answered = {}
    for each, (result, fitted), heatmap_name in zip(readable, decisions, heatmap_names):
        prediction = record_prediction(scan=each, model_version=version, result=result, heatmap_name=heatmap_name,
                                       inference_ms=inference_ms, site_threshold=fitted)
        if prediction is not None:
            answered[each.pk] = prediction
    return answered


INTERNAL_ERROR = "The analysis failed because of an internal error; IT has the details in the worker log."


def _fail_all(scans, reason):
    for each in scans:
        _fail(each, reason)
    return {}


def grey_png(heatmap):
    """The uint8 map (at most 128 px) as a small grey PNG; the browser colours it over the film.
    zlib level 1: optimize=True took 1.5 s instead of 40 ms at 512 px (a loaded 2-core EPYC), more
    than the forward pass. The map has 10 x 10 cells at 299 px, so 128 px (13 px a cell) loses
    nothing the browser's smoothing does not restore; against 256 px it took 0.12 ms and 6 kB
    instead of 0.75 ms and 18 kB to encode, and 0.04 ms instead of 0.30 ms to upsample (the EPYC)."""
    buffer = io.BytesIO()
    Image.fromarray(heatmap, mode="L").save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _fail(scan, reason):
    storage.discard_decoded(scan.stored_name)  # not read when the model could not be loaded
    lifecycle.finish(scan, Scan.Status.FAILED, failure_reason=reason)
    return None


def record_prediction(*, scan, model_version, result, heatmap_name, inference_ms, site_threshold=None):
    """Write the model's answer and finish the scan, in one transaction. None when this attempt no
    longer owns the scan (the sweep gave it to another worker): that one's answer counts."""
    finished_at = timezone.now()
    try:
        with transaction.atomic():
            likely_positive = result["label"] == model_version.positive_class
            if not lifecycle.finish(scan, Scan.Status.DONE, failure_reason="", likely_positive=likely_positive):
                transaction.set_rollback(True)
                if heatmap_name:
                    storage.delete(heatmap_name)
                return None
            return Prediction.objects.create(
                scan=scan,
                model_version=model_version,
                label=result["label"],
                probabilities=result["probabilities"],
                positive_probability=result["positive_probability"],
                threshold=result["threshold"],
                threshold_source="site" if site_threshold else "version",
                site_threshold=site_threshold,
                heatmap_name=heatmap_name,
                heatmap_is_map=bool(heatmap_name),
                runtime=result.get("runtime", ""),
                precision=result.get("precision", ""),
                inference_ms=inference_ms,
                queue_to_result_ms=(finished_at - scan.uploaded_at).total_seconds() * 1000,
            )
    except IntegrityError:
        # This version's answer was recorded before; keep the first.
        if heatmap_name:
            storage.delete(heatmap_name)
        prediction = Prediction.objects.select_related("model_version").get(scan=scan, model_version=model_version)
        Scan.objects.filter(pk=scan.pk).update(
            status=Scan.Status.DONE, finished_at=finished_at, failure_reason="", likely_positive=prediction.is_positive
        )
        return prediction
