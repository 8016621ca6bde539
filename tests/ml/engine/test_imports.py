"""The web process imports ml.engine and its decode room to validate uploads: that must not load
TensorFlow, and nothing in ml.engine may import Django. The rooms import one way, down the order
ml/engine/__init__.py gives, so no two modules import each other."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
ENGINE = ROOT / "ml" / "engine"
ROOMS = ["decode", "model", "prepare", "data", "serve", "judge", "training", "cli"]  # each imports only rooms before it

CHECK = """
import sys
import ml.engine
alone = sorted(m for m in sys.modules if m.startswith("ml.engine."))
from ml.engine import DicomIdentity, ImageDecodeError, chest_radiograph_refusal, decode_image_bytes, load_image_file
import ml.engine.decode.images, ml.engine.decode.dicom, ml.engine.model.backbones, ml.engine.model.decision
import ml.engine.model.artifact, ml.engine.model.temperature, ml.engine.prepare.preprocessing, ml.engine.prepare.lungs
import ml.engine.prepare.acquisition, ml.engine.data.samples, ml.engine.data.splits, ml.engine.data.pipeline
import ml.engine.data.synthetic, ml.engine.judge.metrics, ml.engine.judge.plots, ml.engine.judge.evaluate
import ml.engine.judge.shortcuts, ml.engine.serve.serving, ml.engine.cli
light = sorted(m for m in ("tensorflow", "keras") if m in sys.modules)
import ml.engine.model.network, ml.engine.training.config, ml.engine.training.callbacks, ml.engine.training.train
import ml.engine.serve.predictor, ml.engine.serve.export, ml.engine.serve.int8
print(alone, light, "django" in sys.modules, sep="|")
"""


@pytest.fixture(scope="module")
def imported():
    """(engine modules `import ml.engine` loaded, TensorFlow modules the light modules loaded,
    whether Django got loaded), in a fresh interpreter."""
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", CHECK], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1].split("|")


def test_light_modules_do_not_import_tensorflow(imported):
    assert imported[1] == "[]"


def test_no_engine_module_imports_django(imported):
    assert imported[2] == "False"


def test_importing_the_engine_loads_no_room(imported):
    assert imported[0] == "[]"


def engine_imports(path: Path) -> set[str]:
    """The rooms (or 'cli') of the engine that a module imports, at the top or inside a function."""
    here = path.relative_to(ENGINE).with_suffix("").parts
    rooms = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = list(here[:-1])[: len(here) - node.level]
            target = base + (node.module.split(".") if node.module else [node.names[0].name])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ml.engine."):
            target = node.module.split(".")[2:]
        elif isinstance(node, ast.Import):
            target = next((a.name.split(".")[2:] for a in node.names if a.name.startswith("ml.engine.")), None)
            if not target:
                continue
        else:
            continue
        rooms.add(target[0])
    return rooms


@pytest.mark.parametrize("path", sorted(p for p in ENGINE.rglob("*.py") if p.parent != ENGINE or p.name == "cli.py"),
                         ids=lambda p: str(p.relative_to(ENGINE)))
def test_rooms_import_only_the_rooms_below_them(path):
    room = path.relative_to(ENGINE).parts[0].removesuffix(".py")
    above = set(ROOMS[ROOMS.index(room) + 1:])
    assert not engine_imports(path) & above


def test_every_room_is_in_the_order():
    rooms = {p.name for p in ENGINE.iterdir() if (p / "__init__.py").exists()} | {"cli"}
    assert rooms == set(ROOMS)
