"""Watching a live site, week by week: the share of films the model called positive, its mean
positive probability, how often clinicians' findings agreed with it, and the share of reads found
indeterminate. Each week of the live period is held against control limits from the site's silent
period (the weeks before its newest decision to go live), and a week outside them is an alert on
the administrators' pages.

The limits are Shewhart's three sigma around the silent period's pooled value, for the week's own
number of films (a p-chart for the shares; for the mean probability, the silent period's standard
deviation over the square root of the week's films), so a quiet week with few films does not alarm
on noise while a busy one is held tightly. Weeks are counted from Monday (the database's TruncWeek).
"""
import math
from collections import defaultdict
from datetime import timedelta

from django.db.models import F, Q
from django.db.models.functions import TruncWeek
from django.utils import timezone

from . import selectors
from .models import Prediction, Review, Site

SIGMAS = 3
FIGURES = {
    "positive_share": "share of films called positive",
    "mean_probability": "mean positive probability",
    "agreement": "agreement with clinicians' findings",
    "indeterminate_share": "share of reads found indeterminate",
}


def _weekly_rows(site):
    """{week: {"probabilities": [...], "positive": int, "agree": int, "judged": int, "indeterminate": int, "reads": int}}."""
    weeks = defaultdict(lambda: {"probabilities": [], "positive": 0, "agree": 0, "judged": 0, "indeterminate": 0, "reads": 0})
    predictions = Prediction.objects.filter(scan__patient__site=site).annotate(
        week=TruncWeek("created_at"), said_positive=Q(label=F("model_version__positive_class")),
    ).values_list("week", "positive_probability", "said_positive")
    for week, probability, said_positive in predictions:
        weeks[week]["probabilities"].append(probability)
        weeks[week]["positive"] += bool(said_positive)
    reviews = Review.objects.filter(superseded_at__isnull=True, prediction__scan__patient__site=site).annotate(
        week=TruncWeek("prediction__created_at")).select_related("prediction__model_version")
    for review in reviews:
        row = weeks[review.week]
        row["reads"] += 1
        says_positive = selectors.review_says_positive(review)
        if says_positive is None:
            row["indeterminate"] += 1
        else:
            row["judged"] += 1
            row["agree"] += says_positive == review.prediction.is_positive
    return weeks


def _figures(row):
    n = len(row["probabilities"])
    return {
        "positive_share": (row["positive"], n), "mean_probability": (row["probabilities"], n),
        "agreement": (row["agree"], row["judged"]), "indeterminate_share": (row["indeterminate"], row["reads"]),
    }


def _value(name, figure):
    data, n = figure
    if not n:
        return None
    return sum(data) / n if name == "mean_probability" else data / n


def _limits(name, baseline, n):
    """(low, high) for a week of n, from the silent period's pooled figure; None without a baseline."""
    centre = _value(name, baseline)
    if centre is None or not n:
        return None
    if name == "mean_probability":
        values = baseline[0]
        spread = math.sqrt(sum((v - centre) ** 2 for v in values) / max(len(values) - 1, 1))
    else:
        spread = math.sqrt(centre * (1 - centre))
    half = SIGMAS * spread / math.sqrt(n)
    return max(0.0, centre - half), min(1.0, centre + half)


def watch(site):
    """The site's weeks, oldest first, each with its figures and, in the live period, the limits and
    alerts; plus the alerts of every live week, as sentences."""
    weeks = _weekly_rows(site)
    decision = site.mode_decision if site.mode == Site.Mode.LIVE else None
    went_live = decision.decided_at if decision else None
    silent_weeks = [week for week in weeks if went_live is not None and week < _week_of(went_live)]
    baseline = {name: _pooled(name, [_figures(weeks[week])[name] for week in silent_weeks]) for name in FIGURES}
    rows, alerts = [], []
    for week in sorted(weeks):
        figures = _figures(weeks[week])
        row = {"week": week.date().isoformat(), "films": len(weeks[week]["probabilities"]), "reads": weeks[week]["reads"],
               "live": went_live is not None and week not in silent_weeks, "figures": {}}
        for name, figure in figures.items():
            value = _value(name, figure)
            limits = _limits(name, baseline[name], figure[1]) if row["live"] else None
            outside = limits is not None and value is not None and not limits[0] <= value <= limits[1]
            row["figures"][name] = {"value": value, "n": figure[1], "limits": limits, "alert": outside}
            if outside:
                alerts.append(f"Week of {row['week']}: the {FIGURES[name]} was {value:.2f}, outside the silent period's limits "
                              f"{limits[0]:.2f}-{limits[1]:.2f} for {figure[1]} {'films' if name in ('positive_share', 'mean_probability') else 'reads'}.")
        rows.append(row)
    return {"site": site.code, "went_live": went_live.isoformat() if went_live else None, "silent_weeks": len(silent_weeks), "weeks": rows, "alerts": alerts}


def _pooled(name, figures):
    if name == "mean_probability":
        values = [value for data, _ in figures for value in data]
        return values, len(values)
    return sum(data for data, _ in figures), sum(n for _, n in figures)



def _week_of(moment):
    """The Monday 00:00 of a moment, in the time zone TruncWeek uses, to compare with its weeks."""
    local = timezone.localtime(moment)
    return (local - timedelta(days=local.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
