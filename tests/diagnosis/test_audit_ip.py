"""Every clinical write a person makes, on the pages or through the API, is in the audit trail with
the address it came from (hospital IT reads the trail by address). One case per action and way in;
each request comes from its own address, and the one row the action writes must name it."""
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from diagnosis.models import AuditEvent, Patient, Scan
from tests.api import token_headers
from tests.images import png_bytes

pytestmark = pytest.mark.django_db

Action = AuditEvent.Action
WEB_ADDRESS, API_ADDRESS = "10.1.2.3", "2001:db8::7"  # an IPv6 address too: the field stores both


@pytest.fixture
def right_patient(site_a, clinician):
    return Patient.objects.create(site=site_a, medical_record_number="MRN-0002", family_name="Smith", given_name="John", created_by=clinician)


@pytest.fixture
def misfiled(add_scan, patient, clinician):
    return add_scan(patient, Scan.Status.DONE, uploaded_by=clinician)


@pytest.fixture
def prediction(add_result, make_version, patient):
    return add_result(patient, make_version(), "covid", 0.9).predictions.get()


def png():
    return SimpleUploadedFile("x.png", png_bytes())


# Each case: (way in, the action it writes, the request). A request gets the client (signed in on the
# pages, with a token header for the API), the fixtures by name, and the keyword arguments that set
# the address (and the token).
WEB_CASES = {
    "register a patient": (Action.PATIENT_CREATED, lambda client, f, **extra: client.post(
        reverse("diagnosis:patient_create"), {"medical_record_number": "R-9", "family_name": "Costa", "given_name": "Rui", "sex": "U"}, **extra)),
    "correct a patient": (Action.PATIENT_UPDATED, lambda client, f, **extra: client.post(
        reverse("diagnosis:patient_edit", args=[f["patient"].pk]),
        {"medical_record_number": "MRN-0001", "family_name": "Okafor-Bello", "given_name": "Ada", "sex": "F"}, **extra)),
    "upload a scan": (Action.SCAN_UPLOADED, lambda client, f, **extra: client.post(
        reverse("diagnosis:scan_upload", args=[f["patient"].pk]), {"images": [png()]}, **extra)),
    "review a result": (Action.PREDICTION_REVIEWED, lambda client, f, **extra: client.post(
        reverse("diagnosis:prediction_review", args=[f["prediction"].pk]), {"finding": "positive", "agrees": "yes", "note": ""}, **extra)),
    "move a scan": (Action.SCAN_MOVED, lambda client, f, **extra: client.post(
        reverse("diagnosis:scan_move", args=[f["misfiled"].pk]), {"medical_record_number": "MRN-0002", "reason": "Filed under the wrong patient."}, **extra)),
}

API_CASES = {
    "register a patient": (Action.PATIENT_CREATED, lambda client, f, **extra: client.post(
        reverse("api:patient_list"), {"medical_record_number": "R-9", "family_name": "Costa", "given_name": "Rui"}, content_type="application/json", **extra)),
    "correct a patient": (Action.PATIENT_UPDATED, lambda client, f, **extra: client.patch(
        reverse("api:patient_detail", args=[f["patient"].pk]), {"family_name": "Okafor-Bello"}, content_type="application/json", **extra)),
    "upload a scan": (Action.SCAN_UPLOADED, lambda client, f, **extra: client.post(
        reverse("api:patient_scans", args=[f["patient"].pk]), {"image": png()}, **extra)),
    "upload a scan with an Idempotency-Key": (Action.SCAN_UPLOADED, lambda client, f, **extra: client.post(
        reverse("api:patient_scans", args=[f["patient"].pk]), {"image": png()}, HTTP_IDEMPOTENCY_KEY="retry-1", **extra)),
    "review a result": (Action.PREDICTION_REVIEWED, lambda client, f, **extra: client.post(
        reverse("api:prediction_reviews", args=[f["prediction"].pk]), {"agrees": True, "finding": "positive", "note": ""},
        content_type="application/json", **extra)),
    "move a scan": (Action.SCAN_MOVED, lambda client, f, **extra: client.post(
        reverse("api:scan_move", args=[f["misfiled"].pk]), {"patient": str(f["right_patient"].pk), "reason": "Filed under the wrong patient."},
        content_type="application/json", **extra)),
}


@pytest.fixture
def fixtures(patient, right_patient, misfiled, prediction):
    return {"patient": patient, "right_patient": right_patient, "misfiled": misfiled, "prediction": prediction}


def the_one_row(action):
    (row,) = AuditEvent.objects.filter(action=action)
    return row


@pytest.mark.parametrize("case", WEB_CASES, ids=list(WEB_CASES))
def test_a_write_on_the_pages_records_the_address_it_came_from(clinician_client, clinician, fixtures, case):
    action, send = WEB_CASES[case]
    response = send(clinician_client, fixtures, REMOTE_ADDR=WEB_ADDRESS)
    assert response.status_code in (200, 302), response.content[:500]
    row = the_one_row(action)
    assert (row.actor, row.via, row.ip_address) == (clinician, "web", WEB_ADDRESS)


@pytest.mark.parametrize("case", API_CASES, ids=list(API_CASES))
def test_a_write_through_the_api_records_the_address_it_came_from(client, clinician, fixtures, case):
    action, send = API_CASES[case]
    response = send(client, fixtures, REMOTE_ADDR=API_ADDRESS, **token_headers(clinician))
    assert response.status_code < 300, response.content[:500]
    row = the_one_row(action)
    assert (row.actor, row.via, row.ip_address) == (clinician, "api", API_ADDRESS)


# Behind reverse proxies (PORTAL_PROXY_COUNT): each appends the address it received from to
# X-Forwarded-For, so the client's address is the one the outermost proxy wrote; anything further
# left is what the client itself sent, and may be forged.
PROXY, CLIENT, FORGED = "10.0.0.2", "203.0.113.7", "6.6.6.6"


@pytest.mark.parametrize("proxies, forwarded_for, recorded", [
    (1, f"{FORGED}, {CLIENT}", CLIENT),
    (2, f"{FORGED}, {CLIENT}, 10.0.0.9", CLIENT),
    (0, f"{FORGED}, {CLIENT}", PROXY),  # no proxy declared: the header is the client's own words
    (1, None, PROXY),  # a proxy that writes no header
    (1, "unknown", PROXY),  # nor an address
], ids=["one proxy", "two proxies", "no proxy declared", "no header", "not an address"])
def test_behind_reverse_proxies_the_trail_records_the_address_the_outermost_proxy_saw(settings, clinician_client, proxies, forwarded_for, recorded):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": proxies}
    headers = {"HTTP_X_FORWARDED_FOR": forwarded_for} if forwarded_for else {}
    _, register = WEB_CASES["register a patient"]
    assert register(clinician_client, {}, REMOTE_ADDR=PROXY, **headers).status_code == 302
    assert the_one_row(Action.PATIENT_CREATED).ip_address == recorded


def test_a_failed_sign_in_behind_a_proxy_is_logged_with_the_clients_address(settings, client, clinician):
    from axes.models import AccessAttempt

    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    client.post(reverse("login"), {"username": clinician.username, "password": "wrong-password"},
                REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=f"{FORGED}, {CLIENT}")
    assert AccessAttempt.objects.get(username=clinician.username).ip_address == CLIENT
