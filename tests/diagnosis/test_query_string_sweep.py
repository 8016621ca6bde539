"""No 5xx from any query string: generated query strings (NUL bytes, huge and negative numbers,
far dates, unknown keys, non-ASCII digits) sent to every page and API list a GET reaches without
path parameters, and to a patient's pages, as a clinician and as an administrator. Bounded: a few
examples per address, so it runs in the normal suite (about a minute on two cores)."""
from urllib.parse import urlencode

import pytest
from django.urls import get_resolver
from django.urls.resolvers import URLResolver
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from diagnosis.models import Prediction

EXAMPLES_PER_ADDRESS = 8
# Not lists, or not a question of query strings: signing out, the schema and its docs (schemathesis
# covers them), admin's script and autocomplete endpoints.
SKIPPED = {"accounts/logout/", "admin/logout/", "api/v1/schema/", "api/v1/docs/", "admin/jsi18n/", "admin/autocomplete/", "healthz",
           # /readyz answers 503 by design when a service is down (tests/portal/test_health.py); /metrics 404s without its token.
           "readyz", "metrics"}

KNOWN_KEYS = ["page", "page_size", "date_from", "date_to", "status", "result", "review", "site", "q", "seen", "since",
              "shown", "scan", "action", "user", "patient", "o", "p", "e", "all", "\x00", "foo"]
text = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=12)
numbers = st.one_of(st.integers(min_value=-(10**30), max_value=10**30), st.sampled_from([0, -1, 2**63, 2**63 - 1, 10**18]))
HOSTILE_VALUES = ["\x00", "a\x00", "²", "١٢", "-1", str(10**18), str(2**63), "9999-12-31", "0001-01-01", "2026-02-30", "2026-01-01T00:00:00Z",
                  "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00", "cg", "nowhere"]
values = st.one_of(text, numbers.map(str), st.dates().map(str), st.sampled_from(HOSTILE_VALUES))
query_strings = st.dictionaries(st.one_of(st.sampled_from(KNOWN_KEYS), text), values, max_size=4).map(lambda params: urlencode(params))
# Besides the generated ones, every address gets every hostile value under every known key at once.
EVERY_KEY_ONE_VALUE = [urlencode({key: value for key in KNOWN_KEYS}) for value in HOSTILE_VALUES]


def parameterless_get_routes(patterns=None, prefix=""):
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from parameterless_get_routes(pattern.url_patterns, route)
        elif "<" not in route and "(?P" not in route and route not in SKIPPED:
            yield "/" + route


@pytest.fixture
def addresses(clinician_scan, make_version):
    prediction = Prediction.objects.create(
        scan=clinician_scan, model_version=make_version(), label="covid", probabilities={"covid": 0.8, "normal": 0.2},
        positive_probability=0.8, threshold=0.5, inference_ms=1, queue_to_result_ms=1,
    )
    patient = clinician_scan.patient_id
    return sorted(parameterless_get_routes()) + [
        f"/patients/{patient}/", f"/api/v1/patients/{patient}/scans/", f"/api/v1/predictions/{prediction.pk}/reviews/",
        f"/scans/{clinician_scan.pk}/card/", f"/scans/{clinician_scan.pk}/image.png",
    ]


@pytest.mark.parametrize("role", ["clinician", "administrator"])
def test_no_query_string_answers_a_server_error(client, request, addresses, role):
    client.force_login(request.getfixturevalue(role))
    client.raise_request_exception = False
    server_errors = []

    def call_once(address, query):
        response = client.get(f"{address}?{query}")
        if response.status_code >= 500:
            server_errors.append(f"{address}?{query}: {response.status_code}")

    for address in addresses:
        for query in EVERY_KEY_ONE_VALUE:
            call_once(address, query)

        @settings(max_examples=EXAMPLES_PER_ADDRESS, deadline=None, database=None, phases=[Phase.generate], suppress_health_check=list(HealthCheck))
        @given(query=query_strings)
        def call(query):
            call_once(address, query)

        call()
    assert not server_errors, server_errors
