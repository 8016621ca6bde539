"""The predictor a worker process holds in memory.

Loading a Keras model takes seconds, so each worker process loads the active version once and
keeps it, keyed by version, until an administrator promotes another one.
"""
import threading
from pathlib import Path

from django.conf import settings

from . import selectors

_lock = threading.Lock()
_loaded = {}  # version id -> Predictor; holds one entry, the version last seen active


def artifact_path(version):
    path = Path(version.artifact_path)
    return path if path.is_absolute() else settings.MODEL_STORE_DIR / path


def active_predictor():
    """Return (version, predictor) for the version active now, reloading if it changed."""
    version = selectors.active_version()
    with _lock:
        predictor = _loaded.get(version.pk)
        if predictor is None:
            from ml.engine.predictor import Predictor

            predictor = Predictor.load(artifact_path(version), expected_sha256=version.sha256)
            _loaded.clear()
            _loaded[version.pk] = predictor
    return version, predictor
