"""How a model is evaluated: input checks, targets, batched/chunked passes and modified gradients."""

from taylorlens.engine.checks import AttributionInputError, broadcast_baseline
from taylorlens.engine.layout import sum_over
from taylorlens.engine.memory import BatchSizeWarning
from taylorlens.engine.modified_gradients import (
    DeconvReLURule,
    EpsilonRule,
    GuidedReLURule,
    RescaleRule,
    Rule,
    RuleSelector,
    UnsupportedModelError,
    modified_gradients,
)
from taylorlens.engine.passes import Chunk, PathPoints, Points, inputs_points
from taylorlens.engine.request import MODEL_OPTIONS, Request

__all__ = [
    "AttributionInputError",
    "BatchSizeWarning",
    "Chunk",
    "DeconvReLURule",
    "MODEL_OPTIONS",
    "EpsilonRule",
    "GuidedReLURule",
    "PathPoints",
    "Points",
    "RescaleRule",
    "Request",
    "Rule",
    "RuleSelector",
    "UnsupportedModelError",
    "broadcast_baseline",
    "inputs_points",
    "modified_gradients",
    "sum_over",
]
