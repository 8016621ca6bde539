from django.contrib.auth.decorators import login_not_required
from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from . import auth, views

app_name = "api"


def token_view(view_class, **initkwargs):
    # The API authenticates with tokens inside DRF, so the site-wide login redirect must not apply.
    return login_not_required(view_class.as_view(**initkwargs))


urlpatterns = [
    path("patients/", token_view(views.PatientList), name="patient_list"),
    path("patients/<uuid:patient_id>/", token_view(views.PatientDetail), name="patient_detail"),
    path("patients/<uuid:patient_id>/scans/", token_view(views.PatientScans), name="patient_scans"),
    path("scans/<uuid:scan_id>/", token_view(views.ScanDetail), name="scan_detail"),
    path("auth/token/", token_view(auth.TokenCreate), name="token_create"),
    path("tokens/", token_view(auth.TokenList), name="token_list"),
    path("tokens/<str:token_id>/", token_view(auth.TokenRevoke), name="token_revoke"),
    # Both need a login (SPECTACULAR_SETTINGS SERVE_PERMISSIONS).
    path("schema/", token_view(SpectacularAPIView), name="schema"),
    path("docs/", token_view(SpectacularSwaggerSplitView, url_name="api:schema"), name="docs"),
]
