"""Who and what a DICOM header says a scan is, and whether it names someone other than the patient
the scan is filed under.

The header is kept on the Scan as written (so a card can show "Anonymized" exactly as the file had
it); dates and times are parsed where they can be. The comparison is made at upload (refused unless
the uploader confirms with a reason) and again on every card, so a scan moved to the right patient
or a corrected patient record stops being flagged.
"""
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import PureWindowsPath

ORIGINAL_NAME_LIMIT = 120
# What anonymisation tools and modalities write instead of a patient: not a claim about anyone.
ANONYMOUS_WORDS = {"", "ANONYMIZED", "ANONYMISED", "ANONYMOUS", "ANON", "UNKNOWN", "NONE", "NULL", "N/A", "NA", "-", "^", "XXX"}


@dataclass(frozen=True)
class HeaderPatient:
    patient_id: str = ""
    name: str = ""
    birth_date: date | None = None


def display_filename(name):
    """The client's file name for display only: no directories (Windows ones included), no control
    characters, at most ORIGINAL_NAME_LIMIT characters. Never used as a path."""
    base = PureWindowsPath(str(name or "")).name  # splits on both / and \
    base = "".join(character for character in base if character.isprintable()).strip()
    if len(base) > ORIGINAL_NAME_LIMIT:
        base = base[: ORIGINAL_NAME_LIMIT - 1] + "…"
    return base


def _parse(value, pattern, length):
    try:
        return datetime.strptime(value[:length], pattern)
    except (TypeError, ValueError):
        return None


def header_date(value):
    parsed = _parse(value, "%Y%m%d", 8)
    return parsed.date() if parsed else None


def header_time(value):
    """DICOM TM: HHMMSS with optional fraction; HHMM and HH are allowed too."""
    value = (value or "").split(".")[0]
    for pattern, length in (("%H%M%S", 6), ("%H%M", 4), ("%H", 2)):
        if len(value) == length:
            parsed = _parse(value, pattern, length)
            return parsed.time() if parsed else None
    return None


def scan_fields(identity, original_name):
    """The Scan fields for a decoded upload (`identity` is None for PNG and JPEG)."""
    fields = {"original_filename": display_filename(original_name)}
    if identity is None:
        return fields
    return {
        **fields,
        "study_date": header_date(identity.study_date),
        "study_time": header_time(identity.study_time),
        "accession_number": identity.accession_number[:64],
        "study_instance_uid": identity.study_instance_uid[:64],
        "view_position": identity.view_position[:16],
        "modality": identity.modality[:16],
        "body_part": identity.body_part_examined[:64],
        "header_patient_id": identity.patient_id[:64],
        "header_patient_name": identity.patient_name[:200],
        "header_birth_date": header_date(identity.patient_birth_date),
        "header_sex": identity.patient_sex[:16],
    }


def header_patient_of_upload(identity):
    if identity is None:
        return HeaderPatient()
    return HeaderPatient(identity.patient_id, identity.patient_name, header_date(identity.patient_birth_date))


def header_patient_of_scan(scan):
    return HeaderPatient(scan.header_patient_id, scan.header_patient_name, scan.header_birth_date)


def is_anonymous(value):
    return value.strip().upper() in ANONYMOUS_WORDS


def _words(text):
    return [word for word in "".join(c if c.isalnum() else " " for c in text.casefold()).split() if word]


def _names_someone_else(header_name, patient):
    """Only a clear difference counts: the family name absent from the header's name, or both
    given names present and neither the start of the other ("J" and "John" are the same person)."""
    if "^" in header_name:
        family, _, rest = header_name.partition("^")
        header_family, header_given = _words(family), _words(rest.replace("^", " "))
        if header_family and header_family != _words(patient.family_name):
            return True
        given, header_first = _words(patient.given_name), header_given[:1]
        return bool(given and header_first) and not (given[0].startswith(header_first[0]) or header_first[0].startswith(given[0]))
    family = _words(patient.family_name)
    words = _words(header_name)
    # "John Smith" or "SMITH JOHN": the family name must be among the words, in any order.
    return bool(family) and not all(word in words for word in family)


def mismatches(header, patient):
    """The sentences saying how the header names someone other than `patient`; empty when it does
    not (including when the header is anonymised or silent)."""
    found = []
    if not is_anonymous(header.patient_id) and header.patient_id.strip().casefold() != patient.medical_record_number.strip().casefold():
        found.append(f"its patient ID is “{header.patient_id}” but the record number is {patient.medical_record_number}")
    if not is_anonymous(header.name) and _names_someone_else(header.name, patient):
        found.append(f"its patient name is “{header.name}” but the patient is {patient.family_name.upper()}, {patient.given_name}")
    if header.birth_date and patient.date_of_birth and header.birth_date != patient.date_of_birth:
        found.append(f"its birth date is {header.birth_date:%-d %b %Y} but the patient was born {patient.date_of_birth:%-d %b %Y}")
    return found


def mismatch_sentence(found):
    return "The DICOM header names someone else: " + "; ".join(found) + "."
