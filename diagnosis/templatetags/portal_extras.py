from django import template

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
    """A metric with its 95% confidence interval, e.g. '0.91 (0.86–0.95)'."""
    if not figure or figure.get("value") is None:
        return "—"
    text = f"{figure['value']:.2f}"
    if figure.get("ci_low") is not None and figure.get("ci_high") is not None:
        text += f" (95% CI {figure['ci_low']:.2f}–{figure['ci_high']:.2f})"
    return text


@register.filter
def any_pending(scans):
    return any(scan.is_pending for scan in scans)
