"""Labelled ImageNet images: the 20 that foolbox 3.3.4 ships, read out of its wheel, plus the bundled photos.

``foolbox/data/imagenet_{idx}_{label}.jpg`` are 512x512 RGB ImageNet validation-style images whose true
class index is the last part of the file name (foolbox uses them for its own model tests). The wheel is
read with ``zipfile`` and never installed (``taylorlens.zoo.wheels``).
"""

from __future__ import annotations

import io
import re
from functools import cache

import numpy as np
from PIL import Image

from taylorlens.zoo import wheels
from taylorlens.zoo.photos import CROP_SIZE, Photo, photos, preprocessed_photo

IMAGENET_PACKAGE = "foolbox"
IMAGENET_PREFIX = "foolbox/data/imagenet_"
IMAGENET_FILE = re.compile(r"foolbox/data/(imagenet_(\d+)_(\d+))\.(?:jpg|png)$")
#: The true classes of the 20 images, in file order (foolbox/data/imagenet_00_243.jpg ... _19_305.jpg).
IMAGENET_LABELS = (243, 559, 438, 990, 949, 853, 609, 609, 915, 455, 541, 630, 741, 471, 129, 99, 251, 22, 317, 305)


@cache
def labelled_images() -> tuple[tuple[str, np.ndarray, int], ...]:
    """``(name, uint8 (512, 512, 3) image, true class)`` for the 20 foolbox images, in file order."""
    found = []
    for member in wheels.list_members(IMAGENET_PACKAGE, IMAGENET_PREFIX):
        match = IMAGENET_FILE.match(member)
        if match:
            with Image.open(io.BytesIO(wheels.read_member(IMAGENET_PACKAGE, member))) as image:
                found.append((int(match[2]), match[1], np.asarray(image.convert("RGB")), int(match[3])))
    found.sort(key=lambda item: item[0])
    labels = tuple(label for *_, label in found)
    if labels != IMAGENET_LABELS:
        raise ValueError(f"{wheels.WHEELS[IMAGENET_PACKAGE].filename}: expected labels {IMAGENET_LABELS}, got {labels}")
    return tuple((name, image, label) for _, name, image, label in found)


def imagenet_samples(resolution: int | str = CROP_SIZE, *, include_photos: bool = True) -> dict[str, Photo]:
    """The 20 labelled foolbox images (``Photo.label`` = true class) followed by the 6 bundled photos
    (``label=None``) unless ``include_photos=False``, preprocessed by ``imagenet_preprocess`` at
    ``resolution``: a pixel size (224, 240, 260) or a zoo model name whose input size to use.
    """
    size = _resolution(resolution)
    samples = {name: preprocessed_photo(name, image, size, label) for name, image, label in labelled_images()}
    if include_photos:
        samples.update(photos(size=size))
    return samples


def _resolution(resolution: int | str) -> int:
    if isinstance(resolution, str):
        from taylorlens.zoo.registry import model_info

        shape = model_info(resolution).input_shape
        if len(shape) != 3 or shape[0] != 3:
            raise ValueError(f"zoo model {resolution!r} takes {shape}, not RGB images")
        return shape[-1]
    if not isinstance(resolution, int) or resolution < 32:
        raise ValueError(f"resolution must be a pixel size >= 32 or a zoo model name, got {resolution!r}")
    return resolution
