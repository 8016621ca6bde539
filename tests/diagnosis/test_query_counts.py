"""A list costs the same number of SQL queries with 3 rows as with 30 (pages and API alike): no query
per row, so a hospital's 100,000 scans cost what a handful do. bench/pages.py measures the time."""
import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from diagnosis.models import Patient, Scan
from tests.api import token_headers

pytestmark = pytest.mark.django_db

LISTS = {
    "worklist": lambda patient: reverse("diagnosis:home"),
    "worklist, filtered": lambda patient: reverse("diagnosis:home") + "?status=done&review=unreviewed",
    "patient list": lambda patient: reverse("diagnosis:patient_list"),
    "patient list, search": lambda patient: reverse("diagnosis:patient_list") + "?q=okafor",
    "patient page": lambda patient: reverse("diagnosis:patient_detail", args=[patient.pk]),
    "API worklist": lambda patient: "/api/v1/worklist/",
    "API patients": lambda patient: "/api/v1/patients/?q=okafor",
    "API patient's scans": lambda patient: f"/api/v1/patients/{patient.pk}/scans/",
}


@pytest.fixture
def grow(patient, clinician, add_scan, add_result, make_version):
    """grow(n): n scans of the patient in every state (results of two model versions, reviewed
    and not), and n patients named Okafor at the site."""
    versions = [make_version(), make_version(synthetic=True)]
    kinds = [
        lambda n: add_result(patient, versions[n % 2], "covid", 0.9, minutes_ago=n, reviewed_by=clinician),
        lambda n: add_result(patient, versions[n % 2], "covid", 0.7, minutes_ago=n),
        lambda n: add_result(patient, versions[n % 2], "normal", 0.1, minutes_ago=n),
        lambda n: add_scan(patient, Scan.Status.QUEUED, minutes_ago=n, uploaded_by=clinician),
        lambda n: add_scan(patient, Scan.Status.RUNNING, minutes_ago=n),
        lambda n: add_scan(patient, Scan.Status.FAILED, minutes_ago=n),
    ]

    def grow_to(total):
        for n in range(Scan.objects.count(), total):
            kinds[n % len(kinds)](n)
        for n in range(Patient.objects.count(), total):
            Patient.objects.create(site=patient.site, medical_record_number=f"GROWN-{n:04d}", family_name=f"Okafor{n}", given_name="Ada")

    return grow_to


def queries_for(client, url, headers):
    client.get(url, headers=headers)  # the first request of a session may load what later ones reuse
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, headers=headers)
    assert response.status_code == 200, response.content[:300]
    return len(captured), response


@pytest.mark.parametrize("role", ["clinician", "administrator"])
@pytest.mark.parametrize("name", LISTS)
def test_the_query_count_is_the_same_for_3_rows_and_30(name, role, request, patient, grow):
    user = request.getfixturevalue(role)
    client, headers = Client(), {}
    if name.startswith("API"):
        headers = {"Authorization": token_headers(user)["HTTP_AUTHORIZATION"]}
    else:
        client.force_login(user)
    url = LISTS[name](patient)
    grow(3)
    few, few_response = queries_for(client, url, headers)
    grow(30)
    many, many_response = queries_for(client, url, headers)
    assert len(many_response.content) > 2 * len(few_response.content), "the 30-row response shows more rows"
    assert 0 < few == many, f"{name}: {few} queries for 3 rows, {many} for 30"
