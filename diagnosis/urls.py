from django.urls import path

from . import site_threshold_views, views

app_name = "diagnosis"

urlpatterns = [
    path("", views.worklist, name="home"),
    path("worklist/news/", views.worklist_news, name="worklist_news"),
    path("worklist/scans/<uuid:scan_id>/", views.worklist_row, name="worklist_row"),
    path("patients/", views.patient_list, name="patient_list"),
    path("patients/new/", views.patient_create, name="patient_create"),
    path("patients/<uuid:patient_id>/", views.patient_detail, name="patient_detail"),
    path("patients/<uuid:patient_id>/scans/", views.scan_upload, name="scan_upload"),
    path("scans/<uuid:scan_id>/card/", views.scan_card, name="scan_card"),
    path("scans/<uuid:scan_id>/image.png", views.scan_image, name="scan_image"),
    path("scans/<uuid:scan_id>/heatmaps/<int:prediction_id>.png", views.scan_heatmap, name="scan_heatmap"),
    path("versions/<int:version_id>/site-thresholds/", site_threshold_views.site_threshold_list, name="site_threshold_list"),
    path("versions/<int:version_id>/site-thresholds/<int:site_id>/", site_threshold_views.site_threshold_fit, name="site_threshold_fit"),
    path("results/<int:prediction_id>/review/", views.prediction_review, name="prediction_review"),
]
