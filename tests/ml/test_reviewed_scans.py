"""Training on the scans clinicians reviewed: exported as a dataset snapshot with a manifest,
checked like any dataset folder, published to the datasets storage and queued. Runs on both
backends: the session's folders, or SeaweedFS (PORTAL_TEST_OBJECT_STORE=seaweedfs), where the
snapshot is read back as the training worker reads it (ml.snapshot_store.fetch)."""
import csv

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from diagnosis import scan_intake
from diagnosis import services as clinical
from diagnosis.models import Patient, Prediction
from ml import snapshot_store
from ml.models import TrainingJob
from tests.conftest import OBJECT_STORE
from tests.images import png_bytes

pytestmark = pytest.mark.django_db

def scan_with_result(clinician, site, number, label, agrees):
    patient = Patient.objects.create(site=site, medical_record_number=f"MRN-{number:03}", family_name=f"Family{number}", given_name="Given")
    (scan,) = scan_intake.submit_scans(actor=clinician, patient=patient, uploaded_files=[SimpleUploadedFile("x.png", png_bytes(96, seed=number))])
    return scan, patient


def review(clinician, scan, version, label, agrees, finding=None):
    prediction = Prediction.objects.create(
        scan=scan, model_version=version, label=label, probabilities={label: 0.9}, positive_probability=0.9 if label == "covid" else 0.1,
        threshold=0.5, inference_ms=1, queue_to_result_ms=1,
    )
    if agrees is not None:
        clinical.review_prediction(actor=clinician, prediction=prediction, agrees=agrees, finding=finding)
    return prediction


def snapshot_folders():
    """The snapshots in the datasets storage, read through the storage API (folder or bucket)."""
    return snapshot_store.names()


def published(job):
    """The job's snapshot as the training worker gets it: fetched and checked against the job's record."""
    return snapshot_store.fetch(snapshot_store.name_of(job.dataset_path), job.dataset_summary["snapshot"])


def reviewed_set(clinician, site, version, count=18):
    """`count` reviewed scans, half covid and half normal: enough for a snapshot training accepts."""
    scans = []
    for number in range(count):
        label = "covid" if number < count // 2 else "normal"
        scan, _ = scan_with_result(clinician, site, number, label, True)
        review(clinician, scan, version, label, True)
        scans.append(scan)
    return scans


FORM = {"source": "reviewed_scans", "backbone": "xception", "epochs": 1, "image_size": 71, "batch_size": 4, "weights": "none"}


def test_reviewed_scans_become_a_snapshot_with_a_manifest_and_a_queued_job(admin_client, clinician, site_a, make_version):
    version = make_version()
    expected = {}
    for number in range(18):
        # AI said covid for the first 10; the clinician disagreed with 2 of those and 1 normal.
        ai_label = "covid" if number < 10 else "normal"
        agrees = number not in (0, 1, 12)
        scan, patient = scan_with_result(clinician, site_a, number, ai_label, agrees)
        review(clinician, scan, version, ai_label, agrees)
        expected[scan.stored_name.split("/")[-1]] = (ai_label if agrees else {"covid": "normal", "normal": "covid"}[ai_label], str(patient.pk))
    unreviewed, _ = scan_with_result(clinician, site_a, 99, "covid", None)
    review(clinician, unreviewed, version, "covid", None)

    response = admin_client.post(reverse("ml:job_create"), FORM)
    job = TrainingJob.objects.get()
    assert response.status_code == 302
    assert job.source == TrainingJob.Source.REVIEWED_SCANS and job.status == TrainingJob.Status.QUEUED
    assert job.dataset_path.startswith("snapshots/")
    assert job.dataset_summary["classes"] == {"covid": 9, "normal": 9}
    assert job.dataset_summary["grouped_by_patient"] is True
    assert job.dataset_summary["path"] == job.dataset_path and job.dataset_summary["snapshot"]["files"] == 19  # 18 images and the manifest

    folder = published(job)
    with open(folder / "manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["filename", "label", "patient_id", "origin"]
    assert {row["filename"].split("/")[-1]: (row["label"], row["patient_id"]) for row in rows} == expected
    assert all(row["origin"] == site_a.code and (folder / row["filename"]).is_file() for row in rows)
    assert all(row["filename"].startswith(row["label"] + "/") for row in rows)
    manifest = (folder / "manifest.csv").read_text()
    assert "MRN-" not in manifest and "Family" not in manifest  # pseudonymous: patient UUIDs, never names or MRNs


def test_the_clinicians_finding_is_the_label_and_indeterminate_scans_are_left_out(admin_client, clinician, site_a, make_version):
    version = make_version()
    expected = {}
    # (AI label, agrees, finding) -> the label trained on; None: left out. A None finding is an old
    # review from before findings were asked: it keeps the agree/disagree rule.
    cases = (
        [("covid", True, "positive", "covid")] * 8 + [("covid", False, "negative", "normal"), ("covid", True, "indeterminate", None)]
        + [("normal", True, "negative", "normal")] * 8 + [("normal", False, "positive", "covid"), ("covid", False, None, "normal")]
        + [("normal", False, None, "covid")]
    )
    for number, (ai_label, agrees, finding, label) in enumerate(cases):
        scan, patient = scan_with_result(clinician, site_a, number, ai_label, agrees)
        review(clinician, scan, version, ai_label, agrees, finding)
        if label:
            expected[scan.stored_name.split("/")[-1]] = label
    # Revised to indeterminate: the latest review decides, so the scan is left out.
    revised, _ = scan_with_result(clinician, site_a, 50, "covid", True)
    prediction = review(clinician, revised, version, "covid", True, "positive")
    clinical.review_prediction(actor=clinician, prediction=prediction, agrees=True, finding="indeterminate")

    assert admin_client.post(reverse("ml:job_create"), FORM).status_code == 302
    job = TrainingJob.objects.get()
    assert job.dataset_summary["classes"] == {"covid": 10, "normal": 10}
    with open(published(job) / "manifest.csv", newline="") as handle:
        assert {row["filename"].split("/")[-1]: row["label"] for row in csv.DictReader(handle)} == expected


def test_no_reviewed_scans_is_refused_and_leaves_nothing_behind(admin_client):
    snapshots_before = snapshot_folders()
    response = admin_client.post(reverse("ml:job_create"), FORM)
    assert snapshot_folders() == snapshots_before
    assert response.status_code == 400
    assert "No scans have been reviewed yet" in response.content.decode()
    assert not TrainingJob.objects.exists()


def test_reviews_of_one_class_only_are_refused_and_the_snapshot_removed(admin_client, clinician, site_a, make_version):
    version = make_version()
    for number in range(4):
        scan, _ = scan_with_result(clinician, site_a, number, "covid", True)
        review(clinician, scan, version, "covid", True)
    snapshots_before = snapshot_folders()
    response = admin_client.post(reverse("ml:job_create"), FORM)
    content = response.content.decode()
    assert response.status_code == 400
    assert "The reviewed scans cannot be used for training yet." in content and "images of one class only (covid/)" in content
    assert not TrainingJob.objects.exists()
    assert snapshot_folders() == snapshots_before


def test_a_reviewed_scan_whose_image_is_gone_is_left_out_with_a_warning_the_job_keeps(admin_client, clinician, site_a, make_version):
    from diagnosis import storage

    version = make_version()
    scans = []
    for number in range(19):
        label = "covid" if number < 10 else "normal"
        scan, _ = scan_with_result(clinician, site_a, number, label, True)
        review(clinician, scan, version, label, True)
        scans.append(scan)
    missing = scans[0]
    storage.delete(missing.stored_name)

    response = admin_client.post(reverse("ml:job_create"), FORM)
    assert response.status_code == 302
    job = TrainingJob.objects.get()
    assert job.dataset_summary["classes"] == {"covid": 9, "normal": 9}
    sentence = f"The image of a reviewed scan ({missing.stored_name.split('/')[-1]}, patient {missing.patient_id}) is missing from the scan storage; it was left out."
    assert job.dataset_summary["warnings"][0] == sentence
    assert sentence in job.log_tail
    assert sentence in admin_client.get(reverse("ml:job_detail", args=[job.pk])).content.decode()
    manifest = (published(job) / "manifest.csv").read_text()
    assert missing.stored_name.split("/")[-1] not in manifest


def test_when_every_reviewed_image_is_gone_the_job_is_refused_in_a_sentence(admin_client, clinician, site_a, make_version):
    from diagnosis import storage

    version = make_version()
    for number, label in enumerate(["covid", "normal"]):
        scan, _ = scan_with_result(clinician, site_a, number, label, True)
        review(clinician, scan, version, label, True)
        storage.delete(scan.stored_name)
    snapshots_before = snapshot_folders()
    response = admin_client.post(reverse("ml:job_create"), FORM)
    assert response.status_code == 400
    assert "The reviewed scans cannot be used for training yet." in response.content.decode()
    assert not TrainingJob.objects.exists() and snapshot_folders() == snapshots_before


def test_a_datasets_folder_this_server_cannot_write_is_a_sentence_not_a_500_and_a_bucket_needs_none(
    admin_client, clinician, site_a, make_version, settings, tmp_path,
):
    # The web server's datasets folder is unusable (the test server runs as root, so it is made
    # unwritable the way root also finds it: a file where the folder should be). With the local
    # datasets storage the snapshot has nowhere to go: a sentence. With a bucket the web server
    # needs no datasets folder at all: the snapshot is built in a temporary folder and published.
    reviewed_set(clinician, site_a, make_version())
    settings.DATASETS_ROOT = tmp_path / "a-file"
    settings.DATASETS_ROOT.write_text("not a folder")
    response = admin_client.post(reverse("ml:job_create"), FORM)
    if OBJECT_STORE == "seaweedfs":
        assert response.status_code == 302
        job = TrainingJob.objects.get()
        assert job.dataset_path in [f"snapshots/{name}" for name in snapshot_folders()]
        assert job.dataset_path in admin_client.get(reverse("ml:job_create")).content.decode()  # listed from the bucket
        return
    assert response.status_code == 400
    assert "The reviewed scans cannot be exported on this server: its datasets folder cannot be written." in response.content.decode()
    assert not TrainingJob.objects.exists()
