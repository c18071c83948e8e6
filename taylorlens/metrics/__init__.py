"""Metrics that evaluate attributions: plain functions over batched tensors, one module per family.

Every metric takes ``(model, inputs, attributions, target, ...)`` and returns per-input values (and the
curve where there is one); metrics that sample take ``seed``. Metrics never compute attributions (except
:func:`taylorlens.axioms.check`, which takes a method name). All model passes go through the engine.
"""

from taylorlens.metrics.areas import aopc, aopc_curve, simpson, trapezoid
from taylorlens.metrics.completeness import CompletenessGap, completeness_gap
from taylorlens.metrics.features import FeatureGroups, feature_groups
from taylorlens.metrics.infidelity import Infidelity, infidelity
from taylorlens.metrics.localization import attribution_in_box, bbox_accuracy
from taylorlens.metrics.perturbation import AUPC, PRESETS, PerturbationCurve, aupc, perturbation_curve
from taylorlens.metrics.saturation import ScalingPath, scaling_path
from taylorlens.metrics.sensitivity import SensitivityN, default_n_grid, pearson, sensitivity_n
from taylorlens.metrics.smoothness import (
    MultiScaleTV,
    autvc,
    average_total_variation,
    gaussian_pyramid,
    saliency_map,
    total_variation,
)

__all__ = [
    "AUPC", "CompletenessGap", "FeatureGroups", "Infidelity", "MultiScaleTV", "PRESETS", "PerturbationCurve",
    "ScalingPath", "SensitivityN", "aopc", "aopc_curve", "attribution_in_box", "aupc", "autvc",
    "average_total_variation", "bbox_accuracy", "completeness_gap", "default_n_grid", "feature_groups",
    "gaussian_pyramid", "infidelity", "pearson", "perturbation_curve", "saliency_map", "scaling_path",
    "sensitivity_n", "simpson", "total_variation", "trapezoid",
]
