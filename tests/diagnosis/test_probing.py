"""What a user may not see answers like what does not exist: another site's code in a filter, and
the server's folders in the API's version detail (clinicians get no paths)."""
import pytest
from django.urls import reverse

from tests.api import assert_json_error, token_headers

pytestmark = pytest.mark.django_db


def worklist(client, user, site_code):
    return client.get(reverse("api:worklist"), {"site": site_code}, **token_headers(user))


def test_another_sites_code_answers_like_an_unknown_code(client, clinician, site_b):
    other, unknown = worklist(client, clinician, site_b.code), worklist(client, clinician, "nowhere")
    assert assert_json_error(other, 400)["detail"]["site"] == ["No site you may see has the code cg."]
    assert assert_json_error(unknown, 400)["detail"]["site"] == ["No site you may see has the code nowhere."]
    assert worklist(client, clinician, "ste").status_code == 200


def test_an_administrator_filters_by_any_site(client, administrator, site_b):
    assert worklist(client, administrator, site_b.code).status_code == 200


def test_the_version_detail_names_the_dataset_folder_without_the_servers_path(client, clinician, administrator, make_version, settings):
    from ml.models import ModelVersion

    version = make_version()
    folder = f"{settings.DATASETS_ROOT}/covid-2026"
    ModelVersion.objects.filter(pk=version.pk).update(evaluation_set=f"test split of {folder} (folders)", training_params={"config": {"data_dir": folder}})
    url = reverse("api:version_detail", args=[version.pk])
    seen_by_clinician = client.get(url, **token_headers(clinician)).json()
    assert seen_by_clinician["evaluation_set"] == "test split of covid-2026 (folders)"
    assert str(settings.DATASETS_ROOT) not in str(seen_by_clinician) and str(settings.DATASETS_ROOT) not in str(client.get(reverse("api:version_list"), **token_headers(clinician)).json())
    assert client.get(url, **token_headers(administrator)).json()["evaluation_set"] == f"test split of {folder} (folders)"
