"""What a newcomer tripped over on first use, each asked as their browser would: the icon every
page asks for, a placeholder study date, a demo result that must not look clinical, the model pages
in words rather than Python, and pages that point to where things are."""
import datetime
import io
import re

import pytest
from django.contrib.staticfiles import finders
from django.test import Client
from django.urls import reverse
from PIL import Image

from diagnosis.models import Scan

pytestmark = pytest.mark.django_db


def test_the_icon_every_page_asks_for_is_a_real_small_icon_not_a_404(db):
    answer = Client().get("/favicon.ico")  # asked before anyone signs in, too
    assert answer.status_code == 301 and answer["Location"].endswith("favicon.ico") and answer["Location"].startswith("/static/")
    icon = Image.open(io.BytesIO(open(finders.find("favicon.ico"), "rb").read()))
    assert icon.format == "ICO" and icon.size <= (32, 32)


def test_a_placeholder_study_date_is_shown_as_unknown(clinician_client, patient, add_scan):
    scan = add_scan(patient)
    Scan.objects.filter(pk=scan.pk).update(study_date=datetime.date(1901, 1, 1))
    card = clinician_client.get(reverse("diagnosis:scan_card", args=[scan.pk])).content.decode()
    row = clinician_client.get(reverse("diagnosis:worklist_row", args=[scan.pk])).content.decode()
    assert "1901" not in card + row
    assert "study date unknown" in card and "study date unknown" in row


def test_a_demo_result_says_demo_before_anything_and_is_not_coloured_like_a_clinical_one(clinician_client, patient, add_result, make_version):
    demo = add_result(patient, make_version(synthetic=True), "normal", 0.1)
    clinical = add_result(patient, make_version(), "normal", 0.1)
    for scan, page in ((demo, "scan_card"), (demo, "scan_report")):
        text = clinician_client.get(reverse(f"diagnosis:{page}", args=[scan.pk])).content.decode()
        box = text.split('<p class="result negative demo">')[1]
        assert box.index("DEMO MODEL · not for clinical use") < box.index("No COVID-19 pattern found"), page
    assert "result negative demo" not in clinician_client.get(reverse("diagnosis:scan_card", args=[clinical.pk])).content.decode()


def test_the_model_pages_speak_in_words_and_say_active_once_per_row(client, administrator, make_version):
    from ml import services

    version = make_version()
    services.promote_version(version.pk, reason="first", override=True)
    client.force_login(administrator)
    detail = client.get(reverse("ml:version_detail", args=[version.pk])).content.decode()
    assert "{'" not in detail and "['" not in detail and "{&#x27;" not in detail and "[&#x27;" not in detail
    listing = client.get(reverse("ml:version_list")).content.decode()
    row = listing.split('class="is-active"')[1].split("</tr>")[0]
    assert len(re.findall(r">\s*active\s*<", row, flags=re.IGNORECASE)) == 1, "the status column says it; the name needs no badge too"


def test_the_users_page_points_at_the_top_bars_audit_trail_and_the_training_form_at_the_finding(client, administrator):
    client.force_login(administrator)
    users = client.get(reverse("diagnosis:account_list")).content.decode()
    assert f'href="{reverse("diagnosis:audit_trail")}">Audit trail</a> (in the top bar)' in users
    assert "the clinician's finding" in client.get(reverse("ml:job_create")).content.decode()


def test_saving_a_review_returns_to_the_card_reviewed(clinician_client, patient, add_result, make_version):
    scan = add_result(patient, make_version(), "covid", 0.8)
    answer = clinician_client.post(reverse("diagnosis:prediction_review", args=[scan.latest_prediction.pk]), {"finding": "negative", "agrees": "no"})
    assert answer.status_code == 302 and answer["Location"].endswith(f"?scan={scan.pk}#scan-{scan.pk}")
    assert Scan.objects.get(pk=scan.pk).reviewed


def test_the_upload_script_is_told_which_refusal_the_identity_confirmation_settles(clinician_client, patient):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from tests.ml.engine.dicom_files import dicom_file

    files = [SimpleUploadedFile("someone-else.dcm", dicom_file(128, 0, PatientID="Covid0000")), SimpleUploadedFile("note.png", b"not an image")]
    answer = clinician_client.post(reverse("diagnosis:scan_upload", args=[patient.pk]), {"images": files}, HTTP_ACCEPT="application/json").json()
    assert [(file["name"], file["identity"]) for file in answer["files"]] == [("someone-else.dcm", True), ("note.png", False)]
    # Without the script, the page that comes back has the confirmation unfolded too.
    files = [SimpleUploadedFile("someone-else.dcm", dicom_file(128, 0, PatientID="Covid0000")), SimpleUploadedFile("note.png", b"not an image")]
    page = clinician_client.post(reverse("diagnosis:scan_upload", args=[patient.pk]), {"images": files}).content.decode()
    assert '<details class="identity-confirm" open>' in page
