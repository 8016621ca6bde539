"""What a page may show of an AI result, asked of the one rule (diagnosis.ai_visibility)."""
from django import template

from diagnosis import ai_visibility

register = template.Library()


@register.filter
def ai_shown_to(scan, user):
    return ai_visibility.ai_result_shown(user, scan)


@register.filter
def withheld_sentence(site):
    return ai_visibility.withheld_sentence(site)


@register.filter
def site_validation_line(site):
    return ai_visibility.site_validation_line(site)
