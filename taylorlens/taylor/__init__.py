"""The Taylor attribution framework (Deng et al., "A Unified Taylor Framework for Revisiting Attribution
Methods", AAAI 2021): Taylor terms, reformulations of attribution methods, and the three principles.

>>> from taylorlens import taylor
>>> t = taylor.terms(model, x, target=3, baseline=0.0, order=2)       # T^alpha, T^beta_d, T^beta_t, epsilon
>>> r = taylor.reformulate("integrated_gradients", model, x, 3)         # Theorem 5, second order
>>> taylor.percentage_change(taylorlens.attribute(model, x, 3, "integrated_gradients"), r)
"""

from taylorlens.taylor.method import TaylorAttribution
from taylorlens.taylor.principles import LEVELS, PRINCIPLES, principles_followed
from taylorlens.taylor.reformulate import (
    REFORMULATED,
    deeplift_layers,
    percentage_change,
    percentage_changes,
    reformulate,
)
from taylorlens.taylor.terms import MAX_EXACT_FEATURES, TaylorTerms, relative_error, terms

__all__ = [
    "LEVELS", "MAX_EXACT_FEATURES", "PRINCIPLES", "REFORMULATED", "TaylorAttribution", "TaylorTerms",
    "deeplift_layers", "percentage_change", "percentage_changes", "principles_followed", "reformulate",
    "relative_error", "terms",
]
