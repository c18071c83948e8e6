"""Real photos that ship offline (scikit-image, scikit-learn) and user image folders, for ImageNet models.

Each ``Photo`` keeps the raw uint8 RGB image for display and the model input: resize the shorter side to
``size + 32`` (bicubic; 256 for 224), center-crop ``size x size`` (the crop padding of the TF EfficientNet
evaluation), scale to [0, 1] and normalise with EfficientNet-Lite's mean/std
(``taylorlens.zoo.efficientnet_lite.INPUT_MEAN``/``INPUT_STD``), giving a float32 (3, size, size) tensor.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from taylorlens.zoo.efficientnet_lite import INPUT_MEAN, INPUT_STD

CROP_SIZE = 224
CROP_PADDING = 32
SKIMAGE_PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")
SKLEARN_PHOTOS = ("china", "flower")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class Photo:
    """A named photo: ``image`` is the raw (H, W, 3) uint8 RGB array, ``tensor`` the (3, S, S) input, and
    ``label`` its true ImageNet class index where one is known (None for the bundled photos)."""

    name: str
    image: np.ndarray
    tensor: torch.Tensor
    label: int | None = None


def photos(names: list[str] | tuple[str, ...] | None = None, size: int = CROP_SIZE) -> dict[str, Photo]:
    """The bundled photos by name (default all): skimage's chelsea, coffee, astronaut, rocket and
    scikit-learn's china and flower, at resolution ``size``. Use
    ``torch.stack([p.tensor for p in photos().values()])`` for a batch.
    """
    available = SKIMAGE_PHOTOS + SKLEARN_PHOTOS
    names = available if names is None else tuple(names)
    unknown = [name for name in names if name not in available]
    if unknown:
        raise ValueError(f"unknown photo(s) {unknown}; available: {list(available)}")
    return {name: preprocessed_photo(name, _bundled_image(name), size) for name in names}


def photos_from_folder(directory: str | Path) -> dict[str, Photo]:
    """Every image file in ``directory`` (sorted, keyed by file stem), preprocessed like ``photos``."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"image folder {directory} does not exist")
    paths = sorted(p for p in directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise FileNotFoundError(f"no image file ({', '.join(IMAGE_SUFFIXES)}) in {directory}")
    result = {}
    for path in paths:
        with Image.open(path) as image:
            result[path.stem] = preprocessed_photo(path.stem, np.asarray(image.convert("RGB")))
    return result


def imagenet_preprocess(image: np.ndarray, size: int = CROP_SIZE) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> float32 (3, size, size): resize shorter side to ``size + 32``, center crop,
    normalise (``imagenet_normalise``). ``size`` is the model's resolution: 224 / 240 / 260 for Lite0/1/2."""
    pil = Image.fromarray(image)
    scale = (size + CROP_PADDING) / min(pil.size)
    pil = pil.resize((round(pil.width * scale), round(pil.height * scale)), Image.BICUBIC)
    left, top = (pil.width - size) // 2, (pil.height - size) // 2
    pil = pil.crop((left, top, left + size, top + size))
    return imagenet_normalise(np.asarray(pil))


def imagenet_normalise(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> float32 (3, H, W) scaled to [0, 1] and normalised with INPUT_MEAN/INPUT_STD."""
    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean = torch.tensor(INPUT_MEAN).view(3, 1, 1)
    std = torch.tensor(INPUT_STD).view(3, 1, 1)
    return ((pixels - mean) / std).contiguous()


def preprocessed_photo(name: str, image: np.ndarray, size: int = CROP_SIZE, label: int | None = None) -> Photo:
    return Photo(name=name, image=image, tensor=imagenet_preprocess(image, size), label=label)


def _bundled_image(name: str) -> np.ndarray:
    if name in SKIMAGE_PHOTOS:
        import skimage.data

        return getattr(skimage.data, name)()
    from sklearn.datasets import load_sample_image

    return load_sample_image(f"{name}.jpg")
