"""Where a training job's data is, on the server that queues it and on the training worker that
reads it, when the two share no disk: an administrator's folder, checked on the web server when
it has the datasets folder and otherwise by the training worker before it trains (the job then
fails with the refusal's sentence); or a reviewed-scan snapshot, fetched from the datasets storage
and checked against the sha256 list its job recorded."""
from pathlib import Path

from ml import datasets as folders
from ml import snapshot_store
from ml.models import TrainingJob

from .datasets import check_dataset_folder, resolve_dataset_path, snapshot_folder


def checked_folder(dataset, *, allow_outside_root, seed, held_out_sources):
    """(dataset_path, summary) of the folder a new job will train on."""
    if snapshot_store.name_of(dataset) is not None:
        return _checked_snapshot(str(Path(dataset)), seed=seed, held_out_sources=held_out_sources)
    if not allow_outside_root and not folders.on_this_host():
        # A web server without the datasets folder (docker-compose's): the name is checked here,
        # the folder by the training worker, which has it.
        shown = folders.display_path(resolve_dataset_path(dataset))
        return shown, {"path": shown, "checked_on_worker": True, "warnings": []}
    check = check_dataset_folder(dataset, allow_outside_root=allow_outside_root, seed=seed, held_out_sources=held_out_sources)
    return folders.display_path(check.path), check.summary()


def _checked_snapshot(dataset, *, seed, held_out_sources):
    """An earlier snapshot trained on again: fetched, checked against what its first job recorded, then checked as a folder."""
    earlier = TrainingJob.objects.filter(dataset_path=dataset).order_by("pk").values_list("dataset_summary", flat=True)
    recorded = next((summary["snapshot"] for summary in earlier if summary.get("snapshot")), {})
    folder = snapshot_folder(dataset, recorded)
    check = check_dataset_folder(folder, allow_outside_root=True, seed=seed, held_out_sources=held_out_sources, shown=dataset)
    return dataset, {**check.summary(), "path": dataset, "snapshot": recorded or snapshot_store.record_of(folder)}


def dataset_dir(job):
    """Where this host reads the job's data. A folder the web server could not check is checked
    here first (TrainingRefused fails the job with its sentence), and the job row gets the check's
    summary and the held-out sources' full names, as if web had checked it."""
    if snapshot_store.name_of(job.dataset_path) is not None:
        return snapshot_folder(job.dataset_path, job.dataset_summary.get("snapshot", {}))
    if not job.dataset_summary.get("checked_on_worker") or "classes" in job.dataset_summary:
        return resolve_dataset_path(job.dataset_path, allow_outside_root=True)
    held_out = tuple(job.parameters.get("held_out_sources", ()))
    check = check_dataset_folder(job.dataset_path, seed=job.parameters["seed"], held_out_sources=held_out)
    summary = {**check.summary(), "checked_on_worker": True}
    parameters = {key: value for key, value in job.parameters.items() if key != "held_out_sources"}
    if summary.get("held_out"):
        parameters["held_out_sources"] = summary["held_out"]["sources"]
    TrainingJob.objects.filter(pk=job.pk).update(dataset_summary=summary, parameters=parameters)
    job.dataset_summary, job.parameters = summary, parameters
    return check.path
