"""What the per-scan path asks of a real SeaweedFS bucket, request by request (botocore's own
event hook sees each call): storing a film or a heatmap is one PutObject, reading one
back is one GetObject, with no HeadObject before it. A file above the multipart threshold still
goes through django-storages' multipart upload and reads back whole; a missing object is
FileNotFoundError, as with a local folder. Each PutObject carries a CRC32 the store checks, so a
body altered on the way is refused and nothing is stored."""
import base64
import os
import zlib
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.exceptions import ClientError
from django.core.files.storage import storages

from diagnosis import storage
from ml import model_store
from tests.images import png_bytes


@pytest.fixture
def sent(own_store):
    """The S3 operations the scans and models storages call from here on, by name (PutObject, GetObject, ...)."""
    operations = []
    clients = [storages[alias].connection.meta.client for alias in ("scans", "models")]
    hook = lambda model, **_: operations.append(model.name)  # noqa: E731
    for client in clients:
        client.meta.events.register("before-call.s3", hook)
    yield operations
    for client in clients:
        client.meta.events.unregister("before-call.s3", hook)


def test_a_film_is_stored_and_read_back_with_one_request_each(sent):
    film = png_bytes(seed=3)
    name = storage.write(film, "png")
    assert sent == ["PutObject"]
    assert storage.read(name) == film
    assert storage.load_pixels(name).ndim == 2
    assert sent == ["PutObject", "GetObject", "GetObject"]


def test_threads_read_and_write_through_the_process_client(sent):
    """A worker reads films and writes heatmaps in thread pools: their requests go through the
    client this thread made (the hook sees them), not one new client per thread."""
    name = storage.write(png_bytes(seed=6), "png")
    with ThreadPoolExecutor(3) as pool:
        assert set(pool.map(lambda _: storage.read(name), range(3))) == {storage.read(name)}
        written = list(pool.map(lambda seed: storage.write(png_bytes(seed=seed), "png"), range(7, 10)))
    assert sent == ["PutObject"] + ["GetObject"] * 4 + ["PutObject"] * 3
    assert [storage.read(each) for each in written] == [png_bytes(seed=seed) for seed in range(7, 10)]


def test_a_missing_object_is_file_not_found_after_one_request(sent):
    with pytest.raises(FileNotFoundError):
        storage.read("ab/0123456789abcdef.png")
    assert sent == ["GetObject"]


def test_a_file_above_the_multipart_threshold_goes_in_parts_and_reads_back_whole(sent, settings, tmp_path):
    bucket = storages["models"]
    data = os.urandom(bucket.transfer_config.multipart_threshold + 1024)
    path = tmp_path / "artifact.bin"
    path.write_bytes(data)
    settings.MODEL_STORE_DIR = tmp_path
    model_store.publish(path)
    assert "CreateMultipartUpload" in sent and "PutObject" not in sent
    assert model_store.read("artifact.bin") == data


def test_a_film_is_sent_with_the_crc32_of_its_body(own_store):
    """boto3's checksums are kept (portal/settings/storage.py): the store checks the body against
    them, where SeaweedFS does not check the SHA-256 in the signature."""
    sent = []
    client = storages["scans"].connection.meta.client
    hook = lambda request, **_: sent.append(dict(request.headers))  # noqa: E731
    client.meta.events.register("before-send.s3.PutObject", hook)
    try:
        film = png_bytes(seed=4)
        storage.write(film, "png")
    finally:
        client.meta.events.unregister("before-send.s3.PutObject", hook)
    (headers,) = sent
    assert base64.b64decode(headers["x-amz-checksum-crc32"]) == zlib.crc32(film).to_bytes(4, "big")


def test_a_body_altered_on_the_way_is_refused_and_nothing_is_stored(own_store):
    client = storages["scans"].connection.meta.client

    def alter(request, **_):
        body = request.body.read() if hasattr(request.body, "read") else request.body
        request.body = bytes(reversed(body))

    client.meta.events.register("before-send.s3.PutObject", alter)
    try:
        with pytest.raises(ClientError, match="BadDigest"):
            storage.write(png_bytes(seed=5), "png")
    finally:
        client.meta.events.unregister("before-send.s3.PutObject", alter)
    assert own_store.keys("scans/") == []
