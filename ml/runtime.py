"""The predictor a worker process holds in memory.

Each worker process loads the active version once, after the fork (on its first scan: a compiled
model holds threads), and keeps it, keyed by version, until an administrator promotes another one.
It is the validated OpenVINO export when the version has one (no TensorFlow is imported then), else
Keras, whose `fallback_reason` says why. Nothing here imports TensorFlow at module import.
"""
import logging
import threading
from pathlib import Path

from django.conf import settings

from . import model_store, selectors
from .models import ServingExport

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_loaded = {}  # (version id, its export verdict) -> ServingPredictor; one entry, the version last seen active
_fp32 = {}  # the same key -> the version's fp32 predictor, loaded only once some site's scans need it
_concurrency = 1  # processes of this worker predicting at once; set by the worker before it forks


def set_concurrency(value):
    global _concurrency
    _concurrency = max(1, int(value or 1))


def cores_per_process():
    """The cores each predicting process of this worker may use: its runtime's threads."""
    from ml.engine.serve.serving import threads_for

    return threads_for(_concurrency)


def stored_path(path):
    """A path kept relative to the model store (so the store can move), made absolute on this host."""
    return model_store.local(path)


def artifact_path(version):
    """The version's artifact on this host (fetched from the model store into the sha256-keyed cache when it lives in a bucket)."""
    return model_store.artifact_file(version.artifact_path, version.sha256)


def compiled_cache_dir():
    """OpenVINO's cache of compiled models: filled when an export is accepted, read by new workers."""
    return Path(settings.MODEL_STORE_DIR) / "serving" / "compiled-cache"


def load_predictor(version, serving):
    """The serving predictor of one version: its accepted export, else Keras (saying why)."""
    from ml.engine import load_serving_predictor

    export_dir = model_store.export_folder(serving.export_path, serving.record.get("files")) if serving and serving.export_path else None
    cache_dir = compiled_cache_dir()
    cache_dir.mkdir(parents=True, exist_ok=True)
    predictor = load_serving_predictor(
        artifact_path(version), export_dir=export_dir, validation=serving.validation if serving else None,
        expected_sha256=version.sha256, expected_files=serving.record.get("files") if serving else None,
        concurrency=_concurrency, cache_dir=cache_dir,
    )
    if predictor.fallback_reason:
        logger.warning("%s is served by Keras: %s", version.label, predictor.fallback_reason)
    else:
        logger.info("%s is served by %s %s", version.label, predictor.runtime, predictor.precision)
    return predictor


def _key(version, serving):
    # A version's export may be made or re-checked after a worker loaded it: its verdict is in the key.
    return (version.pk, serving and (serving.export_path, serving.accepted, serving.precision, tuple(sorted(serving.record.get("files", {}).values()))))


def active_predictor():
    """Return (version, predictor) for the version active now, reloading if it changed."""
    version = selectors.active_version()
    serving = ServingExport.objects.filter(version=version).first()
    key = _key(version, serving)
    with _lock:
        predictor = _loaded.get(key)
        if predictor is None:
            predictor = load_predictor(version, serving)
            _loaded.clear()
            _fp32.clear()
            _loaded[key] = predictor
    return version, predictor


def load_fp32_predictor(version):
    """The version in fp32, for a site its reduced precision did not pass on (diagnosis.site_precision):
    its own export compiled in fp32 (a bf16 export is an fp32 IR run in bf16), or for an int8 version
    the export of the version it was derived from (same Keras model); Keras where neither was accepted."""
    from ml.engine import load_serving_predictor

    serving = ServingExport.objects.filter(version=version).first()
    if version.precision == "int8":
        parent = version.derived_from
        serving = ServingExport.objects.filter(version=parent).first() if parent else None
    export_dir = model_store.export_folder(serving.export_path, serving.record.get("files")) if serving and serving.export_path else None
    validation = {**serving.validation, "precision": "fp32"} if serving and serving.accepted else None
    predictor = load_serving_predictor(artifact_path(version), export_dir=export_dir, validation=validation, expected_sha256=version.sha256,
                                       expected_files=serving.record.get("files") if serving else None, concurrency=_concurrency,
                                       cache_dir=compiled_cache_dir())
    logger.info("%s in fp32 (%s) for the sites its reduced precision did not pass on", version.label, predictor.runtime)
    return predictor


def fp32_predictor(version):
    """load_fp32_predictor, kept beside the active predictor (loaded the first time a site needs it)."""
    key = _key(version, ServingExport.objects.filter(version=version).first())
    with _lock:
        predictor = _fp32.get(key)
        if predictor is None:
            predictor = load_fp32_predictor(version)
            _fp32.clear()
            _fp32[key] = predictor
    return predictor
