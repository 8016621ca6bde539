from django.urls import path

from . import node_views, unmatched_views, views

app_name = "pacs"
urlpatterns = [
    path("patients/<uuid:patient_id>/pacs-studies/", views.prior_studies, name="prior_studies"),
    path("dicom-nodes/", node_views.node_list, name="node_list"),
    path("dicom-nodes/new/", node_views.node_edit, name="node_create"),
    path("dicom-nodes/<int:node_id>/", node_views.node_edit, name="node_edit"),
    path("dicom-nodes/<int:node_id>/delete/", node_views.node_delete, name="node_delete"),
    path("unmatched-dicom/", unmatched_views.unmatched_list, name="unmatched_list"),
    path("unmatched-dicom/<int:instance_id>/", unmatched_views.unmatched_detail, name="unmatched_detail"),
    path("unmatched-dicom/<int:instance_id>/file/", unmatched_views.unmatched_file, name="unmatched_file"),
    path("unmatched-dicom/<int:instance_id>/register/", unmatched_views.unmatched_register, name="unmatched_register"),
    path("unmatched-dicom/<int:instance_id>/dismiss/", unmatched_views.unmatched_dismiss, name="unmatched_dismiss"),
]
