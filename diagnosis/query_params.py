"""What a query string may hold before it reaches the database or the audit trail. Anything can be
typed into an address bar; each rule here turns what the database would choke on into a sentence
(a 400) or into something harmless, in one place for the pages, the API and Django admin."""
import unicodedata
from datetime import UTC, date

from django.core.exceptions import BadRequest, ValidationError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

# A filter date outside these years is a typing mistake, and 9999-12-31 plus a day is no date at all.
EARLIEST_DATE, LATEST_DATE = date(1900, 1, 1), date(2199, 12, 31)
# Ids in the query string (an audit row's `seen`) are decimal ASCII digits that fit the database's bigint.
MAX_ID_DIGITS = 18


def sane_date(value):
    """A validator for filter dates, for Django forms and DRF serializers alike."""
    if value and not EARLIEST_DATE <= value <= LATEST_DATE:
        raise ValidationError(f"Give a date between {EARLIEST_DATE:%Y} and {LATEST_DATE:%Y}.", code="date_out_of_range")


def id_or_none(text):
    """The integer an id parameter names, or None when it is not one ("²" is a digit to Python but
    not to int(); twenty digits overflow the database)."""
    text = text or ""
    if text.isascii() and text.isdigit() and len(text) <= MAX_ID_DIGITS:
        return int(text)
    return None


def moment_or_none(text):
    """The moment an ISO time with its offset names, in UTC, or None: a time without an offset is
    ambiguous, and one near year 1 or 9999 leaves the calendar once moved to UTC."""
    try:
        moment = parse_datetime(text or "")
        return moment.astimezone(UTC) if moment is not None and timezone.is_aware(moment) else None
    except (ValueError, OverflowError):
        return None


def refuse_control_characters(text):
    """A search text without control characters (a NUL byte breaks PostgreSQL's query; no name or
    record number holds one); raises BadRequest, a 400 with the sentence, otherwise."""
    if any(unicodedata.category(character) == "Cc" for character in text):
        raise BadRequest("The search may not contain control characters; type a name or a record number.")
    return text


def jsonb_safe(value):
    """`value` with every NUL character removed from its texts, keys included: PostgreSQL's jsonb
    refuses \\u0000, and the audit trail copies query strings as they came."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {jsonb_safe(key): jsonb_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonb_safe(item) for item in value]
    return value
