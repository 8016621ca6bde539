"""A result made before the grey map keeps its stored colour overlay; a new one is coloured in the browser."""
import pytest
from django.urls import reverse

from diagnosis.models import Prediction

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("is_map, element", [(False, '<img class="legacy-heatmap"'), (True, '<canvas class="overlay" hidden data-heatmap=')])
def test_the_viewer_shows_each_kind_of_stored_heatmap(clinician_client, patient, make_version, add_result, is_map, element):
    scan = add_result(patient, make_version(), "covid", 0.9)
    Prediction.objects.filter(scan=scan).update(heatmap_name="test/heat.png", heatmap_is_map=is_map, runtime="openvino", precision="fp32")
    page = clinician_client.get(reverse("diagnosis:patient_detail", args=[patient.pk])).content.decode()
    assert element in page
    assert "openvino fp32" in page
