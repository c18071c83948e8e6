import hashlib
import subprocess
import zipfile

import pytest

from taylorlens.zoo import wheels
from taylorlens.zoo.errors import MissingDataError


@pytest.fixture
def fake_wheel(tmp_path, monkeypatch):
    """A pinned wheel ``fakepkg==1.0`` whose bytes are known, and an empty wheels directory."""
    payload = tmp_path / "payload.whl"
    with zipfile.ZipFile(payload, "w") as archive:
        archive.writestr("fakepkg/data/hello.txt", "hello")
    pinned = wheels.Wheel("fakepkg", "1.0", "fakepkg-1.0-py3-none-any.whl",
                          hashlib.sha256(payload.read_bytes()).hexdigest(), "MIT")  # fmt: skip
    directory = tmp_path / "wheels"
    monkeypatch.setitem(wheels.WHEELS, "fakepkg", pinned)
    monkeypatch.setenv(wheels.WHEELS_ENV_VARIABLE, str(directory))
    monkeypatch.delenv(wheels.OFFLINE_ENV_VARIABLE, raising=False)
    return payload, directory


def _fake_pip(payload_bytes: bytes):
    def run(command, **kwargs):
        target = command[command.index("-d") + 1]
        with open(f"{target}/fakepkg-1.0-py3-none-any.whl", "wb") as handle:
            handle.write(payload_bytes)
        return subprocess.CompletedProcess(command, 0, "", "")

    return run


def test_download_is_checked_then_renamed_into_place_and_members_read(fake_wheel, monkeypatch):
    payload, directory = fake_wheel
    calls = []
    pip = _fake_pip(payload.read_bytes())
    monkeypatch.setattr(wheels.subprocess, "run", lambda command, **kw: calls.append(command) or pip(command))
    assert wheels.read_member("fakepkg", "fakepkg/data/hello.txt") == b"hello"
    assert wheels.list_members("fakepkg", "fakepkg/data/") == ["fakepkg/data/hello.txt"]
    assert "--no-deps" in calls[0] and "fakepkg==1.0" in calls[0]
    assert sorted(p.name for p in directory.iterdir()) == ["fakepkg-1.0-py3-none-any.whl"]
    wheels.read_member("fakepkg", "fakepkg/data/hello.txt")
    assert len(calls) == 1  # the cached wheel is reused


def test_download_with_wrong_checksum_is_refused_and_leaves_nothing(fake_wheel, monkeypatch):
    _, directory = fake_wheel
    monkeypatch.setattr(wheels.subprocess, "run", _fake_pip(b"not the pinned bytes"))
    with pytest.raises(wheels.WheelChecksumError, match="refusing to read"):
        wheels.wheel_path("fakepkg")
    assert list(directory.iterdir()) == []


def test_wheel_in_cache_with_wrong_checksum_is_refused_with_the_fetch_command(fake_wheel):
    _, directory = fake_wheel
    directory.mkdir()
    (directory / "fakepkg-1.0-py3-none-any.whl").write_bytes(b"tampered")
    with pytest.raises(wheels.WheelChecksumError) as error:
        wheels.read_member("fakepkg", "fakepkg/data/hello.txt")
    assert f"pip download --no-deps fakepkg==1.0 -d {directory}" in str(error.value)


def test_offline_mode_names_the_exact_pip_download_command(fake_wheel, monkeypatch):
    _, directory = fake_wheel
    monkeypatch.setenv(wheels.OFFLINE_ENV_VARIABLE, "1")
    monkeypatch.setattr(wheels.subprocess, "run", lambda *a, **k: pytest.fail("downloaded while offline"))
    with pytest.raises(MissingDataError) as error:
        wheels.wheel_path("fakepkg")
    assert f"`pip download --no-deps fakepkg==1.0 -d {directory}`" in str(error.value)
    assert wheels.OFFLINE_ENV_VARIABLE in str(error.value)


def test_failed_download_says_why_and_leaves_no_partial_file(fake_wheel, monkeypatch):
    _, directory = fake_wheel

    def unreachable(command, **kwargs):
        target = command[command.index("-d") + 1]
        with open(f"{target}/fakepkg-1.0-py3-none-any.whl", "wb") as handle:
            handle.write(b"half")
        raise subprocess.CalledProcessError(1, command, stderr="ERROR: Could not find a version (network)")

    monkeypatch.setattr(wheels.subprocess, "run", unreachable)
    with pytest.raises(wheels.WheelDownloadError, match="network.*pip download --no-deps fakepkg==1.0"):
        wheels.wheel_path("fakepkg")
    assert list(directory.iterdir()) == []


def test_every_pinned_wheel_has_a_sha256_and_a_license():
    for package, wheel in wheels.WHEELS.items():
        assert wheel.package == package and len(wheel.sha256) == 64 and wheel.license
        assert wheel.filename.endswith(".whl") and wheel.version in wheel.filename
    with pytest.raises(KeyError, match="pinned"):
        wheels.wheel_path("torchvision")
