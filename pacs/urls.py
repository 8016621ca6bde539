from django.urls import path

from . import node_views, views

app_name = "pacs"
urlpatterns = [
    path("patients/<uuid:patient_id>/pacs-studies/", views.prior_studies, name="prior_studies"),
    path("dicom-nodes/", node_views.node_list, name="node_list"),
    path("dicom-nodes/new/", node_views.node_edit, name="node_create"),
    path("dicom-nodes/<int:node_id>/", node_views.node_edit, name="node_edit"),
    path("dicom-nodes/<int:node_id>/delete/", node_views.node_delete, name="node_delete"),
]
