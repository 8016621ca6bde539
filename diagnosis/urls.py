from django.urls import path

from . import account_views, audit_views, scan_views, site_threshold_views, site_validation_views, viewer_views, views

app_name = "diagnosis"

urlpatterns = [
    path("", views.worklist, name="home"),
    path("worklist/news/", views.worklist_news, name="worklist_news"),
    path("worklist/scans/<uuid:scan_id>/", scan_views.worklist_row, name="worklist_row"),
    path("patients/", views.patient_list, name="patient_list"),
    path("patients/new/", views.patient_create, name="patient_create"),
    path("patients/<uuid:patient_id>/", views.patient_detail, name="patient_detail"),
    path("patients/<uuid:patient_id>/edit/", views.patient_edit, name="patient_edit"),
    path("patients/<uuid:patient_id>/scans/", scan_views.scan_upload, name="scan_upload"),
    path("scans/<uuid:scan_id>/move/", scan_views.scan_move, name="scan_move"),
    path("scans/<uuid:scan_id>/card/", scan_views.scan_card, name="scan_card"),
    path("scans/<uuid:scan_id>/report/", scan_views.scan_report, name="scan_report"),
    path("scans/<uuid:scan_id>/image.png", scan_views.scan_image, name="scan_image"),
    path("scans/<uuid:scan_id>/dicom", viewer_views.scan_dicom, name="scan_dicom"),
    path("scans/<uuid:scan_id>/viewer/", viewer_views.scan_viewer, name="scan_viewer"),
    path("scans/<uuid:scan_id>/heatmaps/<int:prediction_id>.png", scan_views.scan_heatmap, name="scan_heatmap"),
    path("audit/", audit_views.audit_trail, name="audit_trail"),
    path("audit/export.csv", audit_views.audit_trail_export, name="audit_trail_export"),
    path("users/", account_views.account_list, name="account_list"),
    path("users/new/", account_views.account_create, name="account_create"),
    path("users/<int:user_id>/", account_views.account_edit, name="account_edit"),
    path("versions/<int:version_id>/site-thresholds/", site_threshold_views.site_threshold_list, name="site_threshold_list"),
    path("versions/<int:version_id>/site-thresholds/<int:site_id>/", site_threshold_views.site_threshold_fit, name="site_threshold_fit"),
    path("sites/", site_validation_views.site_overview, name="site_overview"),
    path("sites/remeasure/", site_validation_views.site_remeasure_start, name="site_remeasure_start"),
    path("sites/<int:site_id>/validation/", site_validation_views.site_validation_report, name="site_validation"),
    path("sites/<int:site_id>/precision-check/", site_validation_views.site_precision_check_start, name="site_precision_check_start"),
    path("results/<int:prediction_id>/review/", scan_views.prediction_review, name="prediction_review"),
]
