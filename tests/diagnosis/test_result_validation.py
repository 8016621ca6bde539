"""The result card quotes figures that mean something: validation from films of sources the
version never trained on (with n and CIs), else "not validated on independent sources"; demo and
overridden versions say so on every result, on the page and through the API."""
import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from ml import services
from tests.ml.conftest import make_dataset
from tests.ml.test_comparison import engine_metrics

pytestmark = pytest.mark.django_db


def card(client, patient):
    return client.get(reverse("diagnosis:patient_detail", args=[patient.pk])).content.decode()


def api_prediction(user, scan):
    api = APIClient()
    api.force_authenticate(user)
    return api.get(reverse("api:scan_detail", args=[scan.pk])).json()["predictions"][0]


def test_an_unvalidated_demo_result_says_so_and_quotes_no_figures(clinician_client, clinician, patient, add_result, make_version):
    version = make_version(synthetic=True, auc=1.0)
    scan = add_result(patient, version, "covid", 0.9)
    page = card(clinician_client, patient)
    assert "not validated on independent sources" in page and "DEMO MODEL" in page
    assert "sensitivity" not in page.split('class="model"')[1].split("</p>")[0]
    prediction = api_prediction(clinician, scan)
    assert prediction["model_version"]["validation"] is None
    assert prediction["model_version"]["notes"][:2] == [
        "DEMO MODEL trained on synthetic images, not on patients: not for clinical use.", "Not validated on independent sources."]
    assert prediction["disclaimer"].startswith("DEMO MODEL") and "not a diagnosis" in prediction["disclaimer"]
    assert prediction["threshold_source"] == "version"


def test_an_externally_evaluated_version_quotes_those_figures_with_n(clinician_client, clinician, patient, add_result, make_version, settings, tmp_path):
    folder = make_dataset(f"external-{tmp_path.name}", {"covid": 3, "normal": 3})
    settings.ML_EXTERNAL_EVALUATION_SET = folder.name
    version = make_version()
    services.record_evaluation(version=version, dataset_path=folder.name, fingerprint="e" * 64, n_images=598,
                               metrics=engine_metrics(0.81, 0.7, 0.57, n=598))
    scan = add_result(patient, version, "normal", 0.2)
    page = card(clinician_client, patient)
    assert f"validated on its external evaluation set {folder.name} (n=598)" in page
    assert "ROC AUC 0.81 (95% CI 0.71–0.86)" in page and "not validated on independent sources" not in page
    validation = api_prediction(clinician, scan)["model_version"]["validation"]
    assert validation["n"] == 598 and validation["roc_auc"]["value"] == 0.81


def test_an_overridden_version_says_so_on_every_result(clinician_client, clinician, patient, add_result, make_version):
    version = make_version()
    services.promote_version(version.pk, reason="shadow trial", override=True)
    scans = [add_result(patient, version, "covid", 0.7, minutes_ago=m) for m in (1, 2)]
    page = card(clinician_client, patient)
    assert page.count("OVERRIDDEN") == 2
    assert api_prediction(clinician, scans[0])["model_version"]["overridden"] is True


def test_a_source_held_out_test_with_one_class_per_source_is_quoted_with_its_caveat(clinician_client, clinician, patient, add_result, make_version):
    from tests.ml.conftest import held_out_record

    version = make_version(source_held_out=held_out_record())
    scan = add_result(patient, version, "covid", 0.8)
    model_line = card(clinician_client, patient).split('class="model"')[1].split("</p>")[0]
    assert "measured on its source-held-out test (n=10)" in model_line and "validated on" not in model_line
    assert "(each held-out source holds one class only, so its AUC also measures telling sources apart)." in model_line
    # The worklist quotes no figures: a badge says the same.
    assert "validation confounded by source" in clinician_client.get(reverse("diagnosis:home")).content.decode()
    prediction = api_prediction(clinician, scan)
    assert prediction["model_version"]["validation"]["caveat"].startswith("each held-out source holds one class only")
    assert "Source-held-out test: each held-out source holds one class only, so its AUC also measures telling sources apart." \
        in prediction["model_version"]["notes"]


def test_a_source_held_out_test_with_a_source_holding_both_classes_is_quoted_as_validation(clinician_client, clinician, patient, add_result, make_version):
    from tests.ml.conftest import held_out_record

    version = make_version(source_held_out=held_out_record(nih_covid=3))
    scan = add_result(patient, version, "covid", 0.8)
    model_line = card(clinician_client, patient).split('class="model"')[1].split("</p>")[0]
    assert "validated on its source-held-out test (n=13)" in model_line and "telling sources apart" not in model_line
    assert "validation confounded by source" not in clinician_client.get(reverse("diagnosis:home")).content.decode()
    validation = api_prediction(clinician, scan)["model_version"]["validation"]
    assert validation["caveat"] is None and validation["n"] == 13
