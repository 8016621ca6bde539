"""A reviewed-scans snapshot between web and the training worker, which share no disk: what web
published is what the worker reads (every file checked against the sha256 list the job recorded),
and a snapshot gone or changed in the store fails the job with a sentence, before any training.
Runs on both backends (the session's folders, or SeaweedFS); no Keras training here."""
import hashlib

import pytest
from django.conf import settings
from django.core.files.base import ContentFile
from django.urls import reverse

from diagnosis import storage
from ml import model_store, services, snapshot_store
from ml.models import TrainingJob
from portal.file_storage import named
from tests.conftest import OBJECT_STORE
from tests.images import png_bytes
from tests.ml.test_reviewed_scans import FORM, reviewed_set

pytestmark = pytest.mark.django_db


@pytest.fixture
def snapshot_job(admin_client, clinician, site_a, make_version):
    """A queued reviewed-scans job (its task never sent: the test runs it), and its scans."""
    scans = reviewed_set(clinician, site_a, make_version())
    assert admin_client.post(reverse("ml:job_create"), FORM).status_code == 302
    yield TrainingJob.objects.get(), scans
    model_store.forget_cache()


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def test_the_worker_gets_every_reviewed_film_byte_for_byte_from_the_store(snapshot_job):
    job, scans = snapshot_job
    name = snapshot_store.name_of(job.dataset_path)
    folder = snapshot_store.fetch(name, job.dataset_summary["snapshot"])
    if OBJECT_STORE == "seaweedfs":
        # The worker's own copy, not a folder web wrote: web published to the bucket only.
        assert folder == snapshot_store.cache_root() / name
        assert not (settings.DATASETS_ROOT / "snapshots" / name).exists()
    else:
        assert folder == settings.DATASETS_ROOT / job.dataset_path
    films = {path.name: sha256(path.read_bytes()) for path in folder.glob("*/*.png")}
    assert films == {scan.stored_name.split("/")[-1]: sha256(storage.read(scan.stored_name)) for scan in scans}
    assert {path.parent.name for path in folder.glob("*/*.png")} == {"covid", "normal"}
    sums = (folder / snapshot_store.SUMS).read_text()
    assert len(sums.splitlines()) == job.dataset_summary["snapshot"]["files"] == len(scans) + 1  # and manifest.csv
    assert "MRN-" not in sums and "Family" not in sums  # keys carry scan file names, never names or record numbers
    # Fetched again (another job, or the cache dropped): the same files.
    model_store.forget_cache()
    again = snapshot_store.fetch(name, job.dataset_summary["snapshot"])
    assert {path.name: sha256(path.read_bytes()) for path in again.glob("*/*.png")} == films


def test_a_snapshot_gone_from_the_store_fails_the_job_with_a_sentence(snapshot_job):
    job, _scans = snapshot_job
    snapshot_store.remove(snapshot_store.name_of(job.dataset_path))
    assert job.dataset_path not in [f"snapshots/{name}" for name in snapshot_store.names()]
    job = services.execute_training_job(job.pk)
    assert job.status == TrainingJob.Status.FAILED
    assert job.failure_reason == f"The snapshot “{job.dataset_path}” is not in the datasets storage (removed, or never published whole)."


def test_a_film_changed_in_the_store_fails_the_job_before_training(snapshot_job):
    job, scans = snapshot_job
    film = f"{job.dataset_path}/covid/{scans[0].stored_name.split('/')[-1]}"
    named(snapshot_store.DATASETS).delete(film)
    named(snapshot_store.DATASETS).save(film, ContentFile(png_bytes(96, seed=999)))
    job = services.execute_training_job(job.pk)
    assert job.status == TrainingJob.Status.FAILED and job.epoch == 0
    assert job.failure_reason.startswith(f"The snapshot “{job.dataset_path}”")
    assert "covid/" + scans[0].stored_name.split("/")[-1] in job.failure_reason and "sha256" in job.failure_reason


def test_a_replaced_sha256_list_is_not_the_one_the_job_recorded(snapshot_job):
    job, _scans = snapshot_job
    sums = f"{job.dataset_path}/{snapshot_store.SUMS}"
    named(snapshot_store.DATASETS).delete(sums)
    named(snapshot_store.DATASETS).save(sums, ContentFile(b""))
    job = services.execute_training_job(job.pk)
    assert job.status == TrainingJob.Status.FAILED
    assert job.dataset_path in job.failure_reason and "not the one this job recorded" in job.failure_reason


def test_an_earlier_snapshot_is_listed_and_trained_on_again_as_it_was_published(admin_client, snapshot_job):
    first, _scans = snapshot_job
    assert first.dataset_path in admin_client.get(reverse("ml:job_create")).content.decode()
    form = {**FORM, "source": "folder", "dataset": first.dataset_path}
    assert admin_client.post(reverse("ml:job_create"), form).status_code == 302
    again = TrainingJob.objects.exclude(pk=first.pk).get()
    assert again.source == TrainingJob.Source.FOLDER and again.dataset_path == first.dataset_path
    assert again.dataset_summary["snapshot"] == first.dataset_summary["snapshot"]
    assert again.dataset_summary["classes"] == first.dataset_summary["classes"]


def test_an_unknown_snapshot_is_refused_in_a_sentence(admin_client):
    response = admin_client.post(reverse("ml:job_create"), {**FORM, "source": "folder", "dataset": "snapshots/20000101-000000-abcdef"})
    assert response.status_code == 400
    assert "The snapshot “snapshots/20000101-000000-abcdef” is not in the datasets storage" in response.content.decode()
    assert not TrainingJob.objects.exists()


def test_the_store_down_while_publishing_is_a_sentence_and_no_job(admin_client, clinician, site_a, make_version, settings):
    from tests.portal.test_health import bucket_at_closed_port

    reviewed_set(clinician, site_a, make_version())
    before = snapshot_store.names()
    reachable = settings.STORAGES
    settings.STORAGES = {**reachable, snapshot_store.DATASETS: bucket_at_closed_port()}
    response = admin_client.post(reverse("ml:job_create"), FORM)
    assert response.status_code == 400
    assert "The reviewed scans cannot be exported now: the file store did not answer. Try again in a minute." in response.content.decode()
    assert not TrainingJob.objects.exists()
    assert admin_client.get(reverse("ml:job_create")).status_code == 200  # the form still answers, without the store's snapshots
    settings.STORAGES = reachable
    assert snapshot_store.names() == before
