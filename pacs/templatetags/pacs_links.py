"""The patient page's link to fetch earlier films from the PACS: a tag, so that diagnosis's views
need not know the pacs app (it depends on diagnosis, never the reverse)."""
from django import template
from django.urls import reverse

from .. import priors

register = template.Library()


@register.inclusion_tag("pacs/_prior_link.html", takes_context=True)
def prior_fetch_link(context, patient):
    user = context["request"].user
    node = priors.node_for(patient) if user.has_perm("diagnosis.add_scan") else None
    return {"node": node, "url": reverse("pacs:prior_studies", args=[patient.pk]) if node else ""}
