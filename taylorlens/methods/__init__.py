"""Attribution methods, one small module per family, all reachable by name through the registry."""

from taylorlens.methods.base import AttributionInfo, Method
from taylorlens.methods.gradients import Gradient, GradientXInput, Saliency
from taylorlens.methods.modified import Deconvnet, DeepLift, EpsilonLRP, GuidedBackprop
from taylorlens.methods.occlusion import Occlusion
from taylorlens.methods.paths import ExpectedGradients, IntegratedGradients, InteriorGradients
from taylorlens.methods.registry import MethodInfo, attribute, method_class, methods, register
from taylorlens.methods.smooth_taylor import SmoothTaylor
from taylorlens.methods.smoothing import SmoothGrad

__all__ = [
    "AttributionInfo", "Deconvnet", "DeepLift", "EpsilonLRP", "ExpectedGradients", "Gradient", "GradientXInput",
    "GuidedBackprop", "IntegratedGradients", "InteriorGradients", "Method", "MethodInfo", "Occlusion",
    "Saliency", "SmoothGrad", "SmoothTaylor", "attribute", "method_class", "methods", "register",
]
