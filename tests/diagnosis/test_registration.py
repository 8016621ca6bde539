"""register_patient decides the site and refuses a record number already used there, in any case."""
import pytest
from django.db import IntegrityError
from django.urls import reverse
from knox.models import AuthToken

from diagnosis import roles, services
from diagnosis.models import Patient
from tests.conftest import make_user

pytestmark = pytest.mark.django_db

DETAILS = {"family_name": "Costa", "given_name": "Rui"}


def test_the_database_refuses_a_record_number_that_differs_only_in_case(patient):
    with pytest.raises(IntegrityError):
        Patient.objects.create(site=patient.site, medical_record_number="mrn-0001", **DETAILS)


def test_the_service_refuses_a_record_number_that_differs_only_in_case(clinician, patient):
    with pytest.raises(services.PatientAlreadyRegistered, match="medical record number mrn-0001 is already registered at St Elsewhere"):
        services.register_patient(actor=clinician, medical_record_number=" mrn-0001 ", **DETAILS)
    assert Patient.objects.count() == 1


def test_the_service_allows_the_same_record_number_at_another_site(other_site_clinician, patient, site_b):
    registered = services.register_patient(actor=other_site_clinician, medical_record_number="mrn-0001", **DETAILS)
    assert (registered.site, registered.medical_record_number) == (site_b, "mrn-0001")


def test_a_clinician_registers_at_their_own_site_whatever_they_send(clinician, site_a, site_b):
    registered = services.register_patient(actor=clinician, site=site_b, medical_record_number="R-1", **DETAILS)
    assert registered.site == site_a


def test_an_administrator_registers_at_the_site_they_name(administrator, site_b):
    registered = services.register_patient(actor=administrator, site=site_b, medical_record_number="R-1", **DETAILS)
    assert registered.site == site_b


def test_an_administrator_who_names_no_site_is_refused(administrator):
    with pytest.raises(services.PatientRegistrationRefused, match="Say which site the patient belongs to."):
        services.register_patient(actor=administrator, medical_record_number="R-1", **DETAILS)
    assert not Patient.objects.exists()


def test_a_clinician_without_a_site_is_refused(site_b):
    clinician = make_user("dr_nowhere", roles.CLINICIANS, None)
    with pytest.raises(services.PatientRegistrationRefused, match="not attached to a site"):
        services.register_patient(actor=clinician, site=site_b, medical_record_number="R-1", **DETAILS)
    assert not Patient.objects.exists()


def test_the_page_shows_the_refusal_to_a_clinician_without_a_site(client, db):
    client.force_login(make_user("dr_nowhere", roles.CLINICIANS, None))
    response = client.post(reverse("diagnosis:patient_create"), {"medical_record_number": "R-1", "sex": "U", **DETAILS})
    assert response.status_code == 400
    assert b"not attached to a site" in response.content
    assert not Patient.objects.exists()


def test_the_page_lets_an_administrator_choose_the_site(client, administrator, site_b):
    client.force_login(administrator)
    assert b'name="site"' in client.get(reverse("diagnosis:patient_create")).content
    response = client.post(reverse("diagnosis:patient_create"), {"medical_record_number": "R-1", "sex": "U", "site": site_b.pk, **DETAILS})
    assert response.status_code == 302
    assert Patient.objects.get().site == site_b


def test_the_page_offers_no_site_to_a_clinician(clinician_client):
    assert b'name="site"' not in clinician_client.get(reverse("diagnosis:patient_create")).content


def api_post(client, user, data):
    _, token = AuthToken.objects.create(user)
    return client.post(reverse("api:patient_list"), data, HTTP_AUTHORIZATION=f"Token {token}", content_type="application/json")


def test_the_api_registers_at_the_site_code_an_administrator_names(client, administrator, site_b):
    response = api_post(client, administrator, {"medical_record_number": "R-1", "site_code": "cg", **DETAILS})
    assert response.status_code == 201, response.content
    assert response.json()["site"] == "cg"


def test_the_api_refuses_an_administrator_who_names_no_site(client, administrator):
    response = api_post(client, administrator, {"medical_record_number": "R-1", **DETAILS})
    assert response.status_code == 400
    assert response.json() == {"code": "refused", "error": "Say which site the patient belongs to."}


def test_the_api_refuses_an_unknown_site_code(client, administrator):
    response = api_post(client, administrator, {"medical_record_number": "R-1", "site_code": "nowhere", **DETAILS})
    assert response.status_code == 400
    assert "No site has the code nowhere." in str(response.json())
    assert not Patient.objects.exists()


def test_the_api_registers_a_clinician_at_their_own_site_whatever_site_code_says(client, clinician, site_b):
    response = api_post(client, clinician, {"medical_record_number": "R-1", "site_code": "cg", **DETAILS})
    assert response.status_code == 201, response.content
    assert response.json()["site"] == "ste"
