from django import template

from ml import trust
from ml.models import format_metric, metric_figure

register = template.Library()


@register.filter
def percent(value):
    """A probability as a percentage; the extremes say so rather than round to a false 0% or 100%."""
    if value is None:
        return "—"
    value = 100 * float(value)
    if 0 < value < 0.1:
        return "<0.1%"
    if 99.9 < value < 100:
        return ">99.9%"
    return f"{value:.1f}%"


@register.filter
def metric(figure):
    return format_metric(figure, digits=2)


@register.filter
def interval(item):
    """An engine figure {"value", "ci": [low, high]} with its 95% CI, e.g. '0.91 (95% CI 0.86–0.95)'."""
    return format_metric(metric_figure(item), digits=2)


@register.simple_tag
def version_trust(version):
    """The validation figures and notes every result of a version carries (ml.trust.result_trust)."""
    return trust.result_trust(version)
