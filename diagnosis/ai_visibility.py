"""The one rule for who sees the AI result of a scan. Pages, fragments, the worklist's order and
filters, the printable report, the heatmap image and the API all ask here.

A live site's results are shown to everyone who may see its patients. A site in its silent period
keeps its results from everyone but the administrators (those who manage models): its clinicians
read the films blind, and those blind reads are what the site's local validation is computed from
(diagnosis.site_validation). Which patients and scans someone sees at all stays the business of
selectors.patients_visible_to."""
from .models import Site

SEES_SILENT_RESULTS = "ml.manage_models"

WITHHELD = "The AI result is withheld: {site} is in its silent period, in which clinicians read films blind until the model is validated on them."


def sees_every_result(user):
    return user.has_perm(SEES_SILENT_RESULTS)


def sees_ai_results_of(user, site):
    """May this user see the AI results of this site's scans?"""
    return site.mode == Site.Mode.LIVE or sees_every_result(user)


def ai_result_shown(user, scan):
    """May this user see the AI result of this scan (scan.patient.site, usually already loaded)?"""
    return sees_ai_results_of(user, scan.patient.site)


def withheld_sentence(site):
    return WITHHELD.format(site=site.name)


def reads_blind(user, scans):
    """Whether any of `scans` (a queryset the user may see) belongs to a site whose results the user
    may not see: then lists of them must not be ordered, filtered or flagged by the AI result."""
    if sees_every_result(user):
        return False
    return scans.exclude(patient__site__mode=Site.Mode.LIVE).exists()


def site_validation_line(site):
    """What every result shown at this site says about its local validation."""
    if site.mode == Site.Mode.SILENT:
        return f"Silent period at {site.name}: this result is hidden from its clinicians, who read the film blind."
    if site.mode_decision_id:
        return f"{site.mode_decision.validated_on}."
    return f"Not validated on this site's films: {site.name} was live before local validation was recorded."


# Colleagues' findings on a blind reader's film. A finding tells nothing of the AI result, but the
# site's validation takes each film's newest blind read as its truth: a second clinician who sees the
# first one's finding before reading is anchored by it, and the anchored read would then replace the
# first as the truth of that film, two correlated reads counted as one independent one. So on a film
# whose AI result a reader may not see, other people's findings (and notes, which may state them)
# stay hidden until the reader has saved their own; they then see them, as at a consensus read.
def sees_colleagues_findings(user, scan, prediction):
    """May this user read other people's reviews of this prediction (of `scan`)? Uses the prefetched reviews."""
    if ai_result_shown(user, scan):
        return True
    return any(review.reviewer_id == user.pk for review in prediction.reviews.all())


def reviews_shown(user, scan, prediction, reviews):
    """(the reviews among `reviews` this user may read, how many other readers' are held back from them)."""
    reviews = list(reviews)
    if sees_colleagues_findings(user, scan, prediction):
        return reviews, 0
    own = [review for review in reviews if review.reviewer_id == user.pk]
    return own, len({review.reviewer_id for review in reviews if review.reviewer_id != user.pk})


def held_back_sentence(count):
    """What a blind reader is told of the findings held back from them."""
    people = "a colleague has" if count == 1 else f"{count} colleagues have"
    return f"Read blind: {people} read this film; their findings are shown once you have saved yours."
