"""The dataset folders on disk, as the portal names them: where they are, which exist, which is
the evaluation set, and a fingerprint of their images. Reads only; ml.services.datasets checks
and exports them."""
import hashlib
import os
from pathlib import Path

from django.conf import settings


def datasets_root():
    return Path(settings.DATASETS_ROOT)


def on_this_host():
    """Whether this server has the datasets folder. A web server without it (docker-compose's)
    leaves checking folders to the training worker and names the evaluation set by its setting."""
    return datasets_root().is_dir()


def visible_entries(folder):
    return sorted(entry for entry in Path(folder).iterdir() if not entry.name.startswith("."))


def dataset_path(name):
    """The absolute path of a dataset folder named relative to the datasets folder (or absolute).

    `..` is collapsed but symbolic links are kept: a link inside the datasets folder is refused
    when it leads out of it (links_leaving_refusal), never silently followed."""
    path = Path(name).expanduser()
    return Path(os.path.normpath(path if path.is_absolute() else datasets_root().resolve() / path))


def links_leaving_refusal(path):
    """A sentence when a folder inside the datasets folder is, or holds, a symbolic link that leads
    out of it (reading through it would read the scan folder, or anything); None when there is none.
    A folder outside the datasets folder (named so on the command line) is not judged here."""
    from ml.engine.data.samples import links_leaving

    root = datasets_root().resolve()
    path = dataset_path(path)
    if not path.is_relative_to(root) or not path.exists():
        return None
    leaving = links_leaving(path, root)
    if not leaving:
        return None
    shown = display_path(path)
    listed = ", ".join(f"“{shown}/{link}”" if link != "." else f"“{shown}”" for link in leaving[:5])
    more = f" and {len(leaving) - 5} more" if len(leaving) > 5 else ""
    return (
        f"{listed}{more} {'is a link' if len(leaving) == 1 else 'are links'} to a place outside the datasets folder ({root}), "
        "and nothing outside it is read. Copy those files into the datasets folder instead."
    )


def display_path(path):
    """A dataset path as administrators know it: relative to the datasets folder when inside it."""
    path = dataset_path(path)
    try:
        return str(path.relative_to(datasets_root().resolve()))
    except ValueError:
        return str(path)


def dataset_folders():
    """Folders an administrator may train on: those directly in this host's datasets folder, and
    the reviewed-scan snapshots of the datasets storage (ml.snapshot_store: a bucket when one is
    configured, so a web server without the datasets folder still lists them)."""
    from ml import snapshot_store
    from portal.file_storage import StoreUnavailable

    root = datasets_root()
    folders = [entry.name for entry in visible_entries(root) if entry.is_dir() and entry.name != "snapshots"] if root.is_dir() else []
    try:
        return folders + [f"snapshots/{name}" for name in snapshot_store.names()]
    except StoreUnavailable:  # the page still answers; the snapshots come back with the store
        return folders


def evaluation_set():
    """The folder every version is measured on (ML_EVALUATION_SET, relative to the datasets folder
    unless absolute; default `evaluation`), or None when it is not there."""
    name = settings.ML_EVALUATION_SET
    if not name:
        return None
    path = dataset_path(name)
    return path if path.is_dir() else None


def external_evaluation_set():
    """The external evaluation folder an administrator configured (ML_EXTERNAL_EVALUATION_SET), or None."""
    name = settings.ML_EXTERNAL_EVALUATION_SET
    path = dataset_path(name) if name else None
    return path if path is not None and path.is_dir() else None


def configured_evaluation_sets():
    """Every folder a version is measured on when it is registered or evaluated. On a server
    without the datasets folder, the configured ones, as named: the training worker checks them."""
    if not on_this_host():
        return [dataset_path(name) for name in (settings.ML_EVALUATION_SET, settings.ML_EXTERNAL_EVALUATION_SET) if name]
    return [path for path in (evaluation_set(), external_evaluation_set()) if path is not None]


_fingerprints = {}  # (path, file stats) -> fingerprint; hashing is skipped while no file changed


def dataset_fingerprint(path):
    """The engine's content fingerprint of the images an evaluation reads from this folder (their
    relative paths and bytes), so the same images give the same value wherever the folder lives.
    Keyed by the files' sizes and times, so a page load only stats the files."""
    from ml.engine import content_fingerprint, evaluation_samples

    refusal = links_leaving_refusal(path)
    if refusal:
        raise ValueError(refusal)
    samples, _description = evaluation_samples(path)
    stats = [(sample.relpath, sample.path.stat().st_size, sample.path.stat().st_mtime_ns) for sample in samples]
    key = (str(Path(path).resolve()), hashlib.sha256(repr(stats).encode()).hexdigest())
    if key not in _fingerprints:
        _fingerprints[key] = content_fingerprint(samples)
    return _fingerprints[key]
