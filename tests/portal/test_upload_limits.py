"""Each uploaded file is capped while it streams in (portal.uploads): a file over the cap is refused
with 413 and a sentence, on the page and in the API, and never reaches a temporary file whole."""
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.files.uploadhandler import FileUploadHandler
from django.urls import reverse

from diagnosis.models import Scan
from tests.api import token_headers
from tests.conftest import stored_files
from tests.images import png_bytes

pytestmark = pytest.mark.django_db
CAP = 256 * 1024


class ChunksPassedOn(FileUploadHandler):
    """Sits after the cap in the handler chain, where Django's temporary-file handler sits, and
    remembers the most bytes of one file that reached it."""

    most = 0

    def receive_data_chunk(self, raw_data, start):
        ChunksPassedOn.most = max(ChunksPassedOn.most, start + len(raw_data))
        return raw_data

    def file_complete(self, file_size):
        return None


@pytest.fixture
def small_cap(settings, tmp_path):
    settings.SCAN_MAX_UPLOAD_BYTES = CAP
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1024  # every file goes to a temporary file, in tmp_path
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path)
    settings.FILE_UPLOAD_HANDLERS = [
        "portal.uploads.PerFileSizeLimitHandler",
        f"{__name__}.ChunksPassedOn",
        "django.core.files.uploadhandler.TemporaryFileUploadHandler",
    ]
    ChunksPassedOn.most = 0
    return tmp_path


def big_file(name="huge.png"):
    return SimpleUploadedFile(name, png_bytes(128) + b"\x00" * (3 * CAP))


def test_a_file_over_the_cap_is_a_413_page_and_never_reaches_a_temporary_file_whole(clinician_client, patient, small_cap):
    files_before = stored_files()
    small = SimpleUploadedFile("fine.png", png_bytes(128))
    response = clinician_client.post(reverse("diagnosis:scan_upload", args=[patient.pk]), {"images": [small, big_file()]})
    assert response.status_code == 413
    assert "“huge.png” is larger than 256 KB, the most one image may be; nothing was stored." in response.content.decode()
    assert ChunksPassedOn.most <= CAP
    assert list(small_cap.iterdir()) == []  # the partial temporary file was removed
    assert not Scan.objects.exists() and stored_files() == files_before


def test_a_file_over_the_cap_is_a_json_413_in_the_api(client, clinician, patient, small_cap):
    response = client.post(reverse("api:patient_scans", args=[patient.pk]), {"image": big_file()}, **token_headers(clinician))
    assert response.status_code == 413
    assert response.json() == {
        "code": "request_too_large",
        "error": "“huge.png” is larger than 256 KB, the most one image may be; nothing was stored. Send it smaller (or as separate images).",
    }
    assert ChunksPassedOn.most <= CAP
    assert not Scan.objects.exists()


def test_a_file_under_the_cap_goes_through(client, clinician, patient, small_cap):
    response = client.post(reverse("api:patient_scans", args=[patient.pk]), {"image": SimpleUploadedFile("x.png", png_bytes(128))}, **token_headers(clinician))
    assert response.status_code == 202
    assert Scan.objects.count() == 1
