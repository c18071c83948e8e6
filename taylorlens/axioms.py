"""Empirical axiom checks: ``taylorlens.axioms.check(method, model, inputs, ...)`` (see metrics/axioms.py)."""

from taylorlens.metrics.axioms import AXIOMS, AxiomCheck, AxiomReport, check

__all__ = ["AXIOMS", "AxiomCheck", "AxiomReport", "check"]
