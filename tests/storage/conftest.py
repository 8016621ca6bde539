import pytest
from django.test.utils import override_settings

from tests.seaweedfs import WEED_ABSENT, SeaweedFS, weed_binary


@pytest.fixture
def own_store(tmp_path, settings):
    """A SeaweedFS of this test's own (so the test may stop it), with the portal pointed at it."""
    if weed_binary() is None:
        pytest.skip(WEED_ABSENT)
    store = SeaweedFS(tmp_path / "seaweedfs").start()
    settings.MODEL_STORE_DIR = tmp_path / "models-cache"  # this host's cache of the store's model files, empty
    with override_settings(**store.settings()):
        yield store
    store.stop()
