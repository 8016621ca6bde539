from django.contrib.auth.decorators import login_not_required
from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from . import auth, ml_views, reviews, site_precision_views, site_views, views

app_name = "api"


def token_view(view_class, **initkwargs):
    # The API authenticates with tokens inside DRF, so the site-wide login redirect must not apply.
    return login_not_required(view_class.as_view(**initkwargs))


urlpatterns = [
    path("patients/", token_view(views.PatientList), name="patient_list"),
    path("patients/<uuid:patient_id>/", token_view(views.PatientDetail), name="patient_detail"),
    path("patients/<uuid:patient_id>/scans/", token_view(views.PatientScans), name="patient_scans"),
    path("scans/<uuid:scan_id>/", token_view(views.ScanDetail), name="scan_detail"),
    path("scans/<uuid:scan_id>/move/", token_view(views.ScanMove), name="scan_move"),
    path("worklist/", token_view(views.Worklist), name="worklist"),
    path("predictions/<int:prediction_id>/", token_view(reviews.PredictionDetail), name="prediction_detail"),
    path("predictions/<int:prediction_id>/reviews/", token_view(reviews.PredictionReviews), name="prediction_reviews"),
    path("sites/", token_view(site_views.SiteList), name="site_list"),
    path("sites/<slug:code>/validation/", token_view(site_views.SiteValidationReport), name="site_validation"),
    path("sites/<slug:code>/drift/", token_view(site_views.SiteDrift), name="site_drift"),
    path("sites/<slug:code>/mode/", token_view(site_views.SiteMode), name="site_mode"),
    path("versions/<int:version_id>/site-remeasures/", token_view(site_views.VersionSiteRemeasures), name="version_site_remeasures"),
    path("versions/<int:version_id>/site-precision-checks/", token_view(site_precision_views.VersionSitePrecisionChecks),
         name="version_site_precision_checks"),
    path("versions/", token_view(ml_views.VersionList), name="version_list"),
    path("versions/<int:version_id>/", token_view(ml_views.VersionDetail), name="version_detail"),
    path("versions/<int:version_id>/promote/", token_view(ml_views.VersionPromote), name="version_promote"),
    path("training-jobs/", token_view(ml_views.TrainingJobList), name="training_job_list"),
    path("training-jobs/<int:job_id>/", token_view(ml_views.TrainingJobDetail), name="training_job_detail"),
    path("training-jobs/<int:job_id>/cancel/", token_view(ml_views.TrainingJobCancel), name="training_job_cancel"),
    path("auth/token/", token_view(auth.TokenCreate), name="token_create"),
    path("tokens/", token_view(auth.TokenList), name="token_list"),
    path("tokens/<str:token_id>/", token_view(auth.TokenRevoke), name="token_revoke"),
    # Both need a login (SPECTACULAR_SETTINGS SERVE_PERMISSIONS).
    path("schema/", token_view(SpectacularAPIView), name="schema"),
    path("docs/", token_view(SpectacularSwaggerSplitView, url_name="api:schema"), name="docs"),
]
