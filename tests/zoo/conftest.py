"""Every zoo test trains into one session-wide temporary cache, never into the user's ~/.cache."""

import pytest

from taylorlens.zoo.loading import CACHE_ENV_VARIABLE


@pytest.fixture(scope="session", autouse=True)
def zoo_cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("taylorlens_cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV_VARIABLE, str(cache))
        yield cache
