"""Reads of the pacs app, scoped to what the user may see: the unmatched instances waiting for a
person to file them (pacs.filing writes), and the patients one of them may be filed to.

Who sees an unmatched instance: whoever may upload a film for the patients of the site of the node
that sent it (clinicians of that site, administrators everywhere). A clinician of another site sees
neither the instances nor their count. An instance whose node was removed has no site any more:
only those who see every site see it."""
import base64
import io

from django.core.exceptions import ObjectDoesNotExist, ValidationError
from PIL import Image

from diagnosis import selectors, storage
from ml.engine import ImageDecodeError

from .models import ReceivedInstance


def may_file(user):
    return user.has_perm("diagnosis.add_scan")


def unmatched_visible_to(user):
    """The unmatched instances the user may file, oldest first (the first one waited longest)."""
    if not may_file(user):
        return ReceivedInstance.objects.none()
    instances = ReceivedInstance.objects.filter(outcome=ReceivedInstance.Outcome.UNMATCHED).select_related("node__site").order_by("received_at", "pk")
    if user.has_perm("diagnosis.view_every_site"):
        return instances
    return instances.filter(node__site__in=selectors.sites_visible_to(user))


def unmatched_count(user):
    return unmatched_visible_to(user).count()


def received_instance_for(user, instance_id):
    """One received instance the user may file or has seen filed (any outcome, so that a second
    person who files it gets "already filed", not "no such instance"); ObjectDoesNotExist when it
    is not one of theirs (another site's is as absent as one that never existed)."""
    instances = ReceivedInstance.objects.filter(outcome__in=[ReceivedInstance.Outcome.UNMATCHED, ReceivedInstance.Outcome.FILED,
                                                             ReceivedInstance.Outcome.DISMISSED])
    if not may_file(user):
        raise ReceivedInstance.DoesNotExist
    if not user.has_perm("diagnosis.view_every_site"):
        instances = instances.filter(node__site__in=selectors.sites_visible_to(user))
    return instances.select_related("node__site", "resolved_by", "scan__patient").get(pk=instance_id)


def patients_to_file_to(user, instance, query=""):
    """The patients the instance may be filed to: those of its node's site the user may see,
    matching `query` (a record number or a name, as the patient search reads it)."""
    patients = selectors.search_patients(user, query)
    return patients.filter(site=instance.node.site) if instance.node else patients


def patient_to_file_to(user, instance, patient_id):
    """The chosen patient, if the instance may be filed to them; None otherwise."""
    try:
        return patients_to_file_to(user, instance).get(pk=patient_id)
    except (ObjectDoesNotExist, ValidationError, ValueError):
        return None


PREVIEW_SIDE = 512


def film_preview(instance):
    """The held film, at most PREVIEW_SIDE px on its longer side, as a data: URL for the page that
    shows the instance (its one audited read); "" when its file is gone or the store does not answer."""
    if not instance.stored_name:
        return ""
    try:
        image = Image.fromarray(storage.load_pixels(instance.stored_name))
    except (FileNotFoundError, ImageDecodeError, storage.StoreUnavailable):
        return ""
    image.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
