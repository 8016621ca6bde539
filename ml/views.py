from django.core.exceptions import PermissionDenied
from django.shortcuts import render

from . import selectors


def administrators_only(view):
    def wrapper(request, *args, **kwargs):
        if not selectors.can_manage_models(request.user):
            raise PermissionDenied("Only administrators manage model versions.")
        return view(request, *args, **kwargs)

    wrapper.__name__ = view.__name__
    return wrapper


@administrators_only
def version_list(request):
    context = {"versions": selectors.versions_for_comparison(), "promotions": selectors.promotion_history()[:20]}
    return render(request, "ml/version_list.html", context)
