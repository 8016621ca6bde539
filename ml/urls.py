from django.urls import path

from . import report_views, views

app_name = "ml"

urlpatterns = [
    path("", views.version_list, name="version_list"),
    path("roc.png", views.roc_plot, name="roc_plot"),
    path("versions/<int:version_id>/", views.version_detail, name="version_detail"),
    path("versions/<int:version_id>/report/", report_views.version_report, name="version_report"),
    path("versions/<int:version_id>/report/internal/<str:name>", report_views.internal_plot, name="internal_plot"),
    path("versions/<int:version_id>/report/<int:evaluation_id>/<str:name>", report_views.evaluation_plot, name="evaluation_plot"),
    path("versions/<int:version_id>/promote/", views.version_promote, name="version_promote"),
    path("versions/<int:version_id>/evaluate/", views.version_evaluate, name="version_evaluate"),
    path("versions/<int:version_id>/derive-int8/", views.version_derive_int8, name="version_derive_int8"),
    path("jobs/", views.job_list, name="job_list"),
    path("jobs/new/", views.job_create, name="job_create"),
    path("jobs/<int:job_id>/", views.job_detail, name="job_detail"),
    path("jobs/<int:job_id>/progress/", views.job_progress, name="job_progress"),
    path("jobs/<int:job_id>/cancel/", views.job_cancel, name="job_cancel"),
]
