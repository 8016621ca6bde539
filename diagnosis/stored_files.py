"""The sweep of stored files that no row names. An upload stores its film before the scan row's
transaction commits (a worker must never find a row without its film); when that transaction rolls
back and the store does not answer the delete, or a process dies between the two, the file is left
with no row. No page can show it (files are only reached through their rows), and this sweep
removes it: `manage.py sweep_stored_files`, run hourly by cron or a scheduler."""
import logging
from datetime import timedelta

from django.utils import timezone

from . import storage
from .models import Prediction, Scan

logger = logging.getLogger(__name__)

# Files younger than this are left alone: their upload may still be committing its rows.
GRACE = timedelta(hours=1)


# Other apps' rows that name stored files, each a function returning names: the apps register
# here (pacs: an unmatched DICOM instance's film, waiting for a person to file it), so this module
# need not import them (they depend on diagnosis, never the reverse).
KEPT_BY_OTHER_APPS = []


def _referenced():
    names = set(Scan.objects.values_list("stored_name", flat=True))
    names.update(Prediction.objects.exclude(heatmap_name="").values_list("heatmap_name", flat=True))
    for kept in KEPT_BY_OTHER_APPS:
        names.update(kept())
    return names


def sweep_unreferenced(grace=GRACE):
    """Delete every stored file older than `grace` that no scan or prediction names (a decoded copy
    counts as named by its film). Returns the names deleted."""
    referenced = _referenced()
    cutoff = timezone.now() - grace
    swept = []
    for name in storage.stored_names():
        film = name.removesuffix(".decoded.npy")
        if film in referenced or storage.modified_at(name) > cutoff:
            continue
        storage.delete(name)
        swept.append(name)
    if swept:
        logger.warning("Swept %d stored file(s) that no scan or result names: %s", len(swept), swept[:20])
    return swept
