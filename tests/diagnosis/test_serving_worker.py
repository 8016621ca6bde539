"""The fast serving path through the portal: a version's export made and checked once, a real
worker answering with it (one pass, a small grey heatmap), and Keras standing in, saying why,
when the export disagrees with it."""
import io
import shutil
import subprocess
import sys

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image

from diagnosis import storage
from diagnosis.models import Scan
from ml import runtime, services
from ml.services.serving import export_dir_of, warm_compiled_cache
from tests.conftest import PROJECT_ROOT, local_folders_only, wait_for, worker_environment
from tests.images import png_bytes
from tests.ml.engine.exports import corrupt_export

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


@pytest.fixture
def exported_version(db, tiny_model_artifact, tiny_model_export):
    """A version registered, its serving model exported and validated (as the training job does), and active.
    The export is the session's (prepare_serving would convert the same artifact again, tens of seconds
    a test), put where prepare_serving writes it, then checked and compiled as prepare_serving does;
    tests/ml/test_serving_export.py checks the export a training job makes itself."""
    version = services.register_version(artifact_path=tiny_model_artifact.artifact_path, record=tiny_model_artifact.record)
    shutil.copytree(tiny_model_export, export_dir_of(version))
    serving = services.check_serving(version)
    warm_compiled_cache(version, serving)
    services.promote_version(version.pk, reason="test fixture: a tiny model, never evaluated", override=True)
    version.refresh_from_db()
    return version, serving


def upload_and_wait(client, patient, seed=1):
    response = client.post(reverse("diagnosis:scan_upload", args=[patient.pk]), {"images": [SimpleUploadedFile("a.png", png_bytes(seed=seed))]})
    assert response.status_code == 302
    scan = Scan.objects.latest("uploaded_at")
    return wait_for(lambda: Scan.objects.filter(pk=scan.pk, status__in=["done", "failed"]).first(), message="the scan to finish")


def test_the_export_is_validated_once_on_the_versions_own_test_images(exported_version, administrator, client):
    version, serving = exported_version
    assert serving.accepted and serving.runtime == "openvino", serving.reason
    assert serving.precision in {"fp32", "bf16"}
    assert serving.validation["checks"]["fp32"]["max_abs_difference"] <= 1e-4
    assert "test split" in serving.validated_on
    assert services.prepare_serving(version).pk == serving.pk, "a second call must not export again"
    assert list(runtime.compiled_cache_dir().glob("*.blob")), "accepted: compiled once, so a new worker need not compile"
    client.force_login(administrator)
    page = client.get(reverse("ml:version_detail", args=[version.pk])).content.decode()
    assert f"Served by <strong>openvino {serving.precision}</strong>" in page


def test_a_real_worker_answers_with_the_export_and_stores_a_small_grey_heatmap(exported_version, clinician, client, patient, celery_worker_process):
    version, serving = exported_version
    client.force_login(clinician)
    scan = upload_and_wait(client, patient)
    assert scan.status == Scan.Status.DONE, scan.failure_reason
    prediction = scan.predictions.get()
    assert (prediction.runtime, prediction.precision) == ("openvino", serving.precision)
    assert prediction.heatmap_is_map
    heatmap = client.get(reverse("diagnosis:scan_heatmap", args=[scan.pk, prediction.pk]))
    image = Image.open(io.BytesIO(heatmap.content))
    assert image.mode == "L" and max(image.size) <= 128
    assert image.size[0] / image.size[1] == pytest.approx(scan.width / scan.height, rel=0.02)
    page = client.get(reverse("diagnosis:patient_detail", args=[patient.pk])).content.decode()
    assert f"openvino {serving.precision}" in page, "the page says which runtime and precision made the result"
    assert 'data-heatmap="' in page and "<canvas" in page, "the browser colours the grey map"


def test_an_export_that_disagrees_with_keras_is_refused_and_keras_serves(exported_version, administrator, clinician, client, patient, celery_worker_process):
    version, _ = exported_version
    corrupt_export(export_dir_of(version))
    serving = services.check_serving(version)
    assert not serving.accepted and serving.runtime == "keras"
    assert "differs from Keras" in serving.reason
    client.force_login(administrator)
    page = client.get(reverse("ml:version_detail", args=[version.pk])).content.decode()
    assert "<strong>refused</strong>" in page and "differs from Keras" in page
    client.force_login(clinician)
    scan = upload_and_wait(client, patient, seed=2)
    assert scan.status == Scan.Status.DONE, scan.failure_reason
    assert (scan.predictions.get().runtime, scan.predictions.get().precision) == ("keras", "fp32")


WORKER_PATH = """
import sys, django
django.setup()
from diagnosis import services, tasks  # the worker's import chain
from diagnosis.models import Scan
before = sorted(name for name in sys.modules if name.split(".")[0] in ("tensorflow", "keras"))
services.analyse_scan(sys.argv[1])
after = sorted(name for name in sys.modules if name.split(".")[0] in ("tensorflow", "keras"))
prediction = Scan.objects.get(pk=sys.argv[1]).predictions.get()
print(len(before), len(after), prediction.runtime)
"""


def test_the_worker_path_never_imports_tensorflow_when_an_export_is_accepted(exported_version, clinician, patient):
    # Stored but never sent to the broker (a session worker may be running): the subprocess is the worker.
    data = png_bytes()
    scan = Scan.objects.create(patient=patient, uploaded_by=clinician, stored_name=storage.write(data, "png"), file_format="png",
                               width=Image.open(io.BytesIO(data)).width, height=Image.open(io.BytesIO(data)).height,
                               size_bytes=len(data), sha256="0" * 64)
    done = subprocess.run([sys.executable, "-c", WORKER_PATH, str(scan.pk)], env=worker_environment(), cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-3:] == ["0", "0", "openvino"]


def test_a_backlog_is_predicted_in_batches_with_exactly_one_prediction_per_scan(exported_version, clinician, client, patient, celery_worker_process):
    client.force_login(clinician)
    files = [SimpleUploadedFile(f"{i}.png", png_bytes(seed=30 + i)) for i in range(6)]
    assert client.post(reverse("diagnosis:scan_upload", args=[patient.pk]), {"images": files}).status_code == 302
    wait_for(lambda: not Scan.objects.exclude(status__in=["done", "failed"]).exists(), message="the backlog to finish")
    scans = list(Scan.objects.all())
    assert len(scans) == 6 and all(scan.status == Scan.Status.DONE for scan in scans), [scan.failure_reason for scan in scans]
    assert all(scan.predictions.count() == 1 and scan.attempts == 1 for scan in scans)
    # The rows were all queued before the first message was sent, so the worker took them in one call:
    # every scan of a batch records the same share of that call's time.
    shares = [scan.predictions.get().inference_ms for scan in scans]
    assert len(set(shares)) < len(shares), f"no two scans were predicted together: {shares}"


def test_one_message_drains_a_backlog_batch_after_batch_and_each_scan_is_answered_once(exported_version, queued_scans, settings):
    """While its batches are full, the task of one message claims the next batch (after the current
    one's pass, prepared while its answers are written) and goes on; the other scans' own messages
    then find nothing to do."""
    from diagnosis.inference import analyse_scan

    settings.INFERENCE_BATCH_SIZE = 2
    scans = queued_scans(5)
    assert analyse_scan(scans[0].pk).scan_id == scans[0].pk
    assert all(analyse_scan(scan.pk) is None for scan in scans[1:]), "each later message finds its scan answered"
    answered = [Scan.objects.get(pk=scan.pk) for scan in scans]
    assert all(scan.status == Scan.Status.DONE and scan.attempts == 1 and scan.predictions.count() == 1 for scan in answered)
    # A batch's scans record the same share of their call: oldest first, in batches of 2, 2 and 1.
    shares = [scan.predictions.get().inference_ms for scan in answered]
    assert shares[0] == shares[1] and shares[2] == shares[3] and len({shares[0], shares[2], shares[4]}) == 3, shares


def test_a_scan_the_sweep_gave_to_another_worker_during_a_batch_keeps_that_workers_ending(exported_version, queued_scans, settings, monkeypatch):
    """The batch's answers are recorded together, but only for the scans this attempt still owns: the
    one taken over keeps the other worker's ending, and this attempt's heatmap for it is removed."""
    from datetime import timedelta

    from django.utils import timezone

    from diagnosis import inference
    from jobs import lifecycle

    settings.INFERENCE_BATCH_SIZE = 3
    scans = queued_scans(3)
    taken = scans[1]
    recorded = inference._record

    def taken_over_then_recorded(*args):
        # The worker was silent too long: the sweep put the scan back, another worker took and ended it.
        Scan.objects.filter(pk=taken.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
        assert [job.pk for job in lifecycle.sweep().requeued] == [taken.pk]
        assert lifecycle.finish(lifecycle.claim(Scan, taken.pk), Scan.Status.FAILED, failure_reason="the other worker's ending")
        return recorded(*args)

    monkeypatch.setattr(inference, "_record", taken_over_then_recorded)
    # The sweep sends nothing: in the PostgreSQL + Redis pass a worker of another test took the scan first (seen in CI).
    monkeypatch.setattr(lifecycle, "send", lambda model, job_ids: [])
    files_before = set(storage.stored_names())
    inference.analyse_scan(scans[0].pk)
    answered = [Scan.objects.get(pk=scan.pk) for scan in scans]
    assert [scan.status for scan in answered] == [Scan.Status.DONE, Scan.Status.FAILED, Scan.Status.DONE]
    assert answered[1].failure_reason == "the other worker's ending" and answered[1].attempts == 2
    assert [scan.predictions.count() for scan in answered] == [1, 0, 1]
    heatmaps = {scan.predictions.get().heatmap_name for scan in (answered[0], answered[2])}
    new_files = set(storage.stored_names()) - files_before
    assert new_files == heatmaps, "the heatmap of the answer not recorded is removed"


@local_folders_only
def test_the_worker_reads_the_film_the_upload_decoded_and_decodes_the_original_when_that_copy_is_missing_or_cut_short(
        exported_version, queued_scans):
    """The web process keeps each upload's decoded film beside it; the worker reads it once instead of
    decoding the original again, and removes it. Without it, the original is decoded: the same answer."""
    from diagnosis.inference import analyse_scan
    from ml.engine import load_image_file

    scans = queued_scans(3, seed=7)  # one film, three times
    copies = [storage.path_of(storage.decoded_name(scan.stored_name)) for scan in scans]
    for scan, copy in zip(scans, copies):
        assert np.array_equal(np.load(copy), load_image_file(storage.path_of(scan.stored_name)))
        assert copy.stat().st_mode & 0o077 == 0, "the decoded film is as private as the original"
    copies[1].unlink()
    copies[2].write_bytes(copies[2].read_bytes()[:1000])
    for scan in scans:
        analyse_scan(scan.pk)
    answered = [Scan.objects.get(pk=scan.pk) for scan in scans]
    assert all(scan.status == Scan.Status.DONE for scan in answered), [scan.failure_reason for scan in answered]
    probabilities = [scan.predictions.get().positive_probability for scan in answered]
    assert probabilities[0] == pytest.approx(probabilities[1], abs=1e-6) == pytest.approx(probabilities[2], abs=1e-6)
    assert not any(copy.exists() for copy in copies), "each copy is read once and removed"


def test_a_task_stops_draining_after_its_time_and_leaves_the_rest_queued(exported_version, queued_scans, settings, monkeypatch):
    from diagnosis import inference

    settings.INFERENCE_BATCH_SIZE = 2
    monkeypatch.setattr(inference, "DRAIN_SECONDS", 0)
    scans = queued_scans(4)
    inference.analyse_scan(scans[0].pk)
    statuses = [Scan.objects.get(pk=scan.pk).status for scan in scans]
    assert statuses == [Scan.Status.DONE, Scan.Status.DONE, Scan.Status.QUEUED, Scan.Status.QUEUED], "one batch, then the next message's turn"


def test_a_promotion_ends_the_drain_so_no_scan_claimed_after_it_is_read_by_the_version_it_replaced(
    exported_version, queued_scans, settings, monkeypatch, make_version
):
    from diagnosis import inference
    from ml.selectors import active_version

    settings.INFERENCE_BATCH_SIZE = 2
    version, _ = exported_version
    replacement = make_version()
    recorded = inference._record

    def record_then_promote(*args):
        answered = recorded(*args)
        if active_version() != replacement:  # an administrator promotes while the first batch's answers are written
            services.promote_version(replacement.pk, reason="test: promoted while a backlog drains", override=True)
        return answered

    monkeypatch.setattr(inference, "_record", record_then_promote)
    scans = queued_scans(8)
    inference.analyse_scan(scans[0].pk)
    answered = [Scan.objects.get(pk=scan.pk) for scan in scans]
    # The second batch was claimed after the first's pass, just before its answers were written: before
    # the promotion, so the old version reads it. The third would have been claimed after it: it and
    # the fourth are left to their messages and the new version.
    assert [scan.status for scan in answered] == [Scan.Status.DONE] * 4 + [Scan.Status.QUEUED] * 4
    assert {scan.predictions.get().model_version_id for scan in answered[:4]} == {version.pk}
