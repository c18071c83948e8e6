"""Images whose object box is known: for bounding-box accuracy (Deng et al., AAAI 2021, Fig. 3) and the IG
paper's localization remark (Sundararajan et al., Sec. 2.7).

``boxes(source=...)`` builds them:

- ``"imagenet"``: each of foolbox's 20 labelled ImageNet images, scaled down to a seeded random side in
  ``object_scale`` (default ``OBJECT_SCALE``) of the canvas and pasted at a seeded random position onto a
  canvas of natural texture (another of the 20 images, resized and Gaussian-blurred). The box is where it
  was pasted, exactly.
- ``"mnist"``: real MNIST digits (the ``split`` of ``taylorlens.zoo.mnist``) scaled to 14-20 px and pasted
  onto a 28x28 canvas of faint uniform noise, for the 28x28 models.
- ``"quokka"``: imgaug 0.4.0's ``quokka.jpg`` with its annotated box (x1, y1, x2, y2) = (148, 50, 550, 642)
  and 39-point polygon (``quokka_annotations.json``), cropped to the square around the box and resized.

Boxes are ``(top, left, bottom, right)`` with exclusive bottom/right, the convention of
``taylorlens.metrics.bbox_accuracy``; ``masks`` are the same boxes as ``(B, H, W)`` bool, except for the
quokka, whose mask is its polygon (rasterised, clipped to the box).
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter

from taylorlens.zoo import wheels
from taylorlens.zoo.imagenet_samples import labelled_images
from taylorlens.zoo.mnist import mnist_arrays, mnist_split_indices
from taylorlens.zoo.photos import CROP_SIZE, imagenet_normalise

SOURCES = ("imagenet", "mnist", "quokka")
OBJECT_SCALE = (0.6, 0.85)
BACKGROUND_BLUR = 1 / 28  # Gaussian radius as a fraction of the canvas side (8 px at 224)
MNIST_OBJECT_SIDES = (14, 20)
MNIST_NOISE_MAX = 48  # background pixels uniform in 0..48 of 255, i.e. -1 .. -0.62 after scaling
QUOKKA_PACKAGE = "imgaug"
QUOKKA_IMAGE = "imgaug/quokka.jpg"
QUOKKA_ANNOTATIONS = "imgaug/quokka_annotations.json"


class BoxedImages(tuple):
    """``(x, y)`` (so ``x, y = zoo.dataset("boxes")`` works) that also carries the boxes.

    ``x``: float32 model inputs (B, C, H, W); ``y``: int64 true classes (-1 where none is known);
    ``boxes``: int64 (B, 4) ``(top, left, bottom, right)``; ``masks``: bool (B, H, W); ``images``: the uint8
    canvases for display; ``names``: one per sample, saying what was pasted where.
    """

    x: torch.Tensor
    y: torch.Tensor
    boxes: torch.Tensor
    masks: torch.Tensor
    images: list[np.ndarray]
    names: list[str]

    def __new__(cls, x: torch.Tensor, y: torch.Tensor, boxes: torch.Tensor, masks: torch.Tensor,
                images: list[np.ndarray], names: list[str]) -> BoxedImages:  # fmt: skip
        result = super().__new__(cls, (x, y))
        result.x, result.y, result.boxes, result.masks = x, y, boxes, masks
        result.images, result.names = images, names
        return result

    def subset(self, keep: torch.Tensor) -> BoxedImages:
        """The samples where the bool ``keep`` (B,) is true, in order."""
        rows = keep.nonzero().flatten().tolist()
        return BoxedImages(self.x[rows], self.y[rows], self.boxes[rows], self.masks[rows],
                           [self.images[i] for i in rows], [self.names[i] for i in rows])  # fmt: skip


@dataclass(frozen=True)
class QuokkaAnnotation:
    """imgaug's quokka photo (643, 960, 3) uint8, its box ``(x1, y1, x2, y2)`` and polygon ``[(x, y), ...]``."""

    image: np.ndarray
    box_xyxy: tuple[int, int, int, int]
    polygon: list[tuple[float, float]]


def boxes(
    split: str = "test",
    *,
    source: str = "imagenet",
    size: int | None = None,
    seed: int = 0,
    samples: int | None = None,
    object_scale: Sequence[float] = OBJECT_SCALE,
    keep_classified_by: Sequence[str] = (),
) -> BoxedImages:
    """Images with known object boxes from ``source`` (``SOURCES``) on a ``size`` x ``size`` canvas
    (default 224 for photos, 28 for MNIST).

    Positions and sizes are drawn from ``seed``; ``object_scale``: (low, high) side of the pasted photo as a
    fraction of the canvas side (Deng et al. keep boxes under 33 % of the image: side <= 0.57).
    ``keep_classified_by``: zoo model names; keep only the samples every one of them classifies as ``y`` (the
    pasted object is still recognised). Then the first ``samples`` are returned. ``split`` picks MNIST's
    digits; the photos have only "test".
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    if source != "mnist" and split != "test":
        raise ValueError(f"boxes from {source!r} have only the split 'test', got {split!r}")
    if source == "imagenet":
        data = _pasted_imagenet(size or CROP_SIZE, seed, tuple(object_scale))
    elif source == "mnist":
        data = _pasted_mnist(split, size or 28, seed, None if keep_classified_by else samples)
    else:
        data = _quokka_boxes(size or CROP_SIZE)
    for name in keep_classified_by:
        data = data.subset(_classified(name, data))
    if samples is not None:
        data = data.subset(torch.arange(len(data.y)) < samples)
    return data


@cache
def quokka() -> QuokkaAnnotation:
    """The quokka photo with its annotations, read out of imgaug's wheel."""
    with Image.open(io.BytesIO(wheels.read_member(QUOKKA_PACKAGE, QUOKKA_IMAGE))) as image:
        pixels = np.asarray(image.convert("RGB"))
    annotations = json.loads(wheels.read_member(QUOKKA_PACKAGE, QUOKKA_ANNOTATIONS))
    box = annotations["bounding_boxes"][0]
    polygon = [(point["x"], point["y"]) for point in annotations["polygons"][0]["keypoints"]]
    return QuokkaAnnotation(pixels, (int(box["x1"]), int(box["y1"]), int(box["x2"]), int(box["y2"])), polygon)


def paste(canvas: np.ndarray, image: np.ndarray, top: int, left: int) -> tuple[np.ndarray, tuple[int, ...]]:
    """A copy of ``canvas`` with ``image`` pasted at ``(top, left)``, and its box (top, left, bottom, right)."""
    result = canvas.copy()
    bottom, right = top + image.shape[0], left + image.shape[1]
    result[top:bottom, left:right] = image
    return result, (top, left, bottom, right)


def _box_masks(boxes: torch.Tensor, size: int) -> torch.Tensor:
    rows = torch.arange(size).view(1, -1, 1)
    cols = torch.arange(size).view(1, 1, -1)
    top, left, bottom, right = (boxes[:, i].view(-1, 1, 1) for i in range(4))
    return (rows >= top) & (rows < bottom) & (cols >= left) & (cols < right)


def _placement(generator: np.random.Generator, size: int, low: int, high: int) -> tuple[int, int, int]:
    side = int(generator.integers(low, high + 1))
    top, left = (int(v) for v in generator.integers(0, size - side + 1, size=2))
    return side, top, left


def _resized(image: np.ndarray, side: int) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((side, side), Image.BICUBIC))


def _pasted_imagenet(size: int, seed: int, object_scale: tuple[float, ...]) -> BoxedImages:
    images = labelled_images()
    generator = np.random.default_rng(seed)
    offset = int(generator.integers(1, len(images)))  # background = another image, never the object's own
    low, high = (round(scale * size) for scale in object_scale)
    canvases, corners, names = [], [], []
    for index, (name, image, _) in enumerate(images):
        background_name, background, _ = images[(index + offset) % len(images)]
        blurred = Image.fromarray(background).resize((size, size), Image.BICUBIC)
        texture = np.asarray(blurred.filter(ImageFilter.GaussianBlur(BACKGROUND_BLUR * size)))
        side, top, left = _placement(generator, size, low, high)
        canvas, box = paste(texture, _resized(image, side), top, left)
        canvases.append(canvas)
        corners.append(box)
        names.append(f"{name} at {box} on blurred {background_name}")
    x = torch.stack([imagenet_normalise(canvas) for canvas in canvases])
    y = torch.tensor([label for *_, label in images])
    boxes_ = torch.tensor(corners)
    return BoxedImages(x, y, boxes_, _box_masks(boxes_, size), canvases, names)


def _pasted_mnist(split: str, size: int, seed: int, samples: int | None) -> BoxedImages:
    images, labels = mnist_arrays()
    rows = mnist_split_indices()[split][:samples]
    generator = np.random.default_rng(seed)
    low, high = MNIST_OBJECT_SIDES
    canvases, corners = [], []
    for row in rows:
        noise = generator.integers(0, MNIST_NOISE_MAX + 1, size=(size, size)).astype(np.uint8)
        side, top, left = _placement(generator, size, low, min(high, size))
        canvas, box = paste(noise, _resized(images[row], side), top, left)
        canvases.append(canvas)
        corners.append(box)
    x = torch.from_numpy(np.stack(canvases).astype(np.float32) / 127.5 - 1.0)[:, None].contiguous()
    boxes_ = torch.tensor(corners)
    names = [f"mnist {split} {int(row)} at {tuple(box)}" for row, box in zip(rows, corners, strict=True)]
    return BoxedImages(x, torch.from_numpy(labels[rows]), boxes_, _box_masks(boxes_, size), canvases, names)


def _quokka_boxes(size: int) -> BoxedImages:
    annotation = quokka()
    height, width = annotation.image.shape[:2]
    x1, y1, x2, y2 = annotation.box_xyxy
    side = min(height, width)  # the square around the box's centre, shifted to stay inside the photo
    left = min(max((x1 + x2) // 2 - side // 2, 0), width - side)
    top = min(max((y1 + y2) // 2 - side // 2, 0), height - side)
    scale = size / side
    crop = Image.fromarray(annotation.image).crop((left, top, left + side, top + side))
    canvas = np.asarray(crop.resize((size, size), Image.BICUBIC))
    box = (round((y1 - top) * scale), round((x1 - left) * scale), round((y2 - top) * scale),
           round((x2 - left) * scale))  # fmt: skip
    outline = Image.new("1", (size, size))
    ImageDraw.Draw(outline).polygon([((px - left) * scale, (py - top) * scale) for px, py in annotation.polygon],
                                    fill=1)  # fmt: skip
    inside_box = _box_masks(torch.tensor([box]), size)  # rasterising puts a few edge pixels just outside
    mask = torch.from_numpy(np.asarray(outline, dtype=bool).copy())[None] & inside_box
    return BoxedImages(imagenet_normalise(canvas)[None], torch.tensor([-1]), torch.tensor([box]), mask, [canvas],
                       [f"quokka (imgaug) box {annotation.box_xyxy}"])  # fmt: skip


def _classified(name: str, data: BoxedImages) -> torch.Tensor:
    from taylorlens.zoo.loading import load

    model = load(name)
    with torch.no_grad():
        predicted = torch.cat([model(chunk).argmax(1) for chunk in data.x.split(8)])
    return predicted == data.y
