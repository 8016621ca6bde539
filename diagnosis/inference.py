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
from django.db import transaction
from django.db.models import Case, Value, When, prefetch_related_objects
from django.dispatch import Signal

from jobs import lifecycle
from ml import runtime
from ml.engine import ImageDecodeError
from ml.selectors import NoActiveModelVersion, active_version_or_none
from portal import metrics

from . import site_precision, site_thresholds, storage
from .models import Prediction, Scan

logger = logging.getLogger(__name__)

# Sent inside the transaction that records a batch of answers, with `predictions` (those this
# attempt recorded): what must follow a result (pacs sends it back to its PACS) commits with it.
predictions_recorded = Signal()

# A task drains a backlog for at most this long, then leaves the rest to the next message: well
# inside the task's time limits, and a worker being stopped finishes its task soon.
DRAIN_SECONDS = 30


def analyse_scan(scan_id):
    """Run the active model on a queued scan and record its answer: the inference worker's whole job.

    Under a backlog it also takes up to INFERENCE_BATCH_SIZE - 1 other queued scans (oldest first)
    and predicts them all in one call; a lone scan is analysed at once, never waiting for company.
    The forward pass runs alone, with the cores to itself. Between two passes the worker claims the
    next batch and reads and prepares its films in threads while it records the batch before
    (heatmaps written in threads, a few queries and one commit for all its answers). Work beside
    the pass preempts one of its threads while the others wait for it at every layer: on a 2-core
    EPYC, 0.2 cores of resizing beside the bf16 pass took it from about 49 to 37 images/s, twice
    the cores the resizing used (docs/engine.md). This goes on until a batch is not full,
    DRAIN_SECONDS have passed or another version was made active. Each extra scan is claimed
    exactly as its own message would claim it, so that message later finds it taken and does
    nothing, and a worker dying mid-batch leaves every claimed scan to the heartbeat sweep. A scan
    that is not queued (already done, or taken by another worker) is left alone."""
    scan = lifecycle.claim(Scan, scan_id)
    if scan is None:
        return None
    started = time.monotonic()
    batch = _with_sites([scan, *_claim_backlog(settings.INFERENCE_BATCH_SIZE - 1)])
    answered = {}
    with ExitStack() as task:
        beating = task.enter_context(lifecycle.heartbeats(batch))
        try:
            version, predictor = runtime.active_predictor()
        except NoActiveModelVersion as error:
            _fail_all(batch, str(error))
            return None
        except storage.StoreUnavailable:
            logger.warning("The model could not be fetched for scans %s; they are tried again later", [each.pk for each in batch], exc_info=True)
            _retry_all(batch)
            return None
        except Exception:
            logger.exception("Loading the model failed for scans %s", [each.pk for each in batch])
            _fail_all(batch, INTERNAL_ERROR)
            return None
        preparing = _prepare(batch, predictor)
        while batch:
            scans, films = _readable(batch, [future.result() for future in preparing])
            passes = [(chosen, *group, _forward_pass(chosen, *group)) for chosen, *group in _by_precision(version, predictor, scans, films)]
            go_on = len(batch) == settings.INFERENCE_BATCH_SIZE and time.monotonic() - started < DRAIN_SECONDS and _still_active(version)
            following = _with_sites(_claim_backlog(settings.INFERENCE_BATCH_SIZE)) if go_on else []
            following_beating = task.enter_context(lifecycle.heartbeats(following))
            preparing = _prepare(following, predictor)  # read and prepared while this batch is recorded
            for chosen, scans, films, passed in passes:
                if passed:
                    answered.update(_record(version, chosen, scans, films, *passed))
            beating.close()  # this batch is finished: its heartbeats stop
            batch, beating = following, following_beating
    return answered.get(scan.pk)


def _by_precision(version, predictor, scans, films):
    """The batch split by the precision each site may be served in (site_precision: a reduced
    precision only where it passed on the site's films); scans whose fp32 model cannot be loaded
    wait (store down) or fail, never served in a precision not checked on their site."""
    try:
        return site_precision.predictors_for(version, predictor, scans, films)
    except storage.StoreUnavailable:
        logger.warning("The fp32 model could not be fetched for scans %s; they are tried again later", [each.pk for each in scans], exc_info=True)
        _retry_all(scans)
    except Exception:
        logger.exception("Loading the fp32 model failed for scans %s", [each.pk for each in scans])
        _fail_all(scans, INTERNAL_ERROR)
    return []


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


def _prepare(scans, predictor):
    """Futures of each scan's film as the model takes it, or of the sentence why it cannot be analysed."""
    return [_preparing().submit(_read_and_prepare, each, predictor) for each in scans]


def _readable(scans, films):
    """Fail the scans whose film could not be read, give back those the store did not hand over;
    (the others, their prepared films)."""
    readable, prepared = [], []
    for each, film in zip(scans, films):
        if isinstance(film, StoreDown):
            _retry_all([each])
        elif isinstance(film, str):
            _fail(each, film)
        else:
            readable.append(each)
            prepared.append(film)
    return readable, prepared


def _forward_pass(predictor, scans, films):
    """(outputs, each scan's share of the pass in ms): one forward pass gives the probabilities and
    the maps of every class for the whole batch. None when there was nothing to pass or it failed,
    and then its scans failed with it."""
    if not films:
        return None
    started = time.perf_counter()
    try:
        outputs = predictor.forward_prepared(films)
    except Exception:
        logger.exception("Inference failed for scans %s", [each.pk for each in scans])
        _fail_all(scans, INTERNAL_ERROR)
        return None
    return outputs, (time.perf_counter() - started) * 1000 / len(films)


def _record(version, predictor, scans, films, outputs, inference_ms):
    """{scan id: Prediction} for the scans of a pass: labels and heatmaps read from its outputs, the
    site's threshold applied, heatmaps written and answers recorded; an internal error fails them all."""
    try:
        decisions = _decide(version, scans, predictor.interpret(films, outputs))
        heatmap_names = list(_writing().map(_store_heatmap, [result for result, _ in decisions]))
    except storage.StoreUnavailable:
        logger.warning("The heatmaps of scans %s were not stored; they are tried again later", [each.pk for each in scans], exc_info=True)
        return _retry_all(scans)
    except Exception:
        logger.exception("Inference failed for scans %s", [each.pk for each in scans])
        return _fail_all(scans, INTERNAL_ERROR)
    return record_predictions(version, [(each, result, fitted, heatmap_name)
                                        for each, (result, fitted), heatmap_name in zip(scans, decisions, heatmap_names)], inference_ms)


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


@functools.cache  # once per process, on its first scan (after the fork): starting threads per batch cost more
def _preparing():
    """Reading and preparing the films (harmonising is most of a scan's cost for a model trained on
    harmonised films) runs in one thread per core this process may use (Pillow and scikit-image
    release the GIL). More threads only took the cores from the worker's own thread, whose
    recording of the batch before the next pass waits for: with one thread per scan, reading a
    batch's outputs took 23 ms instead of 5 ms (16 scans, 2-core EPYC)."""
    return ThreadPoolExecutor(runtime.cores_per_process(), thread_name_prefix="inference-prepare")


@functools.cache  # made after the fork, like _preparing
def _writing():
    """Encoding and writing the heatmaps runs in one thread per scan of a batch (zlib and fsync
    release the GIL): their fsyncs wait on the disk together (one journal commit): 16 took 87 ms
    one after another, 3 ms at once, measured here."""
    return ThreadPoolExecutor(max(1, settings.INFERENCE_BATCH_SIZE), thread_name_prefix="inference-heatmaps")


def _read_and_prepare(scan, predictor):
    """The scan's film as the model takes it (decoded, harmonised, resized: `predictor.prepare`),
    or the sentence saying why it cannot be analysed; one odd film fails alone, not its batch."""
    pixels = storage.take_decoded(scan.stored_name)  # the film as the upload was decoded, if it waited for us
    if pixels is None:
        try:
            pixels = storage.load_pixels(scan.stored_name)
        except ImageDecodeError as error:
            return f"The stored image could not be read: {error}"
        except FileNotFoundError:
            logger.error("The film of scan %s (%s) is not in the image store.", scan.pk, scan.stored_name)
            return FILM_GONE
        except storage.StoreUnavailable as error:
            logger.warning("Scan %s waits for the image store: %s", scan.pk, error)
            return StoreDown()
    try:
        return predictor.prepare(pixels)
    except Exception:
        logger.exception("Preparing scan %s for the model failed", scan.pk)
        return INTERNAL_ERROR


def _store_heatmap(result):
    return storage.write(grey_png(result["heatmap"]), "png")


INTERNAL_ERROR = "The analysis failed because of an internal error; IT has the details in the worker log."
FILM_GONE = "The film of this scan is no longer in the image store, so it cannot be analysed; upload it again if you still have it."
STORE_DOWN = "The image store did not answer when the worker read the film or wrote its heatmap, so the scan could not be analysed."


class StoreDown:
    """What _read_and_prepare gives for a film the store did not hand over: its scan is tried again later."""


def _retry_all(scans):
    for each in scans:
        storage.discard_decoded(each.stored_name)
        lifecycle.retry_later(each, STORE_DOWN)
    return {}


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
    """Write the model's answer and finish the scan, in one transaction (`record_predictions` for one
    scan). None when this attempt no longer owns the scan (the sweep gave it to another worker)."""
    return record_predictions(model_version, [(scan, result, site_threshold, heatmap_name)], inference_ms).get(scan.pk)


@transaction.atomic  # one commit for the batch, not one per scan (each commit waits for the disk)
def record_predictions(model_version, answers, inference_ms):
    """Write the model's answers and finish their scans: three queries and one commit for a batch,
    whatever its size. `answers`: (scan, result, SiteThreshold or None, heatmap name) per scan.
    Returns {scan id: Prediction} for the scans this attempt still owned; a scan the sweep gave to
    another worker keeps that worker's answer, and this one's heatmap is removed."""
    positive = [scan.pk for scan, result, _, _ in answers if result["label"] == model_version.positive_class]
    owned = {scan.pk for scan in lifecycle.finish_all(
        [scan for scan, *_ in answers], Scan.Status.DONE, failure_reason="",
        likely_positive=Case(When(pk__in=positive, then=Value(True)), default=Value(False)),
    )}
    predictions = []
    for scan, result, site_threshold, heatmap_name in answers:
        if scan.pk not in owned:
            if heatmap_name:
                storage.delete(heatmap_name)
            continue
        scan.likely_positive = scan.pk in positive
        predictions.append(Prediction(
            scan=scan, model_version=model_version, label=result["label"], probabilities=result["probabilities"],
            positive_probability=result["positive_probability"], threshold=result["threshold"],
            threshold_source="site" if site_threshold else "version", site_threshold=site_threshold,
            heatmap_name=heatmap_name, heatmap_is_map=bool(heatmap_name),
            runtime=result.get("runtime", ""), precision=result.get("precision", ""), inference_ms=inference_ms,
            queue_to_result_ms=(scan.finished_at - scan.uploaded_at).total_seconds() * 1000,
        ))
    recorded = Prediction.objects.bulk_create(predictions)
    metrics.predictions_recorded(recorded)
    if recorded:
        predictions_recorded.send(sender=Prediction, predictions=recorded)
    return {prediction.scan_id: prediction for prediction in recorded}
