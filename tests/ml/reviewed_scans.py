"""Stand-in for `diagnosis.selectors.reviewed_scans_for_training`, which ml.services reads through
the ML_REVIEWED_SCANS_PROVIDER setting (ml never imports the clinical app). The tests use the real
selector as soon as the clinical app has it; this copy is the exact text proposed for it."""
from diagnosis import storage
from diagnosis.models import Review


def reviewed_scans_for_training():
    """Every scan a clinician reviewed, labelled by the latest review: the AI's label when the
    reviewer agreed, else the other class. Yields (image path, label, patient id, site code)."""
    reviews = Review.objects.select_related("prediction__scan__patient__site", "prediction__model_version").order_by(
        "prediction__scan_id", "-created_at", "-id"
    )
    seen = set()
    for review in reviews:
        prediction = review.prediction
        scan = prediction.scan
        if scan.pk in seen:
            continue
        seen.add(scan.pk)
        if review.agrees:
            label = prediction.label
        else:
            others = [name for name in prediction.model_version.class_names if name != prediction.label]
            if len(others) != 1:
                continue  # disagreeing with a multi-class result names no single class
            label = others[0]
        yield str(storage.path_of(scan.stored_name)), label, str(scan.patient_id), scan.patient.site.code
