"""Who may see what: anonymous users see only the login page; clinicians see their own site."""
import uuid

import pytest
from django.urls import reverse
from knox.models import AuthToken

from diagnosis.models import AuditEvent, Patient, Scan

pytestmark = pytest.mark.django_db


def page_urls(patient_id, scan_id):
    return [
        reverse("diagnosis:home"),
        reverse("diagnosis:patient_list"),
        reverse("diagnosis:patient_create"),
        reverse("diagnosis:patient_detail", args=[patient_id]),
        reverse("diagnosis:scan_image", args=[scan_id]),
        reverse("diagnosis:scan_heatmap", args=[scan_id, 1]),
        reverse("ml:version_list"),
        "/admin/",
    ]


def test_anonymous_users_are_sent_to_login_from_every_page(client, patient):
    for url in page_urls(patient.pk, uuid.uuid4()):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response.url.startswith(reverse("login")) or response.url.startswith("/admin/login/"), url


def test_anonymous_posts_are_refused(client, patient):
    response = client.post(reverse("diagnosis:scan_upload", args=[patient.pk]))
    assert response.status_code == 302 and response.url.startswith(reverse("login"))
    assert not Scan.objects.exists()


def test_login_page_is_the_only_open_page(client):
    response = client.get(reverse("login"))
    assert response.status_code == 200
    assert b"Log in" in response.content


def test_anonymous_api_calls_get_401_or_403(client, patient):
    for url in [reverse("api:patient_list"), reverse("api:patient_detail", args=[patient.pk]), reverse("api:patient_scans", args=[patient.pk])]:
        assert client.get(url).status_code in (401, 403), url


def test_login_with_password_lands_on_the_worklist(client, clinician, patient):
    response = client.post(reverse("login"), {"username": "dr_a", "password": "not-used-in-tests-1"}, follow=True)
    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == reverse("diagnosis:home")
    assert b"OKAFOR" in client.get(reverse("diagnosis:patient_list")).content


def test_wrong_password_is_refused_with_a_message(client, clinician):
    response = client.post(reverse("login"), {"username": "dr_a", "password": "wrong"})
    assert response.status_code == 200
    assert b"did not match" in response.content


def test_clinician_of_another_site_cannot_see_the_patient(client, other_site_clinician, patient):
    client.force_login(other_site_clinician)
    assert b"OKAFOR" not in client.get(reverse("diagnosis:patient_list")).content
    assert client.get(reverse("diagnosis:patient_detail", args=[patient.pk])).status_code == 404
    assert client.post(reverse("diagnosis:scan_upload", args=[patient.pk])).status_code == 404
    assert client.get(reverse("api:patient_detail", args=[patient.pk])).status_code == 404
    assert client.get(reverse("api:patient_scans", args=[patient.pk])).status_code == 404
    assert not AuditEvent.objects.filter(patient=patient, action=AuditEvent.Action.PATIENT_VIEWED).exists()


def test_scan_image_of_another_site_is_not_served(client, other_site_clinician, clinician_scan):
    client.force_login(other_site_clinician)
    assert client.get(reverse("diagnosis:scan_image", args=[clinician_scan.pk])).status_code == 404
    assert client.get(reverse("api:scan_detail", args=[clinician_scan.pk])).status_code == 404


def test_viewing_a_scan_image_is_authorised_and_logged(clinician_client, clinician, clinician_scan):
    response = clinician_client.get(reverse("diagnosis:scan_image", args=[clinician_scan.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert "no-store" in response["Cache-Control"]
    assert AuditEvent.objects.filter(actor=clinician, scan=clinician_scan, action=AuditEvent.Action.SCAN_IMAGE_VIEWED).count() == 1


def test_a_scan_whose_file_went_missing_is_a_404_not_a_500(clinician_client, clinician_scan, caplog):
    from diagnosis import storage

    storage.delete(clinician_scan.stored_name)
    response = clinician_client.get(reverse("diagnosis:scan_image", args=[clinician_scan.pk]))
    assert response.status_code == 404
    assert f"A stored file of scan {clinician_scan.pk} is missing" in caplog.text, "hospital IT learns of it from the log"
    assert not AuditEvent.objects.filter(scan=clinician_scan, action=AuditEvent.Action.SCAN_IMAGE_VIEWED).exists()


def test_user_without_a_clinical_role_gets_403(client, user_without_role, patient):
    client.force_login(user_without_role)
    assert client.get(reverse("diagnosis:patient_list")).status_code == 403
    assert client.get(reverse("diagnosis:patient_detail", args=[patient.pk])).status_code == 403
    assert client.get(reverse("api:patient_list")).status_code == 403


def test_clinicians_cannot_open_model_pages_or_admin(clinician_client):
    assert clinician_client.get(reverse("ml:version_list")).status_code == 403
    assert clinician_client.get("/admin/").status_code == 302


def test_administrator_sees_every_site(client, administrator, patient, site_b):
    other = Patient.objects.create(site=site_b, medical_record_number="CG-9", family_name="Lindqvist", given_name="Per")
    client.force_login(administrator)
    content = client.get(reverse("diagnosis:patient_list")).content
    assert b"OKAFOR" in content and b"LINDQVIST" in content
    assert client.get(reverse("ml:version_list")).status_code == 200
    assert client.get(reverse("diagnosis:patient_detail", args=[other.pk])).status_code == 200


def test_api_token_auth_scopes_to_site(client, clinician, other_site_clinician, patient):
    _, token = AuthToken.objects.create(clinician)
    response = client.get(reverse("api:patient_list"), HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 200
    assert [row["medical_record_number"] for row in response.json()["results"]] == ["MRN-0001"]
    _, other_token = AuthToken.objects.create(other_site_clinician)
    response = client.get(reverse("api:patient_list"), HTTP_AUTHORIZATION=f"Token {other_token}")
    assert response.json()["results"] == []


def test_openapi_schema_is_served_to_authenticated_users(clinician_client):
    response = clinician_client.get(reverse("api:schema"))
    assert response.status_code == 200
    assert b"/api/v1/patients/{patient_id}/scans/" in response.content


@pytest.mark.parametrize("who, sees", [("clinician", True), ("other_site_clinician", False), ("administrator", True), ("user_without_role", False)])
def test_the_site_rule_is_the_object_permission_on_a_patient(request, patient, who, sees):
    assert request.getfixturevalue(who).has_perm("diagnosis.view_patient", patient) is sees


@pytest.mark.parametrize("who, sees", [("clinician", True), ("other_site_clinician", False), ("administrator", True), ("user_without_role", False)])
def test_the_site_rule_is_the_object_permission_on_a_scan(request, clinician_scan, who, sees):
    assert request.getfixturevalue(who).has_perm("diagnosis.view_scan", clinician_scan) is sees


def test_user_without_a_clinical_role_gets_403_from_every_api_address(client, user_without_role, clinician_scan):
    client.force_login(user_without_role)
    patient_id = clinician_scan.patient_id
    for url in [reverse("api:patient_detail", args=[patient_id]), reverse("api:patient_scans", args=[patient_id]), reverse("api:scan_detail", args=[clinician_scan.pk])]:
        assert client.get(url).status_code == 403, url
    assert client.post(reverse("api:patient_scans", args=[patient_id])).status_code == 403
