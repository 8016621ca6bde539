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


def active_predictor():
    """Return (version, predictor) for the version active now, reloading if it changed."""
    version = selectors.active_version()
    serving = ServingExport.objects.filter(version=version).first()
    # A version's export may be made or re-checked after a worker loaded it: its verdict is in the key.
    key = (version.pk, serving and (serving.export_path, serving.accepted, serving.precision, tuple(sorted(serving.record.get("files", {}).values()))))
    with _lock:
        predictor = _loaded.get(key)
        if predictor is None:
            predictor = load_predictor(version, serving)
            _loaded.clear()
            _loaded[key] = predictor
    return version, predictor
