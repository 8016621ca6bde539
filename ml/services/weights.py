"""Which starting weights a training job may use, decided before it is queued: a job that cannot
get its weights must be refused in one sentence, not fail on the worker with a traceback.

- `imagenet`: Keras downloads the file from its weights host on first use. Usable when the file is
  already in the Keras cache, or when this site reaches that host (ML_IMAGENET_AVAILABLE says so,
  or, unset, a connection test with a short timeout decides; its answer is kept for a while).
- a weights file: only from the configured weights folder (ML_WEIGHTS_DIR), after every link is
  resolved, so `/etc/passwd`, `../` and a link leading out of the folder are all refused.
"""
import os
import socket
import time
from pathlib import Path

from django.conf import settings

from ml.engine import BACKBONES

from .datasets import TrainingRefused

NO_IMAGENET = (
    "ImageNet weights cannot be downloaded here (the training machine cannot reach the Keras weights host and they are not "
    "in its Keras cache); choose none, or a weights file in the weights folder."
)
PROBE_SECONDS = 2.0
PROBE_KEPT_SECONDS = 300
_probe = {"at": None, "reachable": False}


def keras_cache_file(backbone):
    """Where Keras keeps the no-top ImageNet file of a backbone once downloaded."""
    home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")
    module = BACKBONES[backbone].module
    return home / "models" / f"{module}_weights_tf_dim_ordering_tf_kernels_notop.h5"


def _host_reachable():
    now = time.monotonic()
    if _probe["at"] is None or now - _probe["at"] > PROBE_KEPT_SECONDS:
        try:
            socket.create_connection(settings.ML_IMAGENET_HOST, timeout=PROBE_SECONDS).close()
            _probe["reachable"] = True
        except OSError:
            _probe["reachable"] = False
        _probe["at"] = now
    return _probe["reachable"]


def imagenet_available(backbone):
    if keras_cache_file(backbone).is_file():
        return True
    if settings.ML_IMAGENET_AVAILABLE is not None:
        return bool(settings.ML_IMAGENET_AVAILABLE)
    return _host_reachable()


def weights_dir():
    return Path(settings.ML_WEIGHTS_DIR)


def resolve_weights(weights, backbone):
    """None (random), "imagenet", or the real path of a weights file inside the weights folder."""
    weights = (weights or "").strip()
    if weights.lower() in {"", "none", "random"}:
        return None
    if weights.lower() == "imagenet":
        if not imagenet_available(backbone):
            raise TrainingRefused(NO_IMAGENET)
        return "imagenet"
    folder = weights_dir().resolve()
    given = Path(weights).expanduser()
    # resolve() follows every link, so a link inside the folder that points out of it lands outside.
    path = (given if given.is_absolute() else folder / given).resolve()
    if not path.is_relative_to(folder):
        raise TrainingRefused(f"The weights file “{weights}” is outside the weights folder {folder}; only files placed there can be used.")
    if not path.is_file():
        raise TrainingRefused(f"The weights file “{weights}” does not exist in the weights folder {folder}; use imagenet, none, or a file placed there.")
    return str(path)
