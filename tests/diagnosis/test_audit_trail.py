"""The one audit trail, through HTTP: each read of patient data is exactly one row (a page's own
images add none), writes say what changed, and only administrators read and export the trail."""
import csv
import io
import json
import re
from datetime import date, timedelta

import pytest
from django.urls import reverse

from diagnosis import storage
from diagnosis.models import AuditEvent, Patient, Prediction, Review
from tests.api import token_headers
from tests.images import png_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def result(patient, make_version, add_result):
    """A finished scan whose image and heatmap are really stored."""
    scan = add_result(patient, make_version(), "covid", 0.9)
    scan.stored_name = storage.write(png_bytes(128), "png")
    scan.save(update_fields=["stored_name"])
    Prediction.objects.filter(scan=scan).update(heatmap_name=storage.write(png_bytes(64, seed=3), "png"), heatmap_is_map=True)
    scan.refresh_from_db()
    return scan


def rows():
    return list(AuditEvent.objects.order_by("id"))


def one_new_row(before, **expected):
    new = AuditEvent.objects.exclude(pk__in=[row.pk for row in before])
    assert new.count() == 1, [(row.action, row.via) for row in new]
    row = new.get()
    for name, value in expected.items():
        assert getattr(row, name) == value, (name, getattr(row, name))
    return row


PAGE_READS = {
    "patient list": (lambda p, s: reverse("diagnosis:patient_list"), AuditEvent.Action.PATIENT_LISTED, False),
    "patient search": (lambda p, s: reverse("diagnosis:patient_list") + "?q=okaf", AuditEvent.Action.PATIENT_LISTED, False),
    "patient page": (lambda p, s: reverse("diagnosis:patient_detail", args=[p.pk]), AuditEvent.Action.PATIENT_VIEWED, True),
    "worklist": (lambda p, s: reverse("diagnosis:home"), AuditEvent.Action.WORKLIST_VIEWED, False),
    "scan card": (lambda p, s: reverse("diagnosis:scan_card", args=[s.pk]), AuditEvent.Action.SCAN_VIEWED, True),
    "image on its own": (lambda p, s: reverse("diagnosis:scan_image", args=[s.pk]), AuditEvent.Action.SCAN_IMAGE_VIEWED, True),
    "heatmap on its own": (
        lambda p, s: reverse("diagnosis:scan_heatmap", args=[s.pk, s.predictions.get().pk]), AuditEvent.Action.HEATMAP_VIEWED, True,
    ),
}

API_READS = {
    "patient list": (lambda p, s: reverse("api:patient_list"), AuditEvent.Action.PATIENT_LISTED, False),
    "patient search": (lambda p, s: reverse("api:patient_list") + "?q=MRN-0001", AuditEvent.Action.PATIENT_LISTED, False),
    "patient": (lambda p, s: reverse("api:patient_detail", args=[p.pk]), AuditEvent.Action.PATIENT_VIEWED, True),
    "patient's scans": (lambda p, s: reverse("api:patient_scans", args=[p.pk]), AuditEvent.Action.SCAN_LISTED, True),
    "scan": (lambda p, s: reverse("api:scan_detail", args=[s.pk]), AuditEvent.Action.SCAN_VIEWED, True),
    "prediction": (lambda p, s: reverse("api:prediction_detail", args=[s.predictions.get().pk]), AuditEvent.Action.PREDICTION_VIEWED, True),
    "reviews": (lambda p, s: reverse("api:prediction_reviews", args=[s.predictions.get().pk]), AuditEvent.Action.REVIEWS_LISTED, True),
    "worklist": (lambda p, s: reverse("api:worklist"), AuditEvent.Action.WORKLIST_VIEWED, False),
}


@pytest.mark.parametrize("name", PAGE_READS)
def test_each_page_read_adds_exactly_one_row(clinician_client, clinician, patient, result, name):
    url, action, names_patient = PAGE_READS[name]
    before = rows()
    response = clinician_client.get(url(patient, result))
    assert response.status_code == 200
    row = one_new_row(before, action=action, actor=clinician, via="web", ip_address="127.0.0.1")
    assert row.patient == (patient if names_patient else None)


@pytest.mark.parametrize("name", API_READS)
def test_each_api_read_adds_exactly_one_row(client, clinician, patient, result, name):
    url, action, names_patient = API_READS[name]
    headers = token_headers(clinician)
    before = rows()
    assert client.get(url(patient, result), **headers).status_code == 200
    row = one_new_row(before, action=action, actor=clinician, via="api")
    assert row.patient == (patient if names_patient else None)


def test_lists_and_searches_name_what_they_showed(clinician_client, client, clinician, patient, result):
    clinician_client.get(reverse("diagnosis:patient_list") + "?q=okaf")
    page_row = AuditEvent.objects.get(action=AuditEvent.Action.PATIENT_LISTED)
    assert page_row.details == {"query": "okaf", "page": 1, "patients": [str(patient.pk)]}
    client.get(reverse("api:worklist"), **token_headers(clinician))
    assert AuditEvent.objects.get(action=AuditEvent.Action.WORKLIST_VIEWED, via="api").details["scans"] == [str(result.pk)]


@pytest.mark.parametrize("admin_page", ["admin:diagnosis_patient_changelist", "admin:diagnosis_patient_change"])
def test_django_admin_patient_pages_add_exactly_one_row(client, administrator, patient, admin_page):
    client.force_login(administrator)
    url = reverse(admin_page, args=[patient.pk] if admin_page.endswith("change") else [])
    before = rows()
    assert client.get(url).status_code == 200
    row = one_new_row(before, actor=administrator, via="admin")
    assert (row.action, row.patient) == (
        (AuditEvent.Action.PATIENT_VIEWED, patient) if admin_page.endswith("change") else (AuditEvent.Action.PATIENT_LISTED, None)
    )


def test_one_look_at_the_patient_page_with_its_images_and_heatmap_is_one_row(clinician_client, clinician, patient, result):
    before = rows()
    page = clinician_client.get(reverse("diagnosis:patient_detail", args=[patient.pk])).content.decode()
    embedded = set(re.findall(r'(?:src|data-heatmap)="(/scans/[^"]+)"', page))
    assert len(embedded) == 2 and any("heatmaps" in url for url in embedded)  # the X-ray and the (collapsed) heatmap
    for url in embedded:
        for _ in range(3):  # the browser loads them, and loads them again
            assert clinician_client.get(url.replace("&amp;", "&")).status_code == 200
    one_new_row(before, action=AuditEvent.Action.PATIENT_VIEWED, patient=patient)


def test_a_seen_id_that_is_not_this_users_page_view_does_not_hide_the_fetch(client, clinician, administrator, patient, result):
    client.force_login(administrator)
    client.get(reverse("diagnosis:patient_detail", args=[patient.pk]))
    someone_elses = AuditEvent.objects.get(actor=administrator, action=AuditEvent.Action.PATIENT_VIEWED)
    client.force_login(clinician)
    image = reverse("diagnosis:scan_image", args=[result.pk])
    for seen in (someone_elses.pk, 10**9, "x"):
        before = rows()
        assert client.get(f"{image}?seen={seen}").status_code == 200
        one_new_row(before, action=AuditEvent.Action.SCAN_IMAGE_VIEWED, actor=clinician, scan=result)


def test_a_card_that_has_not_changed_shows_nothing_and_adds_no_row(clinician_client, patient, add_scan):
    scan = add_scan(patient)
    before = rows()
    assert clinician_client.get(reverse("diagnosis:scan_card", args=[scan.pk]) + "?shown=queued").status_code == 204
    assert rows() == before


def test_a_correction_records_each_changed_field_old_and_new(client, clinician, patient):
    response = client.patch(
        reverse("api:patient_detail", args=[patient.pk]), {"family_name": "Okafor-Bell", "date_of_birth": "1970-02-03"},
        content_type="application/json", **token_headers(clinician),
    )
    assert response.status_code == 200
    row = AuditEvent.objects.get(action=AuditEvent.Action.PATIENT_UPDATED)
    assert row.details["changes"] == {"family_name": ["Okafor", "Okafor-Bell"], "date_of_birth": [None, "1970-02-03"]}


def test_a_revised_review_records_what_changed(clinician_client, patient, result):
    prediction = result.predictions.get()
    url = reverse("diagnosis:prediction_review", args=[prediction.pk])
    clinician_client.post(url, {"finding": "positive", "agrees": "yes"})
    clinician_client.post(url, {"finding": "negative", "agrees": "no", "note": "Consolidation is old."})
    first, second = AuditEvent.objects.filter(action=AuditEvent.Action.PREDICTION_REVIEWED).order_by("id")
    assert first.details["changes"] == {"finding": [None, "positive"], "agrees": [None, True], "note": [None, ""]}
    assert second.details == {
        "prediction": prediction.pk, "revised": True, "blind": False,
        "changes": {"finding": ["positive", "negative"], "agrees": [True, False], "note": ["", "Consolidation is old."]},
    }
    assert Review.objects.filter(prediction=prediction).count() == 2


@pytest.mark.parametrize("url_name", ["diagnosis:audit_trail", "diagnosis:audit_trail_export"])
def test_clinicians_cannot_read_or_export_the_trail(clinician_client, patient, url_name):
    clinician_client.get(reverse("diagnosis:patient_detail", args=[patient.pk]))
    response = clinician_client.get(reverse(url_name), {"patient": "MRN-0001"})
    assert response.status_code == 403
    assert b"MRN-0001" not in response.content and b"patient.viewed" not in response.content


def test_administrators_filter_the_trail_and_export_exactly_the_filtered_rows(client, clinician, administrator, site_b, patient, result):
    other = Patient.objects.create(site=site_b, medical_record_number="CG-9", family_name="Berg", given_name="Bo")
    client.force_login(clinician)
    client.get(reverse("diagnosis:patient_detail", args=[patient.pk]))
    client.force_login(administrator)
    client.get(reverse("diagnosis:patient_detail", args=[other.pk]))
    client.get(reverse("diagnosis:patient_list"), {"q": "berg"})

    page = client.get(reverse("diagnosis:audit_trail"), {"patient": "mrn-0001"})
    assert page.status_code == 200 and b"MRN-0001" in page.content and b"CG-9" not in page.content

    def exported(**filters):
        response = client.get(reverse("diagnosis:audit_trail_export"), filters)
        assert response.status_code == 200 and response["Content-Type"] == "text/csv"
        return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))

    by_patient = exported(patient="MRN-0001")
    assert [(r["user"], r["action"], r["patient_id"]) for r in by_patient] == [("dr_a", "patient.viewed", str(patient.pk))]
    by_user = exported(user="admin_a", action="patient.viewed")
    assert [(r["medical_record_number"], r["site"]) for r in by_user] == [("CG-9", "cg")]
    search = exported(user="admin_a", action="patient.listed")
    assert json.loads(search[0]["details"]) == {"query": "berg", "page": 1, "patients": [str(other.pk)]}
    tomorrow = date.today() + timedelta(days=1)
    assert exported(date_from=tomorrow.isoformat()) == []
    assert AuditEvent.objects.filter(action=AuditEvent.Action.TRAIL_EXPORTED, actor=administrator).count() == 4


def test_an_invalid_filter_is_a_sentence_and_exports_nothing(client, administrator):
    client.force_login(administrator)
    page = client.get(reverse("diagnosis:audit_trail"), {"date_from": "2026-05-02", "date_to": "2026-05-01"})
    assert page.status_code == 400 and "is after the “to” date".encode() in page.content
    assert client.get(reverse("diagnosis:audit_trail_export"), {"date_from": "yesterday"}).status_code == 400
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.TRAIL_EXPORTED).exists()


def test_cells_a_spreadsheet_would_run_are_quoted(client, administrator, site_b):
    client.force_login(administrator)
    formula = Patient.objects.create(site=site_b, medical_record_number="=1+1", family_name="X", given_name="Y")
    client.get(reverse("diagnosis:patient_detail", args=[formula.pk]))
    response = client.get(reverse("diagnosis:audit_trail_export"), {"action": "patient.viewed"})
    row = next(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert row["medical_record_number"] == "'=1+1"
