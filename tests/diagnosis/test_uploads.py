"""Uploads are validated by decoding them; anything refused leaves no row and no file behind."""
import io
from types import SimpleNamespace

import pytest
from django.core.exceptions import SuspiciousFileOperation
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from diagnosis import scan_intake, storage
from diagnosis.models import AuditEvent, Scan
from tests.conftest import local_folders_only, stored_files
from tests.images import chest_like, dicom_bytes, jpeg_bytes, png_bytes

pytestmark = pytest.mark.django_db


def upload(client, patient, *files):
    return client.post(reverse("diagnosis:scan_upload", args=[patient.pk]), {"images": list(files)})


@local_folders_only  # the bucket's keys: tests/storage/test_faults.py
def test_png_upload_is_stored_privately_under_a_generated_name(clinician_client, clinician, patient):
    files_before = stored_files()
    response = upload(clinician_client, patient, SimpleUploadedFile("Okafor_Ada_chest.png", png_bytes(), content_type="image/png"))
    assert response.status_code == 302
    scan = Scan.objects.get()
    assert (scan.status, scan.file_format, scan.width, scan.height, scan.uploaded_by) == ("queued", "png", 128, 128, clinician)
    new_files = sorted(set(stored_files()) - set(files_before))
    # The original, and the film as decoded to validate it, kept for the worker (storage.keep_decoded).
    assert [path.name for path in new_files] == [scan.stored_name.split("/")[-1], storage.decoded_name(scan.stored_name).split("/")[-1]]
    assert not any("Okafor" in str(path) for path in new_files)
    assert all(path.stat().st_mode & 0o077 == 0 for path in new_files), "scan files must not be readable by other system users"
    assert AuditEvent.objects.filter(action=AuditEvent.Action.SCAN_UPLOADED, scan=scan).exists()


@pytest.mark.parametrize("name", ["../outside.png", "ab/../../outside.png", "/etc/passwd"])
def test_a_stored_name_never_leads_out_of_the_scan_folder(name):
    with pytest.raises(SuspiciousFileOperation):
        storage.path_of(name)


@local_folders_only
def test_no_decoded_copy_is_kept_when_the_disk_is_nearly_full_and_the_upload_is_stored_all_the_same(clinician_client, patient, monkeypatch):
    total = 100 * 2**30
    nearly_full = SimpleNamespace(total=total, used=total - 2**30, free=2**30)  # 1% free
    monkeypatch.setattr(storage.shutil, "disk_usage", lambda path: nearly_full)
    response = upload(clinician_client, patient, SimpleUploadedFile("a.png", png_bytes()))
    assert response.status_code == 302
    scan = Scan.objects.get()
    assert storage.path_of(scan.stored_name).exists()
    assert not storage.path_of(storage.decoded_name(scan.stored_name)).exists()


def test_jpeg_and_several_files_at_once(clinician_client, patient):
    response = upload(
        clinician_client, patient,
        SimpleUploadedFile("a.jpg", jpeg_bytes(seed=1)), SimpleUploadedFile("b.png", png_bytes(seed=2)),
    )
    assert response.status_code == 302
    assert sorted(Scan.objects.values_list("file_format", flat=True)) == ["jpeg", "png"]


def test_dicom_upload_is_accepted(clinician_client, patient):
    response = upload(clinician_client, patient, SimpleUploadedFile("study.dcm", dicom_bytes(chest_like(128)), content_type="application/dicom"))
    assert response.status_code == 302
    assert Scan.objects.get().file_format == "dicom"


@pytest.mark.parametrize(
    "header, message",
    [
        ({"modality": "CT"}, b"is a CT scan, not an X-ray"),
        ({"modality": "MR"}, b"not an X-ray"),
        ({"modality": "DX", "body_part": "ABDOMEN"}, b"chest"),
    ],
)
def test_a_dicom_that_is_not_a_chest_radiograph_is_refused_and_leaves_nothing_behind(clinician_client, patient, header, message):
    files_before = stored_files()
    response = upload(clinician_client, patient, SimpleUploadedFile("study.dcm", dicom_bytes(chest_like(128), **header)))
    assert response.status_code == 400
    assert message in response.content
    assert not Scan.objects.exists() and stored_files() == files_before


def test_a_chest_dicom_without_a_body_part_is_accepted(clinician_client, patient):
    response = upload(clinician_client, patient, SimpleUploadedFile("study.dcm", dicom_bytes(chest_like(128), modality="CR")))
    assert response.status_code == 302 and Scan.objects.get().file_format == "dicom"


@pytest.mark.parametrize(
    "name, data, message",
    [
        ("empty.png", b"", b"is empty"),
        ("notes.png", b"Patient is coughing, please review.\n" * 20, b"not a PNG, JPEG or DICOM image"),
        ("corrupt.png", png_bytes()[:300], b"damaged or incomplete"),
        ("corrupt.jpg", jpeg_bytes()[:400], b"damaged or incomplete"),
        ("tiny.png", png_bytes(size=16), b"at least 64 pixels"),
    ],
)
def test_bad_files_get_a_clear_error_and_leave_nothing_behind(clinician_client, patient, name, data, message):
    files_before = stored_files()
    response = upload(clinician_client, patient, SimpleUploadedFile(name, data, content_type="image/png"))
    assert response.status_code == 400
    assert message in response.content
    assert not Scan.objects.exists()
    assert stored_files() == files_before


def mixed_files():
    return [
        SimpleUploadedFile("good-1.png", png_bytes(seed=1)),
        SimpleUploadedFile("notes.png", b"not an image at all, just text"),
        SimpleUploadedFile("good-2.jpg", jpeg_bytes(seed=2)),
        SimpleUploadedFile("tiny.png", png_bytes(size=16)),
    ]


def test_several_files_keep_the_good_ones_and_name_every_bad_one(clinician_client, patient):
    """A clinician who sent four images with two bad ones keeps the two good ones and is told
    which two were refused and why, not only the first."""
    response = upload(clinician_client, patient, *mixed_files())
    assert response.status_code == 302
    assert sorted(Scan.objects.values_list("file_format", flat=True)) == ["jpeg", "png"]
    page = clinician_client.get(response["Location"]).content.decode()
    assert "2 images received" in page
    assert "Not uploaded: File 2 (notes.png): The file is not a PNG, JPEG or DICOM image" in page
    assert "Not uploaded: File 4 (tiny.png):" in page and "at least 64 pixels" in page


def test_the_upload_script_gets_one_outcome_per_file_in_order(clinician_client, patient):
    response = clinician_client.post(
        reverse("diagnosis:scan_upload", args=[patient.pk]), {"images": mixed_files()}, HTTP_ACCEPT="application/json"
    )
    assert response.status_code == 200
    files = response.json()["files"]
    assert [file["name"] for file in files] == ["good-1.png", "notes.png", "good-2.jpg", "tiny.png"]
    assert "not a PNG, JPEG or DICOM image" in files[1]["refused"] and "64 pixels" in files[3]["refused"]
    scans = {str(scan.pk): scan for scan in Scan.objects.all()}
    assert set(scans) == {files[0]["scan"], files[2]["scan"]}
    assert scans[files[2]["scan"]].file_format == "jpeg", "each outcome belongs to its own file"
    card = clinician_client.get(files[0]["card_url"])
    assert card.status_code == 200 and f'id="scan-{files[0]["scan"]}"' in card.content.decode()


def test_when_every_file_is_bad_nothing_is_stored_and_each_is_named(clinician_client, patient):
    files_before = stored_files()
    bad = [SimpleUploadedFile("a.png", b"text, not an image"), SimpleUploadedFile("b.png", png_bytes()[:300])]
    response = upload(clinician_client, patient, *bad)
    assert response.status_code == 400
    assert b"File 1 (a.png)" in response.content and b"File 2 (b.png)" in response.content
    assert not Scan.objects.exists() and stored_files() == files_before
    as_json = clinician_client.post(reverse("diagnosis:scan_upload", args=[patient.pk]), {"images": bad}, HTTP_ACCEPT="application/json")
    assert as_json.status_code == 400 and [bool(file.get("refused")) for file in as_json.json()["files"]] == [True, True]


def test_a_refusal_of_the_whole_upload_comes_as_json_too(clinician_client, patient):
    response = clinician_client.post(reverse("diagnosis:scan_upload", args=[patient.pk]), {}, HTTP_ACCEPT="application/json")
    assert response.status_code == 400
    assert response.json() == {"files": [], "refused": ["Choose at least one X-ray image to upload."]}


def test_the_api_stays_all_or_none_and_names_every_bad_file(clinician, patient):
    files = mixed_files()
    with pytest.raises(scan_intake.ScanRejected) as refused:
        scan_intake.submit_scans(actor=clinician, patient=patient, uploaded_files=files, via="api")
    assert set(refused.value.rejections) == {2, 4}
    assert "File 2 (notes.png)" in str(refused.value) and "File 4 (tiny.png)" in str(refused.value)
    assert not Scan.objects.exists()


def test_no_file_chosen(clinician_client, patient):
    response = clinician_client.post(reverse("diagnosis:scan_upload", args=[patient.pk]), {})
    assert response.status_code == 400
    assert b"Choose at least one X-ray image" in response.content


def test_oversized_file_is_refused(clinician_client, patient, settings):
    # Stopped while it streams in (portal.uploads; tests/portal/test_upload_limits.py has the details).
    settings.SCAN_MAX_UPLOAD_BYTES = 1000
    response = upload(clinician_client, patient, SimpleUploadedFile("big.png", png_bytes(size=256)))
    assert response.status_code == 413
    assert "“big.png” is larger than 1 KB".encode() in response.content
    assert not Scan.objects.exists()


def test_too_many_pixels_is_refused_before_decoding(clinician_client, patient, settings):
    settings.SCAN_MAX_PIXELS = 100 * 100
    response = upload(clinician_client, patient, SimpleUploadedFile("big.png", png_bytes(size=128)))
    assert response.status_code == 400
    assert b"more than the 10,000 pixels" in response.content


def test_api_upload_returns_202_and_errors_as_json(client, clinician, patient):
    from knox.models import AuthToken

    auth = {"HTTP_AUTHORIZATION": f"Token {AuthToken.objects.create(clinician)[1]}"}
    url = reverse("api:patient_scans", args=[patient.pk])
    accepted = client.post(url, {"image": SimpleUploadedFile("x.png", png_bytes())}, **auth)
    assert accepted.status_code == 202
    assert accepted.json()["status"] == "queued"
    refused = client.post(url, {"image": SimpleUploadedFile("x.png", b"GIF89a not really")}, **auth)
    assert refused.status_code == 400
    assert "not a PNG, JPEG or DICOM" in refused.json()["error"]
    missing = client.post(url, {}, **auth)
    assert missing.status_code == 400 and "error" in missing.json()
    assert Scan.objects.count() == 1


def test_failed_database_write_removes_the_stored_file(clinician, patient, monkeypatch):
    """If the transaction fails after the file was written, the file must not be orphaned."""
    files_before = stored_files()

    def broken_audit(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(scan_intake, "record_audit", broken_audit)
    with pytest.raises(RuntimeError):
        scan_intake.submit_scans(actor=clinician, patient=patient, uploaded_files=[SimpleUploadedFile("x.png", png_bytes())])
    assert stored_files() == files_before
    assert not Scan.objects.exists()
