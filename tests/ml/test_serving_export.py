"""A version's serving model is exported and checked once, where TensorFlow already runs: by the
training job that registers it. A version without one says so on its page."""
import shutil
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from ml import services
from ml.engine import make_synthetic_dataset
from ml.models import ServingExport, TrainingJob

pytestmark = pytest.mark.django_db


@pytest.mark.django_db(transaction=True)  # the job's heartbeat thread has its own connection: the job row must be committed
def test_a_training_job_exports_and_validates_the_version_it_registers(administrator):
    folder = make_synthetic_dataset(Path(settings.DATASETS_ROOT) / "serving-synthetic", n_per_class=8, image_size=96, seed=4)
    try:
        job = services.start_training_job(actor=administrator, dataset=folder.name, backbone="xception", epochs=1, image_size=71,
                                          weights="none", batch_size=8, enqueue=False)
        job = services.execute_training_job(job.pk)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert job.status == TrainingJob.Status.SUCCEEDED, job.failure_reason
    serving = ServingExport.objects.get(version=job.version)
    assert serving.accepted and serving.runtime == "openvino", serving.reason
    assert "split" in serving.validated_on, "checked on the version's own held-out images"
    assert set(serving.record["files"]) == {"serving.xml", "serving.bin", "cam_weights.npy"}


def test_a_version_without_an_export_says_keras_serves_it(client, administrator, make_version):
    version = make_version()
    client.force_login(administrator)
    page = client.get(reverse("ml:version_detail", args=[version.pk])).content.decode()
    assert "No serving export yet" in page and f"export_serving --version {version.pk}" in page
