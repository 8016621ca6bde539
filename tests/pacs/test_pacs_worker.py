"""`bin/portal pacs-worker` loads no TensorFlow: it imports what Celery's worker imports at start
(every app's tasks) and what its first send imports (pacs.sending, highdicom, pynetdicom), and
makes a Secondary Capture and an SR, in a fresh interpreter. A send worker is then a few hundred MB
beside the inference worker's model, and starts in a second."""
import os
import subprocess
import sys

from tests.conftest import PROJECT_ROOT

CHECK = """
import io, sys
import django
django.setup()
from portal.celery import app
app.loader.import_default_modules()  # what `celery worker` does before its first task
import pydicom
from pacs import results, sending, transport  # what the first send imports
from tests.pacs.conftest import radiograph
header = pydicom.dcmread(io.BytesIO(radiograph()))
facts = results.ResultFacts(True, 0.8, 0.5, "version threshold", "v1", "not validated", False)
uids = results.ObjectUids("1.2.3.1", "1.2.3.2", "1.2.3.3")
results.secondary_capture(header, header.pixel_array.astype("uint8"), None, facts, uids)
results.structured_report(header, facts, uids)
print(sorted(m for m in ("tensorflow", "keras", "openvino") if m in sys.modules))
"""


def test_the_pacs_worker_loads_no_tensorflow_to_send_results():
    out = subprocess.run([sys.executable, "-c", CHECK], cwd=PROJECT_ROOT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
