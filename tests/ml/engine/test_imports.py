"""The web process imports ml.engine.images to validate uploads: that must not load TensorFlow,
and nothing in ml.engine may import Django."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CHECK = """
import sys
import ml.engine, ml.engine.images, ml.engine.backbones, ml.engine.preprocessing, ml.engine.data
import ml.engine.decision, ml.engine.synthetic, ml.engine.artifact
light = sorted(m for m in ("tensorflow", "keras") if m in sys.modules)
import ml.engine.model, ml.engine.train, ml.engine.predictor, ml.engine.evaluate, ml.engine.cli
print(light, "django" in sys.modules)
"""


def test_light_modules_do_not_import_tensorflow_and_nothing_imports_django():
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", CHECK], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[] False"


def test_engine_package_init_is_empty_of_imports():
    assert "import" not in (ROOT / "ml" / "engine" / "__init__.py").read_text()
