"""The generalisation report: an evaluation job measures the version and its shortcut report on
the evaluation set and on the external set, draws the plots once, and the report page reads them."""
import shutil
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from ml import services
from ml.engine import make_synthetic_dataset
from ml.models import Evaluation, EvaluationRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def external_set(settings):
    folder = make_synthetic_dataset(Path(settings.DATASETS_ROOT) / "external", n_per_class=5, image_size=96, seed=23)
    settings.ML_EXTERNAL_EVALUATION_SET = "external"
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_evaluating_measures_both_sets_with_a_shortcut_report_and_the_page_shows_it(
    admin_client, client, clinician, active_model_version, evaluation_set, external_set, settings
):
    settings.ML_SHORTCUT_GRADCAM = 4
    version = active_model_version
    assert admin_client.post(reverse("ml:version_evaluate", args=[version.pk])).status_code == 302
    runs = list(EvaluationRun.objects.order_by("pk"))
    assert [run.dataset_path for run in runs] == ["evaluation", "external"]
    for run in runs:  # what the training worker does with each queued run
        assert services.execute_evaluation(run.pk).status == EvaluationRun.Status.SUCCEEDED

    external = Evaluation.objects.get(version=version, dataset_path="external")
    report = external.metrics["shortcuts"]
    assert report["n"] == 10 and set(report["occlusion"]["overall"]) == {"unoccluded", "lungs_blanked", "outside_lungs_blanked"}
    assert report["heat_outside_lungs"]["n_gradcam"] == 4
    files = external.metrics["report_files"]
    assert files["calibration"] == "calibration.png" and len(files["examples"]) == 4

    page = admin_client.get(reverse("ml:version_report", args=[version.pk]))
    text = page.content.decode()
    assert page.status_code == 200
    assert "External evaluation: external" in text and "Evaluation set: evaluation" in text
    share = report["heat_outside_lungs"]["mean_share_outside"]
    assert f"{share:.0%} of its heatmap falls outside the lung fields" in text
    assert "Made active by an administrator&#x27;s override" in text or "Made active by an administrator's override" in text
    assert "95% CI" in text
    plot = admin_client.get(reverse("ml:evaluation_plot", args=[version.pk, external.pk, "heatmap-0.png"]))
    assert plot.status_code == 200 and plot["Content-Type"] == "image/png" and b"".join(plot.streaming_content)[:4] == b"\x89PNG"
    assert admin_client.get(reverse("ml:evaluation_plot", args=[version.pk, external.pk, "..%2Fsecret.png"])).status_code == 404

    # A clinician may read the summary; a stranger is sent to log in.
    client.force_login(clinician)
    summary = client.get(reverse("ml:version_report", args=[version.pk]))
    assert summary.status_code == 200 and "What the model looks at" in summary.content.decode()
    assert "Version details" not in summary.content.decode()


def test_a_version_never_evaluated_says_nothing_is_known(admin_client, make_version):
    version = make_version()
    text = admin_client.get(reverse("ml:version_report", args=[version.pk])).content.decode()
    assert "Nothing is known about whether it reads the lungs" in text
    assert "Not validated on independent sources." in text


def test_the_report_is_refused_to_a_user_without_a_role(client, user_without_role, make_version):
    client.force_login(user_without_role)
    assert client.get(reverse("ml:version_report", args=[make_version().pk])).status_code == 403


def test_the_source_held_out_test_is_shown_per_source_with_the_caveat_when_each_class_has_its_own_source(admin_client, make_version):
    from tests.ml.conftest import CXNET, NIH, held_out_record

    version = make_version(source_held_out=held_out_record())
    page = admin_client.get(reverse("ml:version_report", args=[version.pk]))
    assert page.status_code == 200
    section = page.content.decode().split('id="source-held-out"')[1].split("</section>")[0]
    assert "Trained without the films of COVID-CXNet web/literature collection, NIH ChestX-ray8 &quot;No Finding&quot;" in section
    assert "n=10" in section and "95% CI" in section
    assert "so this AUC measures telling the sources apart as much as reading the lungs" in section
    # Each source's row: its films per class, the figure its one class allows, and no AUC.
    rows = {row.split("</td>")[0].removeprefix("<td>"): row.split("</tr>")[0] for row in section.split("<tr>")[2:]}
    assert set(rows) == {CXNET, NIH.replace('"', "&quot;")}
    assert "covid 5" in rows[CXNET] and "one class" in rows[CXNET] and "95% CI" in rows[CXNET]
    # On the page, once: the result notes say it too.
    assert "Source-held-out test: each held-out source holds one class only" in page.content.decode()


def test_a_held_out_source_with_both_classes_has_its_own_auc_and_no_caveat(admin_client, make_version):
    from tests.ml.conftest import NIH, held_out_record

    version = make_version(source_held_out=held_out_record(nih_covid=3))
    text = admin_client.get(reverse("ml:version_report", args=[version.pk])).content.decode()
    section = text.split('id="source-held-out"')[1].split("</section>")[0]
    assert "telling the sources apart" not in section and "telling sources apart" not in text
    nih_row = next(row for row in section.split("<tr>") if row.startswith("<td>" + NIH.replace('"', "&quot;"))).split("</tr>")[0]
    assert "covid 3, normal 5" in nih_row and "one class" not in nih_row
    assert f"An AUC within one source is given for {NIH} (both classes there)".replace('"', "&quot;") in section
