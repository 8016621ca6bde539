"""Usernames that cannot pass for one another: the audit trail, the user list and a colleague
reading "admin_a" must never mean two accounts. A username is refused when it equals an existing
one ignoring case, or is a look-alike of one: they share a skeleton, the NFKC-normalised name (as
typed, and case-folded: "I" passes for "l" only before folding) with every character replaced by
the plainest of its Unicode look-alikes (the confusables data of Unicode TR39, as kept by
confusable_homoglyphs; ASCII first)."""
import unicodedata
from functools import lru_cache

from confusable_homoglyphs import confusables
from django.contrib.auth.models import User


def _look_alikes(character):
    return {entry["c"] for entry in confusables.confusables_data.get(character, []) if len(entry["c"]) == 1}


@lru_cache(maxsize=4096)
def _plainest(character):
    # The data lists look-alikes pairwise ("l" lists "I", "I" need not list "l"): follow them all.
    group, frontier = {character}, {character}
    while frontier:
        frontier = set().union(*(_look_alikes(found) for found in frontier)) - group
        group |= frontier
    return min(group, key=lambda candidate: (not candidate.isascii(), candidate))


def _skeleton(text):
    return "".join(_plainest(character) for character in text)


def skeletons(username):
    normalised = unicodedata.normalize("NFKC", username)
    return {_skeleton(normalised), _skeleton(normalised.casefold())}


def refusal(username, *, exclude_pk=None):
    """None when `username` may be used; otherwise the sentence saying which account it would pass for.
    Every existing username is compared: a hospital's few thousand accounts take milliseconds."""
    wanted = skeletons(username)
    for existing in User.objects.exclude(pk=exclude_pk).values_list("username", flat=True).iterator():
        if existing == username:
            return f"The username {username} is already taken."
        if skeletons(existing) & wanted:
            return f"The username {username} looks like the existing username {existing}; choose one that cannot be mistaken for it."
    return None
