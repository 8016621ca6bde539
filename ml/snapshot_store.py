"""Reviewed-scan snapshots on hosts that share no disk. Web builds a snapshot in a temporary folder
of its own, checks it, and publishes it under `snapshots/<name>/` in the "datasets" storage
(settings.STORAGES: the datasets folder by default, a bucket prefix with an object store), with a
SHA256SUMS file written last. The job row keeps the file count and the sha256 of SHA256SUMS; the
training worker fetches the prefix into a folder of its own and checks every file against them
before it trains. Keys are the snapshot's name, a label and the scan's generated file name: no
patient name or record number."""
import logging
import shutil
from pathlib import Path

from django.conf import settings
from django.core.files import File

from ml import model_store
from ml.engine.model.artifact import file_sha256
from portal.file_storage import StoreUnavailable, answering, is_local, named

logger = logging.getLogger(__name__)

DATASETS = "datasets"
PREFIX = "snapshots"
SUMS = "SHA256SUMS"


class SnapshotUnusable(Exception):
    """A published snapshot that is missing, incomplete or not what its job recorded."""


def _key(name, relative=""):
    return f"{PREFIX}/{name}/{relative}".rstrip("/")


def publish(folder, name):
    """Copy every file of `folder` under snapshots/<name>/ in the datasets storage, SHA256SUMS
    last (its presence says the snapshot is whole). Returns {"files": n, "sha256": digest of
    SHA256SUMS}. OSError when a local datasets folder cannot be written, StoreUnavailable when the
    store does not answer; what was published before the failure is removed again."""
    folder = Path(folder)
    files = sorted(path for path in folder.rglob("*") if path.is_file())
    lines = [f"{file_sha256(path)}  {path.relative_to(folder).as_posix()}\n" for path in files]
    sums = folder / SUMS
    sums.write_text("".join(lines))
    try:
        for path in files + [sums]:
            key = _key(name, path.relative_to(folder).as_posix())
            with answering(f"publishing {key}"), open(path, "rb") as handle:
                stored = named(DATASETS).save(key, File(handle))
            if stored != key:  # a storage that renamed the file would break the snapshot's manifest
                raise OSError(f"the datasets storage stored {key} as {stored}")
    except BaseException:
        remove(name)
        raise
    return record_of(folder)


def remove(name):
    """Delete a snapshot from the store (a refused or half-done publication, a test); never raises."""
    storage = named(DATASETS)
    try:
        if is_local(DATASETS):
            shutil.rmtree(Path(storage.path(_key(name))), ignore_errors=True)
            return
        files, folders = _walk(_key(name))
        for key in files:
            storage.delete(key)
        # A store with folders of its own (SeaweedFS's filer) keeps them, empty, until they are deleted too.
        for folder in sorted(folders, key=len, reverse=True):
            storage.delete(f"{folder}/")
    except Exception as error:  # the store down while cleaning up: an operator removes it
        logger.warning("The snapshot %s could not be removed from the datasets storage: %s", name, error)


def _walk(prefix):
    """Every file key under `prefix`, and the folders, through the storage's listdir."""
    folders, files = [prefix], []
    for folder in folders:
        subfolders, names_here = named(DATASETS).listdir(folder)
        folders += [f"{folder}/{sub}" for sub in subfolders]
        files += [f"{folder}/{file}" for file in names_here]
    return files, folders


def names():
    """The snapshots in the store, newest name last."""
    try:
        with answering(f"listing {PREFIX}/"):
            folders, _files = named(DATASETS).listdir(PREFIX)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(name for name in folders if not name.startswith("."))


def name_of(dataset_path):
    """The snapshot's name when `dataset_path` names one (`snapshots/<name>`), else None."""
    parts = Path(str(dataset_path or "")).parts
    return parts[1] if len(parts) == 2 and parts[0] == PREFIX and not parts[1].startswith(".") and parts[1] != ".." else None


def cache_root():
    """This host's copies of snapshots fetched from a bucket, beside its cached model files
    (model_store.forget_cache drops both)."""
    return Path(settings.MODEL_STORE_DIR) / "cache" / PREFIX


def fetch(name, recorded):
    """The local folder of a published snapshot, every file checked against SHA256SUMS and
    SHA256SUMS against `recorded` ({"files": n, "sha256": ...}, from the job row). With the local
    datasets folder that is the folder itself; with a bucket, a copy in this host's cache, fetched
    once. SnapshotUnusable names what is wrong; StoreUnavailable when the store does not answer."""
    if is_local(DATASETS):
        folder = Path(named(DATASETS).path(_key(name)))
        if not recorded and folder.is_dir() and not (folder / SUMS).exists():
            return folder  # a snapshot written in place before snapshots were published with their sums
        _verify(folder, recorded, name)
        return folder
    folder = cache_root() / name
    if (folder / SUMS).is_file():
        try:
            _verify(folder, recorded, name)
            return folder
        except SnapshotUnusable as problem:
            logger.warning("The cached copy of snapshot %s is refused (%s); fetching it again", name, problem)
    shutil.rmtree(folder, ignore_errors=True)
    partial = folder.with_name(f"{name}.part")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        model_store.download(_key(name, SUMS), partial / SUMS, expected_sha256=recorded.get("sha256"), alias=DATASETS)
    except FileNotFoundError:
        raise SnapshotUnusable(f"The snapshot “{PREFIX}/{name}” is not in the datasets storage (removed, or never published whole).") from None
    except model_store.ModelFileMismatch as error:
        raise SnapshotUnusable(f"The snapshot “{PREFIX}/{name}” is not the one this job recorded: {error}") from None
    try:
        for digest, relative in _sums(partial, name):
            model_store.download(_key(name, relative), partial / relative, expected_sha256=digest, alias=DATASETS)
    except (FileNotFoundError, model_store.ModelFileMismatch) as error:
        shutil.rmtree(partial, ignore_errors=True)
        raise SnapshotUnusable(f"The snapshot “{PREFIX}/{name}” in the datasets storage is damaged: {error}") from None
    except StoreUnavailable:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    _verify(partial, recorded, name)
    partial.replace(folder)
    logger.info("Fetched snapshot %s (%s files) from the datasets storage into %s", name, recorded.get("files"), folder)
    return folder


def record_of(folder):
    """What a job records of a snapshot it trains on: its file count and the sha256 of its SHA256SUMS."""
    sums = Path(folder) / SUMS
    if not sums.is_file():
        return {}
    return {"files": sum(1 for line in sums.read_text().splitlines() if line), "sha256": file_sha256(sums)}


def _sums(folder, name):
    entries = []
    for line in (folder / SUMS).read_text().splitlines():
        digest, _, relative = line.partition("  ")
        if not relative or Path(relative).is_absolute() or ".." in Path(relative).parts:
            raise SnapshotUnusable(f"The snapshot “{PREFIX}/{name}” has an unusable line in its {SUMS}: {line[:120]!r}.")
        entries.append((digest, relative))
    return entries


def _verify(folder, recorded, name):
    where = f"The snapshot “{PREFIX}/{name}”"
    if not (folder / SUMS).is_file():
        raise SnapshotUnusable(f"{where} is not in the datasets storage (removed, or never published whole).")
    if recorded.get("sha256") and file_sha256(folder / SUMS) != recorded["sha256"]:
        raise SnapshotUnusable(f"{where} is not the one this job recorded: its {SUMS} has changed.")
    entries = _sums(folder, name)
    if recorded.get("files") is not None and len(entries) != recorded["files"]:
        raise SnapshotUnusable(f"{where} lists {len(entries)} files; this job recorded {recorded['files']}.")
    present = {path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()} - {SUMS}
    listed = {relative for _digest, relative in entries}
    if present != listed:
        extra, missing = sorted(present - listed), sorted(listed - present)
        raise SnapshotUnusable(f"{where} does not hold the files it lists (missing: {', '.join(missing[:3]) or 'none'}; unlisted: {', '.join(extra[:3]) or 'none'}).")
    for digest, relative in entries:
        if file_sha256(folder / relative) != digest:
            raise SnapshotUnusable(f"{where}: {relative} is not the file that was published (its sha256 differs).")
