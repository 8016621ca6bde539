"""The pacs app's links on diagnosis's pages: the patient page's link to fetch earlier films from
the PACS, and the top bar's and worklist's link to the unmatched DICOM images. Tags, so that
diagnosis's views need not know the pacs app (it depends on diagnosis, never the reverse)."""
from django import template
from django.urls import reverse

from .. import priors
from ..selectors import unmatched_count

register = template.Library()


@register.inclusion_tag("pacs/_prior_link.html", takes_context=True)
def prior_fetch_link(context, patient):
    user = context["request"].user
    node = priors.node_for(patient) if user.has_perm("diagnosis.add_scan") else None
    return {"node": node, "url": reverse("pacs:prior_studies", args=[patient.pk]) if node else ""}


@register.inclusion_tag("pacs/_unmatched_link.html", takes_context=True)
def unmatched_link(context, style="nav"):
    """The link to the unmatched DICOM images with their count, for those who may file them, when
    some are waiting (`style`: "nav" for the top bar, "notice" for the worklist). Nobody else learns
    even the count."""
    request = context["request"]
    count = unmatched_count(request.user) if request.user.is_authenticated else 0
    current = request.resolver_match is not None and request.resolver_match.url_name == "unmatched_list"
    return {"count": count, "style": style, "current": current, "url": reverse("pacs:unmatched_list")}
