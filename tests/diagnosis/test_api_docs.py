"""The published schema documents the shared JSON error on every operation, and only for signed-in users."""
from django.urls import reverse

from tests.api import token_headers

ERROR = "#/components/schemas/Error"


def operations(schema):
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            yield f"{method.upper()} {path}", method, operation["responses"]


def test_every_operation_documents_the_shared_error_for_each_status(client, clinician):
    schema = client.get(reverse("api:schema"), {"format": "json"}, **token_headers(clinician)).json()
    for name, method, responses in operations(schema):
        expected = {"400", "401", "403", "404", "405", "406", "429", "500"} | ({"413", "415"} if method in {"post", "patch"} else set())
        assert expected <= set(responses), f"{name} lacks {expected - set(responses)}"
        for code in expected:
            assert responses[code]["content"]["application/json"]["schema"]["$ref"] == ERROR, f"{name} {code}"


def test_the_upload_documents_202_its_idempotency_key_and_409(client, clinician):
    schema = client.get(reverse("api:schema"), {"format": "json"}, **token_headers(clinician)).json()
    upload = schema["paths"]["/api/v1/patients/{patient_id}/scans/"]["post"]
    assert {"202", "409"} <= set(upload["responses"])
    assert any(parameter["name"] == "Idempotency-Key" and parameter["in"] == "header" for parameter in upload["parameters"])


def test_the_schema_and_docs_need_a_login(client):
    for name in ("api:schema", "api:docs"):
        assert client.get(reverse(name)).status_code == 401


def test_the_model_version_beside_a_result_documents_its_label(client, clinician):
    schema = client.get(reverse("api:schema"), {"format": "json"}, **token_headers(clinician)).json()
    summary = schema["components"]["schemas"]["ModelVersionSummary"]
    assert "label" in summary["required"] and summary["properties"]["label"]["readOnly"] is True
    assert "every result" in summary["properties"]["label"]["description"]
    prediction = schema["components"]["schemas"]["Prediction"]["properties"]["model_version"]
    reference = prediction.get("$ref") or prediction["allOf"][0]["$ref"]
    assert reference == "#/components/schemas/ModelVersionSummary"
