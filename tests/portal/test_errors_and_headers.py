"""No bad request ever gets a 500 or a traceback; the API answers every error as JSON with a stable
code; every page carries a Content-Security-Policy; patient data is never cached; oversized
uploads are refused before the body is read. All through the Django test client."""
import uuid

import pytest
from django.core.cache import cache
from django.test import override_settings
from django.urls import reverse
from knox.models import AuthToken

from diagnosis import selectors
from diagnosis.models import Scan


@pytest.fixture(autouse=True)
def fresh_throttles():
    cache.clear()


def token_header(user):
    return {"HTTP_AUTHORIZATION": f"Token {AuthToken.objects.create(user)[1]}"}


def test_a_bad_host_header_on_a_page_is_a_plain_400(client, db):
    response = client.get("/patients/", HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert b"The request could not be processed" in response.content
    assert b"Traceback" not in response.content and b"evil.example" not in response.content


def test_a_bad_host_header_on_the_api_is_a_json_400(client, db):
    response = client.get(reverse("api:patient_list"), HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert response.json()["code"] == "bad_request"


def test_a_nul_byte_in_the_patient_search_page_is_a_clear_400(clinician_client, patient):
    response = clinician_client.get(reverse("diagnosis:patient_list"), {"q": "Oka\x00for"})
    assert response.status_code == 400
    assert b"may not contain control characters" in response.content


def test_a_nul_byte_in_the_api_patient_search_is_a_json_400(client, clinician, patient):
    response = client.get(reverse("api:patient_list"), {"q": "Oka\x00for"}, **token_header(clinician))
    assert response.status_code == 400
    assert response.json()["code"] == "bad_request"
    assert "control characters" in response.json()["error"]


def test_an_unknown_api_url_is_a_json_404(client, db):
    response = client.get("/api/v1/no-such-thing/")
    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "error": "Nothing exists at this address, or you do not have access to it."}


def test_a_wrong_method_on_the_api_is_a_json_405(client, clinician, patient):
    response = client.delete(reverse("api:patient_detail", args=[patient.pk]), **token_header(clinician))
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


def test_an_unsupported_content_type_on_the_api_is_a_json_415(client, clinician, patient):
    response = client.post(reverse("api:patient_scans", args=[patient.pk]), "{}", content_type="application/json", **token_header(clinician))
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"


def test_the_api_without_credentials_is_a_json_401(client, db):
    response = client.get(reverse("api:patient_list"))
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_a_role_that_may_not_is_a_json_403(client, user_without_role):
    response = client.get(reverse("api:patient_list"), **token_header(user_without_role))
    assert response.status_code == 403
    assert response.json() == {"code": "permission_denied", "error": "Your account's role does not allow this request."}


def test_the_api_schema_needs_a_login(client, clinician):
    assert client.get(reverse("api:schema")).status_code == 401
    assert client.get(reverse("api:docs")).status_code == 401
    assert client.get(reverse("api:schema"), **token_header(clinician)).status_code == 200


def test_the_api_docs_page_loads_its_script_from_a_file(clinician_client):
    page = clinician_client.get(reverse("api:docs"))
    assert page.status_code == 200
    assert b'<script src="/api/v1/docs/?script=">' in page.content
    script = clinician_client.get(reverse("api:docs"), {"script": ""})
    assert script.status_code == 200 and "/api/v1/schema/" in script.content.decode()


def test_every_page_has_a_content_security_policy_without_inline_scripts(client, db):
    policy = client.get(reverse("login"))["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["default-src"] == "'self'"
    # WebAssembly (the viewer's codecs) may be compiled; JavaScript may not be eval'd nor inlined.
    assert directives["script-src"] == "'self' 'wasm-unsafe-eval'"
    assert directives["worker-src"] == "'self'"
    assert directives["img-src"] == "'self' data: blob:"


def test_a_patient_page_is_never_cached(clinician_client, patient):
    response = clinician_client.get(reverse("diagnosis:patient_detail", args=[patient.pk]))
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]


def test_api_json_is_never_cached(client, clinician, patient):
    response = client.get(reverse("api:patient_detail", args=[patient.pk]), **token_header(clinician))
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]


def test_a_300_mb_upload_is_refused_before_anything_is_written(client, clinician, patient, tmp_path):
    # A real 6 MB body (over FILE_UPLOAD_MAX_MEMORY_SIZE, so Django would spool it to the temporary
    # folder) announced as 300 MB: the Content-Length alone decides.
    body = b"\x00" * (6 * 1024 * 1024)
    boundary = "portalboundary"
    payload = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"big.dcm\"\r\n"
               f"Content-Type: application/dicom\r\n\r\n").encode() + body + f"\r\n--{boundary}--\r\n".encode()
    with override_settings(FILE_UPLOAD_TEMP_DIR=str(tmp_path)):
        response = client.post(
            reverse("api:patient_scans", args=[patient.pk]), payload, content_type=f"multipart/form-data; boundary={boundary}",
            CONTENT_LENGTH=str(300 * 1024 * 1024), **token_header(clinician),
        )
    assert response.status_code == 413
    assert response.json()["code"] == "request_too_large" and "at most 256 MB" in response.json()["error"]
    assert list(tmp_path.iterdir()) == []
    assert not Scan.objects.exists()


def test_an_oversized_upload_page_post_gets_a_413_page(clinician_client, patient):
    response = clinician_client.post(reverse("diagnosis:scan_upload", args=[patient.pk]), {}, CONTENT_LENGTH=str(300 * 1024 * 1024))
    assert response.status_code == 413
    assert b"The upload is too large" in response.content


def test_a_chunked_upload_without_a_length_is_refused(client, clinician, patient):
    response = client.post(reverse("api:patient_scans", args=[patient.pk]), b"", content_type="multipart/form-data; boundary=x",
                           HTTP_TRANSFER_ENCODING="chunked", CONTENT_LENGTH="", **token_header(clinician))
    assert response.status_code == 411
    assert response.json()["code"] == "length_required"


def test_a_large_body_to_a_url_that_takes_no_files_is_refused(client, db):
    response = client.post(reverse("login"), {}, CONTENT_LENGTH=str(10 * 1024 * 1024))
    assert response.status_code == 413


def test_a_scan_of_another_site_through_the_api_is_a_json_404(client, other_site_clinician, clinician_scan):
    response = client.get(reverse("api:scan_detail", args=[clinician_scan.pk]), **token_header(other_site_clinician))
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_an_unknown_patient_uuid_is_a_json_404(client, clinician):
    response = client.get(reverse("api:patient_detail", args=[uuid.uuid4()]), **token_header(clinician))
    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "error": "Nothing exists at this address, or you do not have access to it."}


def test_a_server_error_in_the_api_is_json_without_a_traceback(client, clinician, monkeypatch):
    # Any unexpected exception in a view stands in for a bug; the handler under test is Django's 500 path.
    def broken(*args, **kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(selectors, "search_patients", broken)
    client.raise_request_exception = False
    response = client.get(reverse("api:patient_list"), **token_header(clinician))
    assert response.status_code == 500
    assert response.json()["code"] == "server_error"
    assert b"secret internal detail" not in response.content
