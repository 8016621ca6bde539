"""The web process imports ml.engine.images to validate uploads: that must not load TensorFlow,
and nothing in ml.engine may import Django."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

CHECK = """
import sys
import ml.engine, ml.engine.images, ml.engine.backbones, ml.engine.preprocessing, ml.engine.data
import ml.engine.pipeline, ml.engine.decision, ml.engine.synthetic, ml.engine.artifact, ml.engine.metrics
import ml.engine.plots, ml.engine.evaluate, ml.engine.cli, ml.engine.dicom, ml.engine.serving
import ml.engine.lungs, ml.engine.acquisition, ml.engine.shortcuts
light = sorted(m for m in ("tensorflow", "keras") if m in sys.modules)
import ml.engine.model, ml.engine.config, ml.engine.callbacks, ml.engine.train, ml.engine.predictor, ml.engine.export
print(light, "django" in sys.modules)
"""


@pytest.fixture(scope="module")
def imported():
    """(TensorFlow modules the light modules loaded, whether Django got loaded), in a fresh interpreter."""
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", CHECK], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1]


def test_light_modules_do_not_import_tensorflow(imported):
    assert imported.startswith("[] ")


def test_no_engine_module_imports_django(imported):
    assert imported.endswith(" False")


def test_engine_package_init_is_empty_of_imports():
    assert "import" not in (ROOT / "ml" / "engine" / "__init__.py").read_text()
