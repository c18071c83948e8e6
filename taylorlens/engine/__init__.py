"""How a model is evaluated: input checks, targets, batched/chunked passes and modified gradients."""

from taylorlens.engine.checks import AttributionInputError, broadcast_baseline
from taylorlens.engine.modified_gradients import (
    DeconvReLURule,
    EpsilonRule,
    GuidedReLURule,
    RescaleRule,
    Rule,
    UnsupportedModelError,
    modified_gradients,
)
from taylorlens.engine.passes import Chunk, Points, inputs_points
from taylorlens.engine.request import Request

__all__ = [
    "AttributionInputError",
    "Chunk",
    "DeconvReLURule",
    "EpsilonRule",
    "GuidedReLURule",
    "Points",
    "RescaleRule",
    "Request",
    "Rule",
    "UnsupportedModelError",
    "broadcast_baseline",
    "inputs_points",
    "modified_gradients",
]
