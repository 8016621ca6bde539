from django.urls import path

from . import views

app_name = "ml"

urlpatterns = [
    path("", views.version_list, name="version_list"),
]
