"""Metrics that evaluate attributions: plain functions over batched tensors, one module per family.

Metrics that need the model take ``(model, inputs, attributions, target, ...)``; model-free ones take the
attributions alone. Each returns per-input values (and the curve where there is one); metrics that sample
take ``seed``. ``available()`` lists every metric with its metadata (direction, curve axes, the arguments
it needs) and ``evaluate(name, ...)`` runs one into the shared :class:`MetricResult` shape. Metrics never
compute attributions; the exceptions, :func:`randomization_test` and :func:`data_randomization_test`,
take a method name and attribute through the public ``taylorlens.attribute``. All model passes go through the engine.
"""

from taylorlens.metrics.areas import aopc, aopc_curve, simpson, trapezoid
from taylorlens.metrics.completeness import CompletenessGap, completeness_gap
from taylorlens.metrics.features import FeatureGroups, feature_groups
from taylorlens.metrics.infidelity import Infidelity, infidelity
from taylorlens.metrics.localization import attribution_in_box, bbox_accuracy
from taylorlens.metrics.perturbation import AUPC, PRESETS, PerturbationCurve, aupc, perturbation_curve
from taylorlens.metrics.randomization import (
    DataRandomizationTest,
    RandomizationTest,
    data_randomization_test,
    map_similarity,
    randomization_test,
)
from taylorlens.metrics.registry import MetricInfo, MetricResult, available, evaluate, metric_info
from taylorlens.metrics.road import ROAD, noisy_linear_imputation, road
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
    "AUPC", "CompletenessGap", "DataRandomizationTest", "FeatureGroups", "Infidelity", "MetricInfo", "MetricResult",
    "MultiScaleTV", "PRESETS", "PerturbationCurve", "ROAD", "RandomizationTest", "ScalingPath", "SensitivityN",
    "aopc", "aopc_curve", "attribution_in_box", "aupc", "autvc", "available", "average_total_variation",
    "bbox_accuracy", "completeness_gap", "data_randomization_test", "default_n_grid", "evaluate", "feature_groups",
    "gaussian_pyramid", "infidelity", "map_similarity", "metric_info", "noisy_linear_imputation", "pearson",
    "perturbation_curve", "randomization_test", "road", "saliency_map", "scaling_path", "sensitivity_n", "simpson",
    "total_variation", "trapezoid",
]
