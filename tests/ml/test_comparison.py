"""The comparison page: every version beside its measurement on the same evaluation set, with CIs,
their ROC curves in one plot, the active one marked."""
import pytest
from django.core.files.storage import storages
from django.urls import reverse

from ml import datasets, model_store, services
from tests.ml.conftest import make_dataset

pytestmark = pytest.mark.django_db


def engine_metrics(auc, sensitivity, specificity, n=12):
    """The shape ml.engine.judge.evaluate.evaluate_artifact returns (the parts the page reads)."""
    def proportion(value):
        return {"value": value, "ci": [max(0, value - 0.2), min(1, value + 0.1)], "ci_method": "wilson"}

    return {
        "n": n, "roc_auc": {"value": auc, "ci": [auc - 0.1, min(1.0, auc + 0.05)], "ci_method": "bootstrap"},
        "sensitivity": proportion(sensitivity), "specificity": proportion(specificity), "ppv": proportion(0.8), "npv": proportion(0.7),
        "roc_curve": {"fpr": [0.0, 0.1, 0.4, 1.0], "tpr": [0.0, 0.6, 0.9, 1.0], "thresholds": [1.0, 0.8, 0.4, 0.0]},
    }


def measure(version, dataset_path, fingerprint, metrics):
    return services.record_evaluation(version=version, dataset_path=dataset_path, fingerprint=fingerprint, n_images=6, metrics=metrics)


@pytest.fixture
def evaluation_folder(settings, tmp_path):
    folder = make_dataset(f"compare-{tmp_path.name}", {"covid": 3, "normal": 3})
    settings.ML_EVALUATION_SET = folder.name
    return folder


def test_versions_are_compared_on_the_configured_evaluation_set(admin_client, make_version, evaluation_folder):
    fingerprint = datasets.dataset_fingerprint(evaluation_folder)
    old, new, unmeasured = make_version(), make_version(synthetic=True), make_version()
    services.promote_version(old.pk, reason="test", override=True)
    measure(old, evaluation_folder.name, fingerprint, engine_metrics(0.81, 0.75, 0.66))
    measure(new, evaluation_folder.name, fingerprint, engine_metrics(0.93, 0.9, 0.8))
    # A measurement on an earlier state of the folder is not mixed into the comparison.
    measure(unmeasured, evaluation_folder.name, "0" * 64, engine_metrics(0.99, 1, 1))

    page = admin_client.get(reverse("ml:version_list")).content.decode()
    assert f"measured on <strong>{evaluation_folder.name}</strong>" in page
    assert "0.81 (95% CI 0.71–0.86)" in page and "0.93 (95% CI 0.83–0.98)" in page
    assert "0.90 (95% CI 0.70–1.00)" in page  # new's sensitivity with its Wilson interval
    assert "0.99" not in page and page.count("not measured on this set") == 1
    # The active version says so once, in its status column (issue 23: not twice in one row).
    assert page.count('<span class="badge active">') == 1 and 'class="is-active"' in page and "DEMO" in page
    assert f'action="{reverse("ml:version_evaluate", args=[unmeasured.pk])}"' in page
    assert reverse("ml:roc_plot") in page

    confirm = admin_client.get(reverse("ml:version_promote", args=[new.pk])).content.decode()
    assert "(now)" in confirm and "(after)" in confirm and "0.81 (95% CI" in confirm and "0.93 (95% CI" in confirm
    assert "DEMO MODEL" in confirm


def test_the_roc_plot_is_drawn_once_when_a_measurement_is_recorded_and_served_as_a_file(admin_client, make_version, evaluation_folder, settings, tmp_path):
    settings.MODEL_STORE_DIR = tmp_path  # a model store of this test's own, so no earlier plot is there
    fingerprint = datasets.dataset_fingerprint(evaluation_folder)
    storages["models"].delete(model_store.key_of(services.comparison_plot_path(fingerprint)))  # an earlier test's, when the session keeps files in a bucket
    assert admin_client.get(reverse("ml:roc_plot")).status_code == 404  # nothing measured yet
    measure(make_version(), evaluation_folder.name, fingerprint, engine_metrics(0.81, 0.75, 0.66))
    drawn = services.comparison_plot_path(fingerprint)
    first = drawn.read_bytes()
    plot = admin_client.get(reverse("ml:roc_plot"))
    assert plot.status_code == 200 and plot["Content-Type"] == "image/png" and "no-store" in plot["Cache-Control"]
    assert b"".join(plot.streaming_content) == first
    measure(make_version(), evaluation_folder.name, fingerprint, engine_metrics(0.93, 0.9, 0.8))
    assert drawn.read_bytes() != first  # the second version's curve was added


def test_without_an_evaluation_set_the_page_says_versions_cannot_be_compared(admin_client, make_version, settings):
    settings.ML_EVALUATION_SET = "no-such-evaluation-folder"
    version = make_version()
    page = admin_client.get(reverse("ml:version_list")).content.decode()
    assert "No evaluation set is configured, so versions cannot be compared on the same images." in page
    assert "AUC 0.90 (95% CI 0.80–0.95)" in page  # each version's own test split, labelled as such
    response = admin_client.post(reverse("ml:version_evaluate", args=[version.pk]), follow=True)
    assert "No evaluation set is configured" in response.content.decode()
