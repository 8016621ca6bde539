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
def in_words(value):
    """A JSON field as a person reads it ("covid 12, normal 14"), never as a Python dict or list."""
    if isinstance(value, dict):
        return ", ".join(f"{key} {in_words(item)}" for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(in_words(item) for item in value)
    return str(value)


@register.filter
def metric(figure):
    return format_metric(figure, digits=2)


@register.filter
def identity_differences(scan):
    """How the scan's DICOM header names someone other than the patient it is filed under (empty
    when it does not), compared afresh so a moved scan or a corrected patient stops being flagged."""
    from diagnosis import identity

    return identity.mismatches(identity.header_patient_of_scan(scan), scan.patient)


@register.filter
def current_review_by(prediction, user):
    """The user's current review of the prediction, from the prefetched reviews (no query)."""
    return next((review for review in prediction.reviews.all() if review.is_current and review.reviewer_id == user.pk), None)


@register.filter
def header_name(value):
    """A DICOM person name (FAMILY^GIVEN^MIDDLE) as it reads: "FAMILY, GIVEN MIDDLE"."""
    family, _, rest = (value or "").partition("^")
    rest = " ".join(part for part in rest.split("^") if part)
    return f"{family}, {rest}" if family and rest else family or rest


@register.simple_tag
def review_findings():
    """The findings a review form offers, in the model's order and words."""
    from diagnosis.models import Review

    return Review.Finding.choices


@register.filter
def interval(item):
    """An engine figure {"value", "ci": [low, high]} with its 95% CI, e.g. '0.91 (95% CI 0.86–0.95)'."""
    return format_metric(metric_figure(item), digits=2)


@register.simple_tag(takes_context=True)
def version_trust(context, version):
    """The validation figures and notes every result of a version carries (ml.trust.result_trust),
    asked once per version and request however many results a page lists."""
    request = context.get("request")
    if request is not None and not hasattr(request, "_version_trust"):
        request._version_trust = {}
    return trust.result_trust(version, getattr(request, "_version_trust", None))
