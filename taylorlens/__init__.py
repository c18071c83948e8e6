"""taylorlens: gradient-based attribution for PyTorch models, the Taylor attribution framework, and the
metrics that evaluate attributions.

>>> import taylorlens
>>> maps = taylorlens.attribute(model, x, target=3, method="integrated_gradients", steps=50)
"""

from taylorlens import axioms as axioms  # taylorlens.axioms.check
from taylorlens import metrics as metrics  # taylorlens.metrics.*
from taylorlens import taylor as taylor  # registers the "taylor" method
from taylorlens.engine import AttributionInputError, BatchSizeWarning, UnsupportedModelError, sum_over
from taylorlens.methods import (
    AttributionInfo,
    Deconvnet,
    DeepLift,
    EpsilonLRP,
    ExpectedGradients,
    Gradient,
    GradientXInput,
    GuidedBackprop,
    IntegratedGradients,
    InteriorGradients,
    Method,
    Occlusion,
    Saliency,
    SmoothGrad,
    SmoothTaylor,
    attribute,
    methods,
)
from taylorlens.methods.generation import explain_generation
from taylorlens.methods.words import word_attributions

__version__ = "0.1.0"

__all__ = [
    "AttributionInfo", "AttributionInputError", "BatchSizeWarning", "Deconvnet", "DeepLift", "EpsilonLRP",
    "ExpectedGradients", "Gradient", "GradientXInput", "GuidedBackprop", "IntegratedGradients", "InteriorGradients",
    "Method", "Occlusion", "Saliency", "SmoothGrad", "SmoothTaylor", "UnsupportedModelError", "attribute",
    "explain_generation", "methods", "sum_over", "word_attributions",
]
