"""A site in its silent period: the model reads every film and its results are stored, but only
administrators see them; the site's clinicians read the films blind, and each review records
whether the AI result was visible to its reader. Everything is asked through the pages and the API
as a clinician's browser or another hospital system would."""
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from diagnosis import roles, scan_intake
from diagnosis.inference import analyse_scan
from diagnosis.models import Patient, Prediction, Review, Site
from tests.api import assert_json_error, token_client
from tests.conftest import make_user, signed_in
from tests.images import png_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def silent_site():
    return Site.objects.create(name="Hillside Infirmary", code="hill")  # a new site: silent until an administrator decides


@pytest.fixture
def silent_clinician(silent_site):
    return make_user("dr_hill", roles.CLINICIANS, silent_site)




def analysed_scans(actor, patient, n=2):
    """n films uploaded through the intake and read by the model in-process (what the worker runs),
    oldest first."""
    files = [SimpleUploadedFile(f"{i}.png", png_bytes(seed=40 + i)) for i in range(n)]
    scans = scan_intake.submit_scans(actor=actor, patient=patient, uploaded_files=files)
    for scan in scans:
        analyse_scan(scan.pk)  # the first takes the others along as a batch
    return [Prediction.objects.get(scan=scan) for scan in scans]


@pytest.fixture
def silent_results(silent_site, silent_clinician, active_model_version):
    patient = Patient.objects.create(site=silent_site, medical_record_number="H-1", family_name="Ndiaye", given_name="Awa")
    return patient, analysed_scans(silent_clinician, patient)


def what_a_user_can_read(user, patient, predictions):
    """Every page, fragment, report, image and API answer that could carry an AI result."""
    client, token = signed_in(user), token_client(user)
    scan = predictions[0].scan
    return {
        "patient page": client.get(reverse("diagnosis:patient_detail", args=[patient.pk])),
        "card fragment": client.get(reverse("diagnosis:scan_card", args=[scan.pk])),
        "worklist": client.get(reverse("diagnosis:home")),
        "worklist row": client.get(reverse("diagnosis:worklist_row", args=[scan.pk])),
        "report": client.get(reverse("diagnosis:scan_report", args=[scan.pk])),
        "heatmap": client.get(reverse("diagnosis:scan_heatmap", args=[scan.pk, predictions[0].pk])),
        "api scan": token.get(reverse("api:scan_detail", args=[scan.pk])),
        "api history": token.get(reverse("api:patient_scans", args=[patient.pk])),
        "api worklist": token.get(reverse("api:worklist")),
        "api prediction": token.get(reverse("api:prediction_detail", args=[predictions[0].pk])),
    }


def shows_a_result(text, predictions):
    """Whether a page or an answer carries any of the predictions' labels or probabilities."""
    markers = ["Likely COVID-19 pattern", "No COVID-19 pattern found", "Likely positive", "positive_probability", "scan_heatmap"]
    markers += [f"{100 * prediction.positive_probability:.1f}%" for prediction in predictions]
    return [marker for marker in markers if marker in text]


def test_a_new_site_starts_silent_and_the_model_still_reads_and_stores_every_film(silent_results):
    patient, predictions = silent_results
    assert patient.site.mode == Site.Mode.SILENT
    assert all(prediction.pk and prediction.heatmap_name for prediction in predictions)


def test_a_silent_sites_clinician_sees_no_ai_result_anywhere(silent_results, silent_clinician):
    patient, predictions = silent_results
    answers = what_a_user_can_read(silent_clinician, patient, predictions)
    for name in ("patient page", "card fragment", "worklist", "worklist row", "report", "api scan", "api history", "api worklist"):
        assert answers[name].status_code == 200, name
        assert shows_a_result(answers[name].content.decode(), predictions) == [], name
    assert "silent period" in answers["card fragment"].content.decode()
    assert "silent period" in answers["report"].content.decode()
    assert answers["heatmap"].status_code == 403 and b"silent period" in answers["heatmap"].content
    assert_json_error(answers["api prediction"], 403, "ai_result_withheld")
    scan = answers["api scan"].json()
    assert scan["ai_result"] == "withheld" and scan["predictions"] == [] and "silent period" in scan["site_validation"]
    assert {row["likely_positive"] for row in answers["api worklist"].json()["results"]} == {None}


def test_an_administrator_sees_the_silent_sites_results_marked_hidden_from_its_clinicians(silent_results, administrator):
    patient, predictions = silent_results
    answers = what_a_user_can_read(administrator, patient, predictions)
    for name in ("card fragment", "report", "api scan", "api prediction"):
        assert answers[name].status_code == 200, name
        assert shows_a_result(answers[name].content.decode(), predictions), name
    assert answers["heatmap"].status_code == 200 and answers["heatmap"]["Content-Type"] == "image/png"
    assert "hidden from its clinicians" in answers["card fragment"].content.decode()
    assert answers["api scan"].json()["ai_result"] == "shown"


def test_a_live_sites_clinician_sees_the_results(silent_results, silent_clinician, silent_site):
    patient, predictions = silent_results
    Site.objects.filter(pk=silent_site.pk).update(mode=Site.Mode.LIVE)
    answers = what_a_user_can_read(silent_clinician, patient, predictions)
    for name in ("card fragment", "worklist row", "report", "api scan", "api prediction"):
        assert answers[name].status_code == 200, name
        assert shows_a_result(answers[name].content.decode(), predictions), name
    assert answers["heatmap"].status_code == 200
    assert "Not validated on this site" in answers["card fragment"].content.decode()


def test_a_silent_worklist_is_newest_first_and_cannot_be_filtered_by_the_result(silent_results, silent_clinician, add_result, make_version):
    patient, predictions = silent_results
    # A likely positive, unreviewed result uploaded long ago: a live worklist would put it first.
    old_positive = add_result(patient, make_version(), "covid", 0.99, minutes_ago=600)
    page = signed_in(silent_clinician).get(reverse("diagnosis:home"))
    rows = page.content.decode()
    assert rows.index(str(predictions[-1].scan_id)) < rows.index(str(old_positive.pk))
    assert "needs-review" not in rows and 'name="result"' not in rows
    listed = token_client(silent_clinician).get(reverse("api:worklist")).json()["results"]
    assert listed[-1]["id"] == str(old_positive.pk)
    refused = token_client(silent_clinician).get(reverse("api:worklist"), {"result": "positive"})
    assert "silent period" in assert_json_error(refused, 400)["error"]
    assert signed_in(silent_clinician).get(reverse("diagnosis:home"), {"result": "positive"}).status_code == 200  # the page drops the filter it does not offer


def test_a_blind_read_records_a_finding_and_that_the_ai_result_was_not_visible(silent_results, silent_clinician, administrator):
    patient, predictions = silent_results
    first, second = predictions
    # On the page: the form asks for the finding alone.
    card = signed_in(silent_clinician).get(reverse("diagnosis:scan_card", args=[first.scan_id])).content.decode()
    assert 'name="finding"' in card and 'name="agrees"' not in card
    signed_in(silent_clinician).post(reverse("diagnosis:prediction_review", args=[first.pk]), {"finding": "negative"})
    # Through the API: a finding alone; agreeing with a result one cannot see is refused in a sentence.
    refused = token_client(silent_clinician).post(reverse("api:prediction_reviews", args=[second.pk]), {"finding": "positive", "agrees": True}, format="json")
    assert "Give your finding only" in assert_json_error(refused, 400)["error"]
    created = token_client(silent_clinician).post(reverse("api:prediction_reviews", args=[second.pk]), {"finding": "positive"}, format="json")
    assert created.status_code == 201 and created.json()["ai_result_visible"] is False and created.json()["agrees"] is None
    # An administrator who reads the same film saw its result: not blind, and must say whether they agree.
    refused = token_client(administrator).post(reverse("api:prediction_reviews", args=[second.pk]), {"finding": "positive"}, format="json")
    assert "agree" in assert_json_error(refused, 400)["error"]
    token_client(administrator).post(reverse("api:prediction_reviews", args=[second.pk]), {"finding": "positive", "agrees": True}, format="json")
    reads = {(review.reviewer.username, review.prediction_id): (review.finding, review.agrees, review.ai_result_visible) for review in Review.objects.all()}
    assert reads == {
        ("dr_hill", first.pk): ("negative", None, False),
        ("dr_hill", second.pk): ("positive", None, False),
        ("admin_a", second.pk): ("positive", True, True),
    }
    card = signed_in(silent_clinician).get(reverse("diagnosis:scan_card", args=[first.scan_id])).content.decode()
    assert "dr_hill read blind" in card
    # The administrator's agreement, with their finding, would tell the clinician the result: not shown to them.
    card = signed_in(silent_clinician).get(reverse("diagnosis:scan_card", args=[second.scan_id])).content.decode()
    assert "admin_a read" in card and "with the AI" not in card
    report = signed_in(silent_clinician).get(reverse("diagnosis:scan_report", args=[second.scan_id])).content.decode()
    assert "admin_a read the film" in report and "with the AI result" not in report
    listed = token_client(silent_clinician).get(reverse("api:prediction_reviews", args=[second.pk])).json()["results"]
    assert {(row["reviewer"], row["agrees"]) for row in listed} == {("dr_hill", None), ("admin_a", None)}
    listed = token_client(administrator).get(reverse("api:prediction_reviews", args=[second.pk])).json()["results"]
    assert {(row["reviewer"], row["agrees"]) for row in listed} == {("dr_hill", None), ("admin_a", True)}


def test_a_site_added_in_the_admin_starts_silent_whatever_the_form_says(administrator):
    client = signed_in(administrator)
    client.post(reverse("admin:diagnosis_site_add"), {"name": "Lakeside", "code": "lake", "mode": "live"})
    assert Site.objects.get(code="lake").mode == Site.Mode.SILENT


def test_the_sites_report_says_what_the_model_looks_at_on_its_films(silent_results, silent_site, administrator, active_model_version):
    """The shortcut report's part that needs no labels, from the heatmaps stored with the silent results."""
    looks_at = token_client(administrator).get(reverse("api:site_validation", args=[silent_site.code])).json()["looks_at"]
    assert looks_at["n"] == 2 and 0 <= looks_at["mean_share_outside"] <= 1 and 0 < looks_at["mean_area_outside"] < 1
    assert looks_at["sentences"][0].startswith("On 2 of Hillside Infirmary's films:") and "falls outside the lung fields" in looks_at["sentences"][0]


def test_a_blind_reader_sees_colleagues_findings_only_after_saving_their_own(silent_results, silent_clinician, silent_site, administrator):
    """The site's validation takes each film's newest blind read as its truth: a second reader who saw
    the first one's finding would be anchored by it. So on a silent film other people's findings and
    notes wait until the reader has saved theirs; administrators and live sites see them all."""
    patient, predictions = silent_results
    first, _ = predictions
    token_client(silent_clinician).post(reverse("api:prediction_reviews", args=[first.pk]),
                                        {"finding": "positive", "note": "Patchy bilateral opacities."}, format="json")
    token_client(administrator).post(reverse("api:prediction_reviews", args=[first.pk]), {"finding": "positive", "agrees": True}, format="json")
    colleague = make_user("dr_hill2", roles.CLINICIANS, silent_site)
    colleagues_findings = ["<strong>COVID-19 positive</strong>", 'class="finding">COVID-19 positive', "Patchy bilateral opacities",
                           "read blind", "read the film", '"finding":"positive"', "admin_a"]

    def what_the_colleague_reads():
        client, token = signed_in(colleague), token_client(colleague)
        return {
            "card": client.get(reverse("diagnosis:scan_card", args=[first.scan_id])).content.decode(),
            "worklist": client.get(reverse("diagnosis:home")).content.decode(),
            "worklist row": client.get(reverse("diagnosis:worklist_row", args=[first.scan_id])).content.decode(),
            "report": client.get(reverse("diagnosis:scan_report", args=[first.scan_id])).content.decode(),
            "api reviews": token.get(reverse("api:prediction_reviews", args=[first.pk])).content.decode(),
            "api worklist": token.get(reverse("api:worklist")).content.decode(),
        }

    before = what_the_colleague_reads()
    for name, text in before.items():
        assert [finding for finding in colleagues_findings if finding in text] == [], name
    for name in ("card", "report"):
        assert "2 colleagues have read this film; their findings are shown once you have saved yours" in before[name], name
    assert "Read by 2 others: shown after yours" in before["worklist row"]
    assert token_client(colleague).get(reverse("api:prediction_reviews", args=[first.pk])).json()["results"] == []

    signed_in(colleague).post(reverse("diagnosis:prediction_review", args=[first.pk]), {"finding": "negative"})
    after = what_the_colleague_reads()
    for name, finding in (("card", "<strong>COVID-19 positive</strong>"), ("worklist row", 'class="finding">COVID-19 positive'),
                          ("report", "<strong>COVID-19 positive</strong>")):
        assert finding in after[name] and "shown once you have saved" not in after[name], name
    assert "Patchy bilateral opacities" in after["card"] and "Patchy bilateral opacities" in after["report"]
    listed = token_client(colleague).get(reverse("api:prediction_reviews", args=[first.pk])).json()["results"]
    assert {(row["reviewer"], row["finding"], row["agrees"]) for row in listed} == {
        ("dr_hill", "positive", None), ("admin_a", "positive", None), ("dr_hill2", "negative", None)}, "the result stays withheld"

    administrator_view = token_client(administrator).get(reverse("api:prediction_reviews", args=[first.pk])).json()["results"]
    assert len(administrator_view) == 3
    Site.objects.filter(pk=silent_site.pk).update(mode=Site.Mode.LIVE)
    newcomer = make_user("dr_hill3", roles.CLINICIANS, silent_site)
    assert "Patchy bilateral opacities" in signed_in(newcomer).get(reverse("diagnosis:scan_card", args=[first.scan_id])).content.decode(), \
        "at a live site findings are shown beside the result"
