"""What the per-scan path asks of a real SeaweedFS bucket, request by request (botocore's own
event hook sees each call): storing a film or a heatmap is one PutObject, reading one
back is one GetObject, with no HeadObject before it. A file above the multipart threshold still
goes through django-storages' multipart upload and reads back whole; a missing object is
FileNotFoundError, as with a local folder."""
import os

import pytest
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
