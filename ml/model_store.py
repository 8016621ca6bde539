"""Model files on hosts that share no disk. TensorFlow and OpenVINO read and write local files, so
every host works in its own MODEL_STORE_DIR; the "models" storage (settings.STORAGES) is where the
files are kept for every host. With the default local folder the two are the same place and
nothing here copies anything. With a bucket, what one host made (a trained artifact with its
record, splits and plots; a serving export; evaluation plots and reports) is published under its
path relative to MODEL_STORE_DIR, and another host fetches a model into a local cache keyed by its
sha256, checking the hash after every download, and loads it from there."""
import hashlib
import io
import logging
import shutil
import uuid
from pathlib import Path

from django.conf import settings
from django.core.exceptions import SuspiciousFileOperation
from django.core.files import File

from portal.file_storage import StoreUnavailable, answering, is_local, named

logger = logging.getLogger(__name__)

MODELS = "models"


class ModelFileMismatch(Exception):
    """A downloaded model file is not the one its record names (its sha256 differs)."""


def _root():
    return Path(settings.MODEL_STORE_DIR)


def local(relative):
    """A path kept relative to the model store (so the store can move), made absolute on this host."""
    path = Path(relative)
    return path if path.is_absolute() else _root() / path


def is_bucket():
    return not is_local(MODELS)


def key_of(path):
    """The path under the model store, as the storage names it; None for a file outside it."""
    try:
        return Path(path).resolve().relative_to(_root().resolve()).as_posix()
    except ValueError:
        return None


def publish(*paths):
    """Copy files (or every file of folders) made on this host into the models storage, so hosts
    that share no disk find them. Nothing to do when the storage is this host's folder."""
    if is_local(MODELS):
        return
    for path in map(Path, paths):
        for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
            key = key_of(file)
            if key is None or not file.is_file():
                continue
            with answering(f"publishing {key}"), open(file, "rb") as handle:
                named(MODELS).save(key, File(handle))


def read(relative):
    """The bytes of a published file (a plot, a report's picture); FileNotFoundError when absent."""
    key = Path(relative).as_posix()
    with answering(f"reading {key}"), named(MODELS).open(key, "rb") as handle:
        return handle.read()


def png_response(relative, *, missing):
    """A stored plot as a private, uncached PNG; a 404 saying `missing` when it is not there, and a
    503 with a sentence while the store does not answer."""
    from django.http import FileResponse, Http404, HttpResponse

    try:
        data = read(relative)
    except (FileNotFoundError, SuspiciousFileOperation):
        raise Http404(missing) from None
    except StoreUnavailable:
        return HttpResponse("The model store did not answer; reload the page in a minute.", status=503, content_type="text/plain; charset=utf-8")
    # Read whole first (plots are small), so a store failing mid-answer is a 503, not a cut stream.
    return FileResponse(io.BytesIO(data), content_type="image/png", headers={"Cache-Control": "private, no-store"})


def artifact_file(relative, sha256):
    """The local path of a model artifact: the store's own file with the local folder, else this
    host's cached copy (`cache/<sha256>/`), downloaded with its record and splits when absent and
    refused unless its sha256 is the one recorded."""
    if is_local(MODELS) or Path(relative).is_absolute():
        return local(relative)
    folder = _root() / "cache" / sha256
    artifact = folder / Path(relative).name
    if not artifact.is_file():
        stem = Path(relative).with_suffix("")
        for companion in (f"{stem}.json", f"{stem}.splits.json"):  # its record, and the splits the export is checked on
            download(companion, folder / Path(companion).name, required=False)
        download(Path(relative).as_posix(), artifact, expected_sha256=sha256)
    return artifact


def export_folder(relative, files):
    """The local folder of a serving export: the store's own with the local folder, else this
    host's cached copy keyed by the sha256 of its weights, every file checked against `files`
    (the hashes the portal recorded) after download."""
    if is_local(MODELS) or Path(relative).is_absolute() or not files:
        return local(relative)
    folder = _root() / "cache" / "exports" / hashlib.sha256("".join(sorted(files.values())).encode()).hexdigest()[:32]
    if not (folder / "export.json").is_file():
        for name, digest in files.items():
            download(f"{Path(relative).as_posix()}/{name}", folder / name, expected_sha256=digest)
        download(f"{Path(relative).as_posix()}/export.json", folder / "export.json")  # last: its presence says the folder is whole
    return folder


def download(key, target, *, expected_sha256=None, required=True, alias=MODELS):
    """Copy one stored file to `target` on this host, whole or not at all (a .part file renamed),
    refused (ModelFileMismatch) unless its sha256 is `expected_sha256` when one is given."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{uuid.uuid4().hex[:8]}.part")
    digest = hashlib.sha256()
    try:
        with answering(f"downloading {key}"), named(alias).open(key, "rb") as source, open(partial, "wb") as out:
            for chunk in iter(lambda: source.read(1 << 20), b""):
                digest.update(chunk)
                out.write(chunk)
    except FileNotFoundError:
        partial.unlink(missing_ok=True)
        if required:
            raise FileNotFoundError(f"{key} is not in the {alias} storage.") from None
        return
    if expected_sha256 and digest.hexdigest() != expected_sha256:
        partial.unlink(missing_ok=True)
        raise ModelFileMismatch(f"{key} downloaded from the {alias} storage has sha256 {digest.hexdigest()}, not the recorded {expected_sha256}; it was not kept.")
    partial.replace(target)
    logger.info("Fetched %s from the %s storage into %s", key, alias, target)


def forget_cache():
    """Drop this host's cached downloads (tests; an operator freeing disk)."""
    shutil.rmtree(_root() / "cache", ignore_errors=True)
