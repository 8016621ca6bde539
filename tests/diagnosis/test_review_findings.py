"""Reviews on the patient page: a clinical finding is required, each clinician's current review is
shown with its history, and revising starts from what they said before."""
import re

import pytest
from django.urls import reverse

from diagnosis.models import AuditEvent, Review

pytestmark = pytest.mark.django_db


@pytest.fixture
def result(add_result, make_version, patient):
    return add_result(patient, make_version(), "covid", 0.88).predictions.get()


def post_review(client, prediction, **fields):
    return client.post(reverse("diagnosis:prediction_review", args=[prediction.pk]), fields, follow=True)


def card_of(client, prediction):
    page = client.get(reverse("diagnosis:patient_detail", args=[prediction.scan.patient_id])).content.decode()
    return page[page.index(f'id="scan-{prediction.scan_id}"'):]


def test_a_review_without_a_finding_is_refused_with_a_sentence(clinician_client, result):
    response = post_review(clinician_client, result, agrees="yes", note="looks typical")
    assert "Choose your finding (COVID-19 positive, negative or indeterminate)" in response.content.decode()
    assert Review.objects.count() == 0


def test_the_current_review_and_its_history_are_on_the_card(clinician_client, clinician, result):
    response = post_review(clinician_client, result, finding="positive", agrees="yes", note="Bilateral peripheral opacities.")
    assert "Your review was saved." in response.content.decode()
    card = card_of(clinician_client, result)
    assert "COVID-19 positive</strong> · dr_a agrees with the AI" in card and "Review history" not in card
    assert "Revise your review" in card
    assert re.search(r'value="positive" required checked', card) and re.search(r'value="yes" required checked', card)

    response = post_review(clinician_client, result, finding="indeterminate", agrees="no", note="Could be oedema.")
    assert "Your review was revised; the earlier one is kept in its history." in response.content.decode()
    card = card_of(clinician_client, result)
    assert "Indeterminate</strong> · dr_a disagrees with the AI" in card
    assert "COVID-19 positive</strong>" not in card, "only the current review is shown outside the history"
    history = card[card.index("Review history (2)"):card.index("</details>", card.index("Review history (2)"))]
    assert history.index("COVID-19 positive, agreed") < history.index("Indeterminate, disagreed") and "(revised" in history
    assert re.search(r'value="indeterminate" required checked', card) and re.search(r'value="no" checked', card)
    rows = AuditEvent.objects.filter(action=AuditEvent.Action.PREDICTION_REVIEWED).order_by("at")
    assert [(row.details["revised"], row.details["changes"]["finding"], row.details["changes"]["agrees"]) for row in rows] == [
        (False, [None, "positive"], [None, True]), (True, ["positive", "indeterminate"], [True, False]),
    ]


def test_a_review_from_before_findings_says_not_recorded(clinician_client, clinician, result):
    Review.objects.create(prediction=result, reviewer=clinician, agrees=True)
    card = card_of(clinician_client, result)
    assert "Finding not recorded</strong> · dr_a agrees with the AI" in card
    assert 'checked' not in card.split('name="finding"')[1].split(">")[0], "no finding is pre-selected for an old review"
