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


@register.simple_tag(takes_context=True)
def reviews_shown(context, scan, prediction):
    """The reviews of `prediction` the page's reader may read (ai_visibility.reviews_shown): every one
    (`all`, oldest first), the current ones, and the sentence for what is held back ("" when nothing is)."""
    shown, held_back = ai_visibility.reviews_shown(context["user"], scan, prediction, prediction.reviews.all())
    return {
        "all": sorted(shown, key=lambda review: review.created_at),
        "current": [review for review in shown if review.is_current],
        "held_back": ai_visibility.held_back_sentence(held_back) if held_back else "", "held_back_count": held_back,
    }
