"""What bench/portal_e2e.py sets up before it measures: its own PostgreSQL and Redis databases, a
random-init version served as a worker serves it (bf16 or int8 forced for speed, see that
docstring), a clinician and a patient, the scans it uploads, the processes it starts and stops,
and the API client that uploads."""
from __future__ import annotations

import io
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FORCED_BF16 = "bf16 forced for speed: random weights cannot be validated"
FORCED_INT8 = "int8 derived and forced for speed: random weights cannot be validated"
PASSWORD = secrets.token_urlsafe(12)


@dataclass(frozen=True)
class Services:
    """One run's PostgreSQL database (dropped first), Redis database (flushed) and web server port:
    two runs on one machine need their own (--database, --redis-db, --port)."""

    database: str = "portal_bench_e2e"
    redis_db: int = 12
    port: int = 8765


def add_service_arguments(parser, defaults: Services) -> None:
    """--database, --redis-db and --port, with `defaults`: read back by services_from(args)."""
    parser.add_argument("--database", default=defaults.database, help=f"PostgreSQL database, dropped and recreated (default {defaults.database})")
    parser.add_argument("--redis-db", type=int, default=defaults.redis_db, help=f"Redis database number, flushed (default {defaults.redis_db})")
    parser.add_argument("--port", type=int, default=defaults.port, help=f"the web server's port (default {defaults.port})")


def services_from(args) -> Services:
    return Services(args.database, args.redis_db, args.port)


def environment(data_dir: Path, batch_size: int, services: Services) -> dict:
    return {
        "DJANGO_SETTINGS_MODULE": "portal.settings.local",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(40),
        "PORTAL_DATA_DIR": str(data_dir),
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{services.database}",
        "CELERY_BROKER_URL": f"redis://127.0.0.1:6379/{services.redis_db}",
        "PORTAL_INFERENCE_BATCH_SIZE": str(batch_size),
        "PORTAL_API_USER_RATE": "100000/minute",
        "PORTAL_LOG_LEVEL": "WARNING",
        "PORTAL_BIND": f"127.0.0.1:{services.port}",
        "WEB_CONCURRENCY": "2",
        "INFERENCE_CONCURRENCY": "1",
        "PORTAL_PYTHON": sys.executable,
    }


def fresh_database_and_queue(services: Services) -> None:
    import psycopg2
    import redis

    connection = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="postgres")
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {services.database} WITH (FORCE)")
        cursor.execute(f"CREATE DATABASE {services.database}")
    connection.close()
    redis.Redis(host="127.0.0.1", port=6379, db=services.redis_db).flushdb()  # this bench's own Redis database


def register_version(size: int, folder: Path, fp32: bool, harmonised: bool = False, int8: bool = False):
    """A random-init Xception version, its serving export made and checked, active; in bf16 where
    the CPU has it unless `fp32` (the check cannot accept random weights in bf16: see the docstring);
    with `int8`, the int8 version derived from it is made and is the active one. Returns its
    ServingExport and the Keras model (the original path runs it)."""
    import keras

    from ml import services
    from ml.engine import PreprocessingSpec, build_model, save_artifact

    keras.utils.set_random_seed(0)
    from ml.engine import TrainConfig

    # As the cpu-scratch preset trains every new model (body crop, 224 px detail, equalisation), or a plain resize.
    spec = PreprocessingSpec.for_backbone("xception", size, **(TrainConfig.preset("cpu-scratch").harmonisation() if harmonised else {}))
    model = build_model("xception", 2, size, weights=None)
    record = {"backbone": "xception", "preprocessing": spec.to_dict(), "class_names": ["covid", "normal"],
              "positive_class": "covid", "threshold": 0.5, "synthetic": True}
    artifact, record = save_artifact(model, folder, record)
    version = services.register_version(artifact_path=artifact, record=record)
    serving = services.prepare_serving(version)
    if not serving.accepted:
        raise SystemExit(f"The serving export was refused: {serving.reason}")
    from ml.engine.serve.serving import bf16_supported
    from ml.services.serving import warm_compiled_cache

    if not fp32 and serving.precision != "bf16" and bf16_supported():
        serving.validation = {**serving.validation, "precision": "bf16", "reason": f"bench: {FORCED_BF16}"}
        serving.save(update_fields=["validation"])
        warm_compiled_cache(version, serving)  # the bf16 compile, as for an accepted export
    if int8:
        version, serving = derived_int8_version(version, serving, quick=size < 299)
    # Random weights have no evaluation, so the promotion safeguards object: the bench measures speed only.
    services.promote_version(version.pk, reason="bench: random weights, measures speed only", override=True)
    return serving, model


def register_trained_version(artifact: Path, int8: bool, keep_fp32: tuple[str, ...] = ()):
    """A model trained by bench/train_cxr.py, registered as the portal registers a trained model,
    its serving export made and checked against Keras for real; with `int8`, its int8 version
    derived as `manage.py derive_int8 --keep-fp32` derives one, through the unchanged check.
    Nothing is forced: a refusal ends the bench with its sentence. Returns the active version's
    ServingExport and the Keras model (the original path runs it)."""
    from ml import services
    from ml.engine import load_artifact
    from ml.services.derivation import DerivationRefused, derive_int8

    model, record = load_artifact(artifact)
    version = services.register_version(artifact_path=artifact, record=record)
    serving = services.prepare_serving(version)
    if not serving.accepted:
        raise SystemExit(f"The serving export was refused: {serving.reason}")
    if int8:
        try:
            version = derive_int8(version, via="bench", keep_fp32=keep_fp32)
        except DerivationRefused as refusal:
            raise SystemExit(f"The int8 version was refused, so this bench measures nothing in int8: {refusal}") from refusal
        serving = version.serving_export
    # The bench's portal has no evaluation set to compare versions on, so the safeguards object.
    services.promote_version(version.pk, reason="bench: a trained model's serving speed", override=True)
    return serving, model


def derived_int8_version(parent, serving, quick: bool):
    """The int8 version of `parent`, registered as ml.services.derivation registers one, but
    quantised on generated films and accepted without its check (random weights have no labels)."""
    from django.conf import settings

    from bench.baselines import CALIBRATED_ON, int8_calibration_films
    from ml import runtime
    from ml.engine import quantise_int8
    from ml.services.derivation import _register
    from ml.services.serving import warm_compiled_cache

    work_dir = Path(settings.MODEL_STORE_DIR) / "serving" / "bench-int8"
    record = quantise_int8(runtime.stored_path(serving.export_path), work_dir, int8_calibration_films(quick),
                           expected_files=serving.record.get("files"), calibrated_on=CALIBRATED_ON)
    validation = {"accepted": True, "runtime": "openvino", "precision": "int8", "reason": f"bench: {FORCED_INT8}", "checks": {"int8": {}}}
    version = _register(parent, None, "bench", work_dir, record, validation, CALIBRATED_ON, "nothing (random weights)")
    warm_compiled_cache(version, version.serving_export)
    return version, version.serving_export


def clinician_and_patient():
    from django.contrib.auth.models import Group, User

    from diagnosis import roles
    from diagnosis.models import Patient, Site, StaffProfile

    site = Site.objects.create(name="Bench hospital", code="bench")
    user = User.objects.create_user("bench_clinician", password=PASSWORD)
    user.groups.add(Group.objects.get(name=roles.CLINICIANS))
    StaffProfile.objects.create(user=user, site=site)
    return Patient.objects.create(site=site, medical_record_number="BENCH-1", family_name="Bench", given_name="Ada", created_by=user)


def scan_files(n: int) -> list[bytes]:
    """n different 1024 px chest-like PNGs (a few films, each copy with a pixel changed)."""
    from PIL import Image

    from ml.engine.data.synthetic import make_chest_image

    rng = np.random.default_rng(0)
    films = [make_chest_image(rng, 1024, opacities=i % 2 == 0) for i in range(8)]
    out = []
    for i in range(n):
        pixels = films[i % len(films)].copy()
        pixels[0, :4] = np.frombuffer(i.to_bytes(4, "big"), np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG")
        out.append(buffer.getvalue())
    return out


def start(command: str, env: dict, log: Path, cores: str | None = None) -> subprocess.Popen:
    """`bin/portal <command>` in its own session; on `cores` only (taskset's list, e.g. "1") when given."""
    pinned = ["taskset", "-c", cores] if cores else []
    return subprocess.Popen([*pinned, "bin/portal", command], cwd=ROOT, env={**os.environ, **env}, start_new_session=True,
                            stdout=log.open("w"), stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)  # its own session: the worker's pool child too
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


class Client:
    def __init__(self, patient_id, port: int):
        import requests

        self.api = f"http://127.0.0.1:{port}/api/v1"
        self.session = requests.Session()
        for _ in range(300):  # the server is starting
            try:
                response = self.session.post(f"{self.api}/auth/token/", data={"username": "bench_clinician", "password": PASSWORD})
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        response.raise_for_status()
        self.headers = {"Authorization": f"Token {response.json()['token']}"}
        self.url = f"{self.api}/patients/{patient_id}/scans/"

    def upload(self, data: bytes) -> str:
        import requests

        response = requests.post(self.url, headers=self.headers, files={"image": ("scan.png", data, "image/png")}, timeout=60)
        if response.status_code != 202:
            raise RuntimeError(f"upload answered {response.status_code}: {response.text[:300]}")
        return response.json()["id"]
