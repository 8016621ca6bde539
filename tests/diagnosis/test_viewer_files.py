"""The DICOM viewer's film (/scans/<id>/dicom) and its page (/scans/<id>/viewer/): the stored file as it
came, or an upload's own pixels in a DICOM wrapper; the film image's access rule and audit row; an
earlier film of the patient beside the current one."""
import io

import numpy as np
import pydicom
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image

from diagnosis import scan_intake, storage
from diagnosis.models import AuditEvent
from tests.images import chest_like, dicom_bytes, encode

pytestmark = pytest.mark.django_db


@pytest.fixture
def upload(clinician, patient, monkeypatch):
    monkeypatch.setattr(scan_intake.lifecycle, "enqueue_on_commit", lambda *jobs: None)

    def send(name, data):
        (scan,) = scan_intake.submit_scans(actor=clinician, patient=patient, uploaded_files=[SimpleUploadedFile(name, data)])
        return scan

    return send


def film(client, scan, **query):
    return client.get(reverse("diagnosis:scan_dicom", args=[scan.pk]), query)


def image_views(scan):
    return AuditEvent.objects.filter(scan=scan, action=AuditEvent.Action.SCAN_IMAGE_VIEWED).count()


def test_a_dicom_upload_is_served_byte_for_byte_never_cached_and_audited(clinician_client, upload):
    original = dicom_bytes(chest_like(96, 4), bits=16)
    scan = upload("film.dcm", original)
    response = film(clinician_client, scan)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/dicom"
    assert "no-store" in response["Cache-Control"]
    assert response.content == original == storage.read(scan.stored_name)
    assert image_views(scan) == 1


def test_a_fetch_from_a_page_already_in_the_trail_adds_no_row(clinician_client, upload):
    scan = upload("film.dcm", dicom_bytes(chest_like(96, 4)))
    page = clinician_client.get(reverse("diagnosis:scan_viewer", args=[scan.pk]))
    seen = AuditEvent.objects.get(scan=scan, action=AuditEvent.Action.SCAN_VIEWED)
    assert f"{reverse('diagnosis:scan_dicom', args=[scan.pk])}?seen={seen.pk}" in page.content.decode()
    assert film(clinician_client, scan, seen=seen.pk).status_code == 200
    assert image_views(scan) == 0


def test_another_sites_clinician_gets_no_film(client, other_site_clinician, upload):
    scan = upload("film.dcm", dicom_bytes(chest_like(96, 4)))
    client.force_login(other_site_clinician)
    assert film(client, scan).status_code == 404
    assert client.get(reverse("diagnosis:scan_viewer", args=[scan.pk])).status_code == 404
    assert image_views(scan) == 0


@pytest.mark.parametrize("pixels, mode", [
    (chest_like(80, 1), "L"),
    ((chest_like(80, 2).astype(np.uint16) * 257), "I;16"),
    (np.stack([chest_like(80, 3)] * 3, axis=-1), "RGB"),
])
def test_a_png_upload_opens_as_dicom_with_its_own_pixels_and_depth(clinician_client, upload, pixels, mode):
    scan = upload("film.png", encode(pixels) if mode != "I;16" else _png16(pixels))
    dataset = pydicom.dcmread(io.BytesIO(film(clinician_client, scan).content))
    assert np.array_equal(dataset.pixel_array, pixels)
    assert dataset.BitsStored == pixels.dtype.itemsize * 8
    assert dataset.PhotometricInterpretation == ("RGB" if pixels.ndim == 3 else "MONOCHROME2")
    assert "PatientName" not in dataset and "PatientID" not in dataset, "the wrapper carries no identity"


def _png16(pixels):
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    assert Image.open(io.BytesIO(buffer.getvalue())).mode.startswith("I")
    return buffer.getvalue()


def test_a_missing_file_is_a_404_not_a_500(clinician_client, upload):
    scan = upload("film.dcm", dicom_bytes(chest_like(96, 4)))
    storage.delete(scan.stored_name)
    assert film(clinician_client, scan).status_code == 404


def test_the_viewer_sets_an_earlier_film_beside_the_current_one(clinician_client, clinician, upload):
    earlier = upload("earlier.dcm", dicom_bytes(chest_like(96, 5)))
    current = upload("current.dcm", dicom_bytes(chest_like(96, 6)))
    page = clinician_client.get(reverse("diagnosis:scan_viewer", args=[current.pk]), {"prior": str(earlier.pk)})
    html = page.content.decode()
    assert page.status_code == 200
    assert html.count("data-viewer ") == 2 and "data-viewer-group" in html
    assert reverse("diagnosis:scan_dicom", args=[earlier.pk]) in html
    viewed = AuditEvent.objects.filter(actor=clinician, action=AuditEvent.Action.SCAN_VIEWED)
    assert set(viewed.values_list("scan", flat=True)) == {current.pk, earlier.pk}, "one row per film shown"
    # The earlier film has no earlier film of its own: the later one is not offered, nor shown when asked for.
    page = clinician_client.get(reverse("diagnosis:scan_viewer", args=[earlier.pk]), {"prior": str(current.pk)})
    assert page.status_code == 200
    assert "That is not an earlier film of this patient" in page.content.decode()
    assert reverse("diagnosis:scan_dicom", args=[current.pk]) not in page.content.decode()


@pytest.mark.parametrize("prior", ["not-a-uuid", "00000000-0000-0000-0000-000000000000"])
def test_a_prior_that_is_no_earlier_film_is_said_so(clinician_client, upload, prior):
    scan = upload("film.dcm", dicom_bytes(chest_like(96, 4)))
    page = clinician_client.get(reverse("diagnosis:scan_viewer", args=[scan.pk]), {"prior": prior})
    assert page.status_code == 200
    assert "That is not an earlier film of this patient" in page.content.decode()
