"""Which instances a node sends are read by the model: frontal chest radiographs only.

Everything else a PACS forwards (laterals, CTs, reports, the portal's own results sent back to it)
is acknowledged and skipped with a sentence saying why, never analysed. An unstated body part or
view is read, as on the upload page: many digitised films say neither (docs/pacs.md)."""
from ml.engine.decode.dicom import CHEST_WORDS, MODALITY_NAMES, RADIOGRAPH_MODALITIES, read_identity

FRONTAL_VIEWS = ("PA", "AP")
# Structured Report storage classes all share this root (PS3.4 B.5); the portal's own results are SRs.
SR_CLASS_ROOT = "1.2.840.10008.5.1.4.1.1.88."


def skip_reason(header):
    """None when the header describes a frontal chest radiograph; otherwise why it is skipped."""
    identity = read_identity(header)
    if str(header.get("SOPClassUID", "")).startswith(SR_CLASS_ROOT):
        return "A structured report, not an image: nothing to read."
    modality = identity.modality.upper()
    if modality not in RADIOGRAPH_MODALITIES:
        kind = MODALITY_NAMES.get(modality, f"of modality {modality or 'not stated'}")
        return f"Not a radiograph ({kind}): only chest X-rays (CR, DX or DR) are read."
    body_part = identity.body_part_examined.upper()
    if body_part and not any(word in body_part for word in CHEST_WORDS):
        return f"A radiograph of the {body_part.lower()}, not of the chest."
    view = identity.view_position.upper()
    if view and view not in FRONTAL_VIEWS:
        return f"A {view} view, not a frontal (PA or AP) one: the model reads frontal films only."
    return None
