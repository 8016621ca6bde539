from django import template

register = template.Library()


@register.filter
def percent(value):
    return "—" if value is None else f"{100 * float(value):.1f}%"


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
