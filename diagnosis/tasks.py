"""Celery tasks: thin wrappers that run the model and hand the answer to the services."""
import logging
import time

from celery import shared_task

from ml import runtime
from ml.engine.images import ImageDecodeError, load_image_file
from ml.selectors import NoActiveModelVersion

from . import services, storage

logger = logging.getLogger(__name__)


@shared_task(acks_late=True, reject_on_worker_lost=True, soft_time_limit=240, time_limit=300)
def run_inference(scan_id):
    scan = services.start_processing(scan_id)
    if scan is None:
        return
    try:
        version, predictor = runtime.active_predictor()
        pixels = load_image_file(storage.path_of(scan.stored_name))
        started = time.perf_counter()
        result = predictor.predict([pixels])[0]
        inference_ms = (time.perf_counter() - started) * 1000
        overlay = predictor.gradcam_overlay_png(pixels, predictor.gradcam(pixels))
        heatmap_name = storage.write(overlay, "png")
    except NoActiveModelVersion as error:
        services.mark_scan_failed(scan, str(error))
        return
    except ImageDecodeError as error:
        services.mark_scan_failed(scan, f"The stored image could not be read: {error}")
        return
    except Exception:
        logger.exception("Inference failed for scan %s", scan_id)
        services.mark_scan_failed(scan, "The analysis failed because of an internal error; IT has the details in the worker log.")
        return
    services.record_prediction(scan=scan, model_version=version, result=result, heatmap_name=heatmap_name, inference_ms=inference_ms)


@shared_task
def requeue_stale_scans():
    scan_ids = services.requeue_stale_scans()
    if scan_ids:
        logger.info("Re-sent %d stale scans to the inference queue", len(scan_ids))
    return len(scan_ids)
