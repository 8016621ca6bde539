"""The API asks the same Django permissions and per-site rule as the pages."""
from django.http import Http404
from rest_framework.permissions import BasePermission


class HasRolePermission(BasePermission):
    """DRF's side of `permission_required`: each view names the Django permission a method needs
    (`permission_required`, by method; HEAD and OPTIONS as GET), and the role groups grant it.

    For one record the per-site object rule (django-rules) decides; a record of a site the user
    may not see is 404, as on the pages, so its existence is not revealed."""

    message = "Your account's role does not allow this request."

    def required(self, request, view):
        return view.permission_required.get(request.method, view.permission_required["GET"])

    def has_permission(self, request, view):
        return request.user.has_perm(self.required(request, view))

    def has_object_permission(self, request, view, obj):
        if not request.user.has_perm(view.permission_required["GET"], obj):
            raise Http404
        return True
