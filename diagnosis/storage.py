"""Where scan images and heatmaps live: a private folder, under generated names, never a public URL."""
import io
import logging
import os
import shutil
import uuid
from pathlib import Path

import numpy as np
from django.conf import settings
from django.utils._os import safe_join

logger = logging.getLogger(__name__)


def _root():
    return Path(settings.SCAN_STORAGE_DIR)


def path_of(stored_name):
    """The file's path; a name leading out of the folder raises SuspiciousFileOperation (a 400, not a
    500). Django's safe_join, as its FileSystemStorage uses it: no system call, where resolving the
    path took 42 us, several times per scan in the worker."""
    return Path(safe_join(_root(), stored_name))


def new_name(extension):
    token = uuid.uuid4().hex
    return f"{token[:2]}/{token}.{extension}"


def write(data, extension):
    """Write atomically (temp file then rename) so a crash never leaves half an image behind."""
    name = new_name(extension)
    _write_atomically(path_of(name), data, durable=True)
    return name


def _write_atomically(path, data, *, durable):
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_suffix(path.suffix + ".part")
    with open(temporary, "wb") as handle:
        handle.write(data)
        if durable:
            handle.flush()
            os.fsync(handle.fileno())
    os.chmod(temporary, 0o600)
    temporary.rename(path)


def read(stored_name):
    return path_of(stored_name).read_bytes()


def delete(stored_name):
    path_of(stored_name).unlink(missing_ok=True)


# --- the decoded film, waiting for the worker ----------------------------------------------
# The web process decodes every upload completely to validate it. Keeping those pixels until the
# worker reads them spares the worker decoding the film again: a 1024 px PNG took 4.9 ms to decode
# and 0.03 ms to read raw (EPYC, 2 cores), and under a backlog that decode shares the cores with the
# forward pass. The copy is a cache of the stored original, never the record: written without
# fsync (lost in a crash, it costs one decode), read once and removed, and whenever it is missing or
# unreadable the worker decodes the original as before.

# Raw pixels take several times a PNG's room (a 1024 px film: 1 MB, against 119 kB as the bench's
# PNG; a 3000 px DICOM: 9 MB), and a backlog left while the workers are down keeps every copy: none
# is kept once the disk would have less than this share of it free.
DECODED_COPY_FREE_SHARE = 0.10


def decoded_name(stored_name):
    return f"{stored_name}.decoded.npy"


def keep_decoded(stored_name, pixels):
    """Leave the upload's decoded film (uint8, (H, W)) beside it for the worker. Best effort: an
    upload stored safely never fails for want of its cache, and the cache never fills the disk."""
    buffer = io.BytesIO()
    np.save(buffer, pixels, allow_pickle=False)
    try:
        disk = shutil.disk_usage(_root())
        if disk.free - buffer.tell() < disk.total * DECODED_COPY_FREE_SHARE:
            return
        _write_atomically(path_of(decoded_name(stored_name)), buffer.getvalue(), durable=False)
    except OSError:
        logger.warning("The decoded copy of %s was not kept; the worker will decode the original.", stored_name, exc_info=True)


def take_decoded(stored_name):
    """The decoded film the web process kept, removed from the folder; None when there is none or
    it cannot be read (then decode the original)."""
    path = path_of(decoded_name(stored_name))
    try:
        pixels = np.load(path, allow_pickle=False)
    except (OSError, ValueError):  # none kept, or cut short
        return None
    finally:
        path.unlink(missing_ok=True)
    return pixels if pixels.dtype == np.uint8 and pixels.ndim == 2 else None


def discard_decoded(stored_name):
    delete(decoded_name(stored_name))
