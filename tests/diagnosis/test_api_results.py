"""Predictions, reviews and the worklist through /api/v1/, scoped like the pages."""
import pytest
from django.urls import reverse

from diagnosis.models import Review, Scan
from tests.api import assert_json_error, token_headers


@pytest.fixture
def api(client, clinician):
    client.defaults.update(token_headers(clinician))
    return client


@pytest.fixture
def result(add_result, make_version, patient):
    return add_result(patient, make_version(synthetic=True), "covid", 0.91).predictions.get()


def review(api, prediction, agrees, note="", finding="default"):
    # The AI said covid: agreeing is a positive finding, disagreeing a negative one, unless the test says otherwise.
    finding = ("positive" if agrees else "negative") if finding == "default" else finding
    body = {"agrees": agrees, "note": note, **({"finding": finding} if finding is not None else {})}
    return api.post(reverse("api:prediction_reviews", args=[prediction.pk]), body, content_type="application/json")


def test_a_prediction_names_its_model_version_and_figures(api, result):
    body = api.get(reverse("api:prediction_detail", args=[result.pk])).json()
    assert (body["label"], body["positive_probability"], body["threshold"]) == ("covid", 0.91, 0.5)
    version = body["model_version"]
    assert version["label"] == version["name"] == result.model_version.label == f"v{result.model_version.pk}" and version["demo"] is True
    assert version["headline_metrics"]["roc_auc"]
    assert body["disclaimer"].startswith("DEMO MODEL")


def test_a_first_review_is_created(api, result, clinician):
    response = review(api, result, True, "Agree: bilateral opacities.")
    assert response.status_code == 201
    assert response.json()["current"] is True and response.json()["finding"] == "positive"
    assert (Review.objects.get().reviewer, Review.objects.get().finding) == (clinician, "positive")


@pytest.mark.parametrize("finding", [None, "maybe", ""])
def test_a_review_without_a_valid_finding_is_refused(api, result, finding):
    body = assert_json_error(review(api, result, True, finding=finding), 400, "invalid")
    assert "finding" in body["detail"]
    assert Review.objects.count() == 0


def test_a_second_review_revises_the_first_and_keeps_it_as_history(api, result):
    first = review(api, result, True).json()
    revised = review(api, result, False, "On second look: normal.")
    assert revised.status_code == 200
    listed = api.get(reverse("api:prediction_reviews", args=[result.pk])).json()["results"]
    assert [(row["id"], row["finding"], row["agrees"], row["current"]) for row in listed] == [
        (revised.json()["id"], "negative", False, True), (first["id"], "positive", True, False),
    ]


def test_worklist_filters_like_the_page(api, add_result, add_scan, make_version, patient):
    version = make_version()
    positive = add_result(patient, version, "covid", 0.9)
    add_result(patient, version, "normal", 0.1)
    add_scan(patient, Scan.Status.QUEUED)
    body = api.get(reverse("api:worklist"), {"result": "positive"}).json()
    assert [row["id"] for row in body["results"]] == [str(positive.pk)]
    assert body["results"][0]["likely_positive"] is True


def test_worklist_refuses_a_bad_filter_in_json(api):
    assert_json_error(api.get(reverse("api:worklist"), {"status": "exploded"}), 400, "invalid")


def test_other_sites_results_are_404_and_absent_from_the_worklist(client, other_site_clinician, result):
    client.defaults.update(token_headers(other_site_clinician))
    assert_json_error(client.get(reverse("api:prediction_detail", args=[result.pk])), 404)
    assert_json_error(client.get(reverse("api:prediction_reviews", args=[result.pk])), 404)
    assert_json_error(review(client, result, False), 404)
    assert Review.objects.count() == 0
    assert client.get(reverse("api:worklist")).json()["count"] == 0


def test_a_review_on_the_page_is_revised_through_the_api(api, client, clinician, result):
    client.force_login(clinician)
    client.post(reverse("diagnosis:prediction_review", args=[result.pk]), {"agrees": "yes", "finding": "positive"})
    response = review(api, result, False, "Changed my mind.")
    assert response.status_code == 200
    assert Review.objects.filter(prediction=result, reviewer=clinician, superseded_at__isnull=True).get().agrees is False
    assert Review.objects.filter(prediction=result, reviewer=clinician).count() == 2


def test_two_clinicians_each_keep_their_own_current_review(api, client, result, site_a):
    from diagnosis import roles
    from tests.conftest import make_user

    review(api, result, True)
    client.defaults.update(token_headers(make_user("dr_c", roles.CLINICIANS, site_a)))
    assert review(client, result, False).status_code == 201
    assert Review.objects.filter(prediction=result, superseded_at__isnull=True).count() == 2


def test_a_user_without_a_role_gets_403_from_every_new_address(client, user_without_role, result):
    client.defaults.update(token_headers(user_without_role))
    for url in [
        reverse("api:worklist"), reverse("api:prediction_detail", args=[result.pk]), reverse("api:prediction_reviews", args=[result.pk]),
        reverse("api:version_list"), reverse("api:version_detail", args=[result.model_version_id]),
    ]:
        assert_json_error(client.get(url), 403, "permission_denied")
    assert_json_error(review(client, result, True), 403)
    assert Review.objects.count() == 0
