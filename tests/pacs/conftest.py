"""A real PACS (Orthanc, Debian's package) and the portal's real DICOM listener, each its own
process on free loopback ports, against the test database. No mock of the network anywhere."""
import io
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import ComputedRadiographyImageStorage, ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE

from pacs.models import DicomNode, ReceivedInstance
from tests.conftest import PROJECT_ROOT, free_port, worker_environment
from tests.images import chest_like, dicom_bytes

# Workers the tests start try a send again 2 s after finding its node down, not 10 s (portal/settings/dicom.py).
os.environ.setdefault("PORTAL_PACS_RETRY_FIRST_SECONDS", "2")

ORTHANC = shutil.which("Orthanc") or shutil.which("Orthanc", path="/usr/sbin")
# Debian's orthanc-dicomweb: QIDO-RS and WADO-RS to find what the portal sent back, STOW-RS both ways.
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
needs_dicomweb = pytest.mark.skipif(not DICOMWEB_PLUGIN.exists(), reason="Orthanc's DICOMweb plugin is not installed (apt-get install orthanc-dicomweb)")
ORTHANC_AET = "ORTHANC_TEST"
PORTAL_AET = "CXR_PORTAL_TEST"
needs_orthanc = pytest.mark.skipif(ORTHANC is None, reason="Orthanc is not installed (apt-get install orthanc orthanc-dicomweb; .ci/run does)")


def wait_until(ready, process, log_path, what, timeout=60):
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"{what} did not start:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.2)


def stop(process):
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def dicom_listener(django_db_setup, django_db_blocker, private_storage):
    """`manage.py dicom_listener` (what `bin/portal dicom-listener` runs), on a free loopback port."""
    with django_db_blocker.unblock():
        process = start_dicom_listener(free_port(), private_storage / "dicom-listener.log")
    yield process
    stop(process)


def start_dicom_listener(port, log_path):
    """`manage.py dicom_listener` on `port`, against the test database, once it says it is ready."""
    env = {**worker_environment(), "PORTAL_DICOM_PORT": str(port), "PORTAL_DICOM_AE_TITLE": PORTAL_AET, "PORTAL_DICOM_HOST": "127.0.0.1"}
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "manage.py", "dicom_listener"], env=env, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT)
    wait_until(lambda: b"DICOM listener ready" in log_path.read_bytes(), process, log_path, "The DICOM listener")
    process.port, process.log_path = port, log_path
    return process


class Orthanc:
    def __init__(self, http_port, dicom_port):
        self.url, self.dicom_port = f"http://127.0.0.1:{http_port}", dicom_port

    def post(self, path, body, method="POST"):
        """(HTTP status, parsed JSON body) of a POST (or PUT) to Orthanc's REST API."""
        try:
            with urllib.request.urlopen(urllib.request.Request(f"{self.url}{path}", data=body, method=method), timeout=60) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def upload(self, data):
        """POST /instances: the instance's Orthanc id."""
        status, answer = self.post("/instances", data)
        assert status == 200, answer
        return answer["ID"]

    def dicomweb(self):
        """A DICOMweb client of Orthanc (its QIDO-RS, WADO-RS and STOW-RS); skips where the plugin is absent."""
        if not DICOMWEB_PLUGIN.exists():
            pytest.skip(f"Orthanc's DICOMweb plugin is not installed ({DICOMWEB_PLUGIN}; apt-get install orthanc-dicomweb)")
        from dicomweb_client.api import DICOMwebClient

        return DICOMwebClient(url=f"{self.url}/dicom-web")

    def instances_of_study(self, study_instance_uid):
        """{SOP Class UID: [SOP Instance UID, ...]} of the study, found by QIDO-RS."""
        found = {}
        for instance in self.dicomweb().search_for_instances(study_instance_uid=study_instance_uid):
            found.setdefault(instance["00080016"]["Value"][0], []).append(instance["00080018"]["Value"][0])
        return found

    def send_to_portal(self, instance_id):
        """Orthanc's own C-STORE to the portal's listener: (HTTP status, answer); not 200 when the store failed."""
        return self.post("/modalities/portal/store", json.dumps({"Resources": [instance_id], "Synchronous": True}).encode())


@pytest.fixture(scope="session")
def orthanc(dicom_listener, tmp_path_factory):
    """Orthanc with a temporary configuration naming the portal's listener as modality `portal`."""
    if ORTHANC is None:
        pytest.skip("Orthanc is not installed (apt-get install orthanc orthanc-dicomweb; .ci/run does)")
    folder = tmp_path_factory.mktemp("orthanc")
    http_port, dicom_port = free_port(), free_port()
    configuration = {
        "Name": "portal-tests", "DicomAet": ORTHANC_AET, "DicomPort": dicom_port, "HttpPort": http_port,
        "RemoteAccessAllowed": False, "AuthenticationEnabled": False,
        "StorageDirectory": str(folder / "storage"), "IndexDirectory": str(folder / "index"),
        "DicomModalities": {"portal": {"AET": PORTAL_AET, "Host": "127.0.0.1", "Port": dicom_listener.port}},
        "DicomScuTimeout": 20, "Plugins": [str(DICOMWEB_PLUGIN)] if DICOMWEB_PLUGIN.exists() else [],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
    }
    (folder / "orthanc.json").write_text(json.dumps(configuration))
    log_path = folder / "orthanc.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([ORTHANC, str(folder / "orthanc.json")], stdout=log, stderr=subprocess.STDOUT, cwd=folder)
    server = Orthanc(http_port, dicom_port)

    def answers():
        try:
            with urllib.request.urlopen(f"{server.url}/system", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    wait_until(answers, process, log_path, "Orthanc")
    yield server
    stop(process)


@pytest.fixture
def orthanc_node(orthanc, site_a):
    """Orthanc registered as a node of site A that may send."""
    return DicomNode.objects.create(ae_title=ORTHANC_AET, host="127.0.0.1", port=orthanc.dicom_port, site=site_a)


def radiograph(patient_id="MRN-0001", name="OKAFOR^Ada", birth_date="", modality="CR", view="PA", body_part="CHEST", seed=1, sop_uid=None, **more):
    """A small chest film as a PACS holds it: a CR image with pixel data and a patient and study."""
    dataset = pydicom.dcmread(io.BytesIO(dicom_bytes(chest_like(128, seed=seed), modality=modality, body_part=body_part)))
    dataset.SOPClassUID = dataset.file_meta.MediaStorageSOPClassUID = ComputedRadiographyImageStorage
    dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID = sop_uid or generate_uid()
    dataset.StudyInstanceUID, dataset.SeriesInstanceUID = generate_uid(), generate_uid()
    dataset.PatientID, dataset.PatientName, dataset.PatientBirthDate = patient_id, name, birth_date
    dataset.ViewPosition = view
    for keyword, value in more.items():
        setattr(dataset, keyword, value)
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def sr_items(dataset):
    """Every content item of an SR's tree, depth first, as (concept name meaning, item)."""
    found = []
    for item in dataset.get("ContentSequence", []):
        found.append((item.ConceptNameCodeSequence[0].CodeMeaning, item))
        found.extend(sr_items(item))
    return found


def sr_reading(dataset):
    """What a result SR says, decoded with pydicom alone: {finding, probability, threshold, version,
    parameters, referenced instance UIDs}."""
    items = sr_items(dataset)

    def first(meaning):
        return next(item for name, item in items if name == meaning)

    return {
        "finding": (first("COVID-19").ConceptCodeSequence[0].CodeValue, first("COVID-19").ConceptCodeSequence[0].CodeMeaning),
        "probability": float(first("Probability of a COVID-19 pattern").MeasuredValueSequence[0].NumericValue),
        "threshold": float(first("Decision threshold").MeasuredValueSequence[0].NumericValue),
        "version": first("Algorithm Version").TextValue,
        "parameters": [item.TextValue for name, item in items if name == "Algorithm Parameters"],
        "references": {reference.ReferencedSOPInstanceUID for name, item in items if item.ValueType == "IMAGE"
                       for reference in item.ReferencedSOPSequence},
    }


SCU_AET = "TEST_SCU"


@pytest.fixture
def scu_node(site_a):
    """The test itself as a sending modality of site A (pynetdicom, from this machine)."""
    return DicomNode.objects.create(ae_title=SCU_AET, host="127.0.0.1", port=104, site=site_a)


def c_store(listener, dataset_or_path, calling_ae=SCU_AET, sop_class=ComputedRadiographyImageStorage, syntax=ExplicitVRLittleEndian):
    """One C-STORE from a pynetdicom SCU to the listener: the status the listener answered, or the
    rejected association (its result, source and reason) when it refused to talk."""
    ae = AE(ae_title=calling_ae)
    ae.add_requested_context(sop_class, syntax)
    association = ae.associate("127.0.0.1", listener.port, ae_title=PORTAL_AET)
    if not association.is_established:
        return association
    try:
        return association.send_c_store(dataset_or_path).Status
    finally:
        association.release()


@pytest.fixture
def held(site_a, patient):
    """make(**header): an instance whose PatientID is unknown at the site of its node (ORTHANC, of
    site A), received by the listener's own intake (pacs.receiving.receive, as C-STORE and STOW-RS
    call it) and held as unmatched with its file."""
    from pacs import receiving

    node = DicomNode.objects.create(ae_title="ORTHANC", host="127.0.0.1", port=4242, site=site_a)

    def make(patient_id="MRN-4040", name="MBEKI^Thabo", birth_date="19700312", **header):
        data = radiograph(patient_id=patient_id, name=name, birth_date=birth_date, StudyDate="20261201", **header)
        assert receiving.receive(node, data, peer_ip="127.0.0.1") == receiving.SUCCESS
        return ReceivedInstance.objects.get(sop_instance_uid=receiving.read_header(data)[1])
    return make
