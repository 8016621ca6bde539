"""The object store failing, against a real SeaweedFS that the test stops: an upload gets a 503
sentence and leaves no scan row; a stored file without a row is swept; a worker that cannot read a
film tries the scan again, then fails it with a sentence; a film gone from the store fails its scan
with a reason and its page still answers."""
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse

from diagnosis import inference, storage
from diagnosis.models import AuditEvent, Scan
from ml import runtime
from tests.api import token_client
from tests.images import png_bytes

pytestmark = pytest.mark.django_db


def upload_page(client, patient, seed=1):
    return client.post(reverse("diagnosis:scan_upload", args=[patient.pk]), {"images": [SimpleUploadedFile("a.png", png_bytes(seed=seed))]})


def test_films_and_heatmaps_live_in_the_bucket_under_keys_without_patient_data(own_store, clinician_client, patient):
    assert upload_page(clinician_client, patient).status_code == 302
    scan = Scan.objects.get()
    assert own_store.keys("scans/") == [f"scans/{scan.stored_name}"]  # no decoded copy: the worker is on another host
    key = own_store.keys("scans/")[0]
    assert patient.family_name not in key and patient.medical_record_number not in key and patient.given_name not in key
    stored = own_store.client().get_object(Bucket=own_store.bucket, Key=key)["Body"].read()
    assert stored == png_bytes(seed=1)
    image = clinician_client.get(reverse("diagnosis:scan_image", args=[scan.pk]))
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG") and "no-store" in image["Cache-Control"]


def test_the_bucket_is_private_a_request_without_credentials_is_refused(own_store, clinician_client, patient):
    import urllib.error
    import urllib.request

    upload_page(clinician_client, patient)
    key = own_store.keys("scans/")[0]
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{own_store.endpoint_url}/{own_store.bucket}/{key}", timeout=5)
    assert refused.value.code == 403


def test_an_upload_while_the_store_is_down_is_a_503_sentence_and_leaves_no_scan(own_store, clinician, clinician_client, patient):
    own_store.stop()
    page = upload_page(clinician_client, patient)
    assert page.status_code == 503
    assert "The image store did not answer, so nothing was uploaded" in page.content.decode()
    as_json = clinician_client.post(reverse("diagnosis:scan_upload", args=[patient.pk]), {"images": [SimpleUploadedFile("a.png", png_bytes())]},
                                    HTTP_ACCEPT="application/json")
    assert as_json.status_code == 503 and "nothing was uploaded" in as_json.json()["files"][0]["refused"]
    api = token_client(clinician).post(reverse("api:patient_scans", args=[patient.pk]), {"image": SimpleUploadedFile("a.png", png_bytes())}, format="multipart")
    assert api.status_code == 503
    assert api.json()["code"] == "store_unavailable" and "nothing was uploaded" in api.json()["error"]
    assert not Scan.objects.exists()
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.SCAN_UPLOADED).exists()


def test_a_stored_file_without_a_row_is_swept_and_named_files_are_kept(own_store, clinician_client, patient):
    upload_page(clinician_client, patient)
    kept = Scan.objects.get().stored_name
    orphan = storage.write(png_bytes(seed=5), "png")  # what a rolled-back upload leaves when the store missed the delete
    assert f"scans/{orphan}" in own_store.keys("scans/")
    young = call_command_output("sweep_stored_files")
    assert "Swept 0" in young and f"scans/{orphan}" in own_store.keys("scans/")  # within the grace period: its upload may be committing
    assert "Swept 1" in call_command_output("sweep_stored_files", "--grace-minutes", "0")
    assert own_store.keys("scans/") == [f"scans/{kept}"]


def call_command_output(*args):
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_a_film_gone_from_the_store_fails_its_scan_with_a_reason_and_its_pages_answer(own_store, clinician_client, patient, active_model_version,
                                                                                     queued_scans):
    (scan,) = queued_scans(1)
    own_store.client().delete_object(Bucket=own_store.bucket, Key=f"scans/{scan.stored_name}")
    inference.analyse_scan(scan.pk)
    scan.refresh_from_db()
    assert scan.status == Scan.Status.FAILED and scan.failure_reason == inference.FILM_GONE
    page = clinician_client.get(reverse("diagnosis:patient_detail", args=[patient.pk]))
    assert page.status_code == 200 and "no longer in the image store" in page.content.decode()
    assert clinician_client.get(reverse("diagnosis:scan_image", args=[scan.pk])).status_code == 404


def test_a_worker_that_cannot_read_the_store_tries_the_scan_again_then_fails_it_with_a_sentence(own_store, clinician_client, patient,
                                                                                              active_model_version, queued_scans):
    (scan,) = queued_scans(1)
    runtime.active_predictor()  # the model is loaded (fetched from the store) before the store goes down
    own_store.stop()
    inference.analyse_scan(scan.pk)
    scan.refresh_from_db()
    assert scan.status == Scan.Status.QUEUED and scan.attempts == 1 and scan.enqueued_at is None  # the next sweep sends it again
    inference.analyse_scan(scan.pk)
    scan.refresh_from_db()
    assert scan.status == Scan.Status.FAILED and scan.attempts == 2
    assert scan.failure_reason == f"{inference.STORE_DOWN} It was tried 2 times."
    page = clinician_client.get(reverse("diagnosis:patient_detail", args=[patient.pk]))
    assert page.status_code == 200 and "The image store did not answer" in page.content.decode()
    image = clinician_client.get(reverse("diagnosis:scan_image", args=[scan.pk]))
    assert image.status_code == 503 and "The image store did not answer" in image.content.decode()


def test_a_model_artifact_is_fetched_into_a_cache_keyed_by_its_sha256_and_checked(own_store, active_model_version, settings):
    path = runtime.artifact_path(active_model_version)
    assert path.parent.name == active_model_version.sha256 and path.parent.parent.name == "cache"
    assert path.is_file()
    # The store's copy altered: a new host's download is refused, never loaded.
    from ml import model_store

    key = f"models/{active_model_version.artifact_path}"
    own_store.client().put_object(Bucket=own_store.bucket, Key=key, Body=b"not the model")
    model_store.forget_cache()
    with pytest.raises(model_store.ModelFileMismatch, match="not the recorded"):
        runtime.artifact_path(active_model_version)
    assert not path.exists()


def test_setup_creates_a_missing_bucket_once(own_store):
    from django.test.utils import override_settings

    from tests.seaweedfs import unique_bucket

    bucket = unique_bucket()
    with override_settings(**own_store.settings(bucket=bucket)):
        assert f"Created the private bucket {bucket} in the object store." in call_command_output("setup_portal", "--no-demo-model")
        assert "Created the private bucket" not in call_command_output("setup_portal", "--no-demo-model")
    assert bucket in [each["Name"] for each in own_store.client().list_buckets()["Buckets"]]
