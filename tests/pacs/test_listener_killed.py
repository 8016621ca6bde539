"""A listener killed in the middle of an association loses nothing it acknowledged (issue 20,
item 4): every instance answered with Success has its row, its scan and its stored file, because
the listener commits before it answers; what was not acknowledged the PACS sends again, once the
listener is back, and a resend of what was kept makes no second scan. A real listener process,
SIGKILLed; the test is the sending modality (pynetdicom)."""
import io
import signal

import pydicom
import pytest
from pydicom.uid import ComputedRadiographyImageStorage, ExplicitVRLittleEndian
from pynetdicom import AE

from diagnosis import storage
from diagnosis.models import Scan
from pacs.models import ReceivedInstance
from tests.conftest import free_port
from tests.pacs.conftest import PORTAL_AET, SCU_AET, radiograph, start_dicom_listener, stop

pytestmark = pytest.mark.django_db(transaction=True)
SUCCESS = 0x0000


@pytest.fixture
def start_listener(private_storage):
    """start_listener(port): a listener process of its own (what `bin/portal dicom-listener` runs),
    stopped at the end of the test if it still runs."""
    started = []

    def start(port):
        process = start_dicom_listener(port, private_storage / f"killed-listener-{port}-{len(started)}.log")
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            stop(process)


def association(port):
    ae = AE(ae_title=SCU_AET)
    ae.add_requested_context(ComputedRadiographyImageStorage, ExplicitVRLittleEndian)
    opened = ae.associate("127.0.0.1", port, ae_title=PORTAL_AET)
    assert opened.is_established, "the listener accepts the registered modality"
    return opened


def status_of(opened, film):
    """The status the listener answered, or None when no answer came (the listener is gone)."""
    try:
        return getattr(opened.send_c_store(pydicom.dcmread(io.BytesIO(film))), "Status", None)
    except RuntimeError:  # pynetdicom: the association was aborted under it
        return None


def test_a_listener_killed_mid_association_loses_nothing_it_acknowledged(start_listener, scu_node, patient):
    port = free_port()
    listener = start_listener(port)
    films = [radiograph(patient_id=patient.medical_record_number, seed=seed) for seed in range(6)]
    uids = [str(pydicom.dcmread(io.BytesIO(film)).SOPInstanceUID) for film in films]

    opened = association(port)
    acknowledged = [uid for uid, film in zip(uids[:4], films[:4]) if status_of(opened, film) == SUCCESS]
    assert acknowledged == uids[:4]
    listener.send_signal(signal.SIGKILL)  # the association is still open
    listener.wait(timeout=30)
    assert status_of(opened, films[4]) != SUCCESS, "a dead listener acknowledges nothing"
    opened.abort()

    # Everything acknowledged is kept whole: its row, its scan, and its film readable in storage.
    kept = {row.sop_instance_uid: row for row in ReceivedInstance.objects.select_related("scan")}
    assert set(acknowledged) <= set(kept)
    for uid in acknowledged:
        assert kept[uid].scan is not None and storage.read(kept[uid].scan.stored_name)
    # Whatever was not acknowledged is either absent or whole, never half-stored.
    for uid in set(kept) - set(acknowledged):
        assert kept[uid].scan is None or storage.read(kept[uid].scan.stored_name)

    # The PACS sends the rest again to the restarted listener, and resends everything on doubt:
    # each instance ends as one scan.
    start_listener(port)
    opened = association(port)
    assert [status_of(opened, film) for film in films] == [SUCCESS] * len(films)
    opened.release()
    assert sorted(ReceivedInstance.objects.values_list("sop_instance_uid", flat=True)) == sorted(uids)
    assert Scan.objects.filter(patient=patient).count() == len(films)
