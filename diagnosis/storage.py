"""Where scan images and heatmaps live: the "scans" storage (settings.STORAGES: a private local
folder by default, a private S3 bucket when one is configured), under generated names that carry
no patient name or record number, never behind a public URL: the views that check access serve them."""
import io
import logging
import shutil
import uuid
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.files.base import ContentFile
from django.utils._os import safe_join

from portal.file_storage import StoreUnavailable, answering, is_local, named  # noqa: F401 (StoreUnavailable: callers catch it here)

logger = logging.getLogger(__name__)

SCANS = "scans"


def _root():
    return Path(settings.SCAN_STORAGE_DIR)


def path_of(stored_name):
    """The file's path in the local folder (the default storage, or this host's cache of a bucket);
    a name leading out of the folder raises SuspiciousFileOperation (a 400, not a 500). Django's
    safe_join, as its FileSystemStorage uses it: no system call, where resolving the path took
    42 us, several times per scan in the worker."""
    return Path(safe_join(_root(), stored_name))


def new_name(extension):
    token = uuid.uuid4().hex
    return f"{token[:2]}/{token}.{extension}"


def write(data, extension):
    """Store new bytes under a new name; the local folder writes atomically (temp file, fsync,
    rename), an object store's PUT is whole or nothing. Raises StoreUnavailable when the store
    does not answer."""
    name = new_name(extension)
    with answering(f"storing {name}"):
        return named(SCANS).save(name, ContentFile(data))


def read(stored_name):
    """The stored bytes; FileNotFoundError when the object has gone, StoreUnavailable when the
    store does not answer."""
    with answering(f"reading {stored_name}"), named(SCANS).open(stored_name, "rb") as handle:
        return handle.read()


def load_pixels(stored_name):
    """The stored film decoded (uint8, (H, W)); ImageDecodeError when it cannot be."""
    from ml.engine import decode_image_bytes

    return decode_image_bytes(read(stored_name), min_side=1).pixels


def delete(stored_name):
    with answering(f"deleting {stored_name}"):
        named(SCANS).delete(stored_name)


def local_path(stored_name):
    """A path on this host holding the stored file, for code that reads files by path (dataset
    exports, site re-measurements): the file itself in the local folder, else a copy downloaded
    into that folder, which on a host using a bucket is only a cache."""
    path = path_of(stored_name)
    if not is_local(SCANS) and not path.exists():
        try:
            _write_quickly(path, read(stored_name))
        except FileNotFoundError:  # gone from the store: the caller finds no file, as with a local folder
            pass
    return path


def modified_at(stored_name):
    with answering(f"reading the date of {stored_name}"):
        return named(SCANS).get_modified_time(stored_name)


def stored_names():
    """Every stored name (films, heatmaps, decoded copies): for the sweep of objects without a row."""
    storage = named(SCANS)

    def walk(folder):
        with answering("listing the stored files"):
            folders, files = storage.listdir(folder)
        for name in files:
            yield f"{folder}/{name}" if folder else name
        for sub in folders:
            yield from walk(f"{folder}/{sub}" if folder else sub)

    return walk("")


# --- the decoded film, waiting for the worker ----------------------------------------------
# The web process decodes every upload completely to validate it. Keeping those pixels until the
# worker reads them spares the worker decoding the film again: a 1024 px PNG took 4.9 ms to decode
# and 0.03 ms to read raw (EPYC, 2 cores), and under a backlog that decode shares the cores with the
# forward pass. The copy is a cache of the stored original, never the record: written without
# fsync (lost in a crash, it costs one decode), read once and removed, and whenever it is missing or
# unreadable the worker decodes the original as before. It is kept only when the scans are a local
# folder, i.e. when web and worker share the disk: with an object store the worker is on another
# host, and sending it 1 MB of raw pixels to save 5 ms of decoding a 119 kB PNG costs more than it
# spares (the bucket's bytes, and the store's own PUT), so the worker decodes the original there:
# the copy's PUT, GET and DELETE took 25 ms against 11 ms to GET and decode the film (docs/deploy.md).

# Raw pixels take several times a PNG's room (a 1024 px film: 1 MB, against 119 kB as the bench's
# PNG; a 3000 px DICOM: 9 MB), and a backlog left while the workers are down keeps every copy: none
# is kept once the disk would have less than this share of it free.
DECODED_COPY_FREE_SHARE = 0.10


def decoded_name(stored_name):
    return f"{stored_name}.decoded.npy"


def keep_decoded(stored_name, pixels):
    """Leave the upload's decoded film (uint8, (H, W)) beside it for the worker. Best effort: an
    upload stored safely never fails for want of its cache, and the cache never fills the disk."""
    if not is_local(SCANS):
        return
    buffer = io.BytesIO()
    np.save(buffer, pixels, allow_pickle=False)
    try:
        disk = shutil.disk_usage(_root())
        if disk.free - buffer.tell() < disk.total * DECODED_COPY_FREE_SHARE:
            return
        _write_quickly(path_of(decoded_name(stored_name)), buffer.getvalue())
    except OSError:
        logger.warning("The decoded copy of %s was not kept; the worker will decode the original.", stored_name, exc_info=True)


def take_decoded(stored_name):
    """The decoded film the web process kept, removed from the folder; None when there is none or
    it cannot be read (then decode the original)."""
    if not is_local(SCANS):
        return None
    path = path_of(decoded_name(stored_name))
    try:
        pixels = np.load(path, allow_pickle=False)
    except (OSError, ValueError):  # none kept, or cut short
        return None
    finally:
        path.unlink(missing_ok=True)
    return pixels if pixels.dtype == np.uint8 and pixels.ndim == 2 else None


def discard_decoded(stored_name):
    if is_local(SCANS):
        path_of(decoded_name(stored_name)).unlink(missing_ok=True)


def _write_quickly(path, data):
    """Temp file then rename, without fsync: a lost cache costs one decode or one download."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_suffix(path.suffix + ".part")
    temporary.write_bytes(data)
    temporary.chmod(0o600)
    temporary.rename(path)
