"""Where scan images and heatmaps live: a private folder, under generated names, never a public URL."""
import os
import uuid
from pathlib import Path

from django.conf import settings


def _root():
    return Path(settings.SCAN_STORAGE_DIR)


def path_of(stored_name):
    path = (_root() / stored_name).resolve()
    if _root().resolve() not in path.parents:
        raise ValueError("Stored name escapes the scan storage folder.")
    return path


def new_name(extension):
    token = uuid.uuid4().hex
    return f"{token[:2]}/{token}.{extension}"


def write(data, extension):
    """Write atomically (temp file then rename) so a crash never leaves half an image behind."""
    name = new_name(extension)
    path = path_of(name)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_suffix(path.suffix + ".part")
    with open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(temporary, 0o600)
    temporary.rename(path)
    return name


def read(stored_name):
    return path_of(stored_name).read_bytes()


def delete(stored_name):
    path_of(stored_name).unlink(missing_ok=True)
