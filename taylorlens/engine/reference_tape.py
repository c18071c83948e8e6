"""The references' values at every rule site, recorded in one forward pass and replayed in the points' pass.

DeepLIFT's rules (Ancona et al. 2018, Prop. 2; Shrikumar et al. 2017) need, at every nonlinearity and
product, the value the *reference* input gives there: ``g = (f(z) - f(z_ref)) / (z - z_ref)``, the
symmetric product split ``((b + b_ref) / 2, (a + a_ref) / 2)``. The references need no gradient, so they
are evaluated first, in a forward pass that only writes those values down in call order (a
:class:`ReferenceTape` being recorded), and the points' forward+backward pass then reads them back at the
same sites (the tape replayed). This costs one forward per reference instead of the forward+backward a
``[points; references]`` batch would spend on them, and when every point shares one reference (a constant
baseline, no per-sample forward arguments) one forward in all: its values broadcast along the batch.

A site the replay meets that the recording did not (another kind of site, a shape that does not broadcast
to the point's, sites left over) raises :class:`ReferenceMismatch`: the points and the references took
different paths through the model.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class ReferenceMismatch(RuntimeError):
    """The points' forward pass does not meet the sites the references' pass recorded."""


class Entry(NamedTuple):
    """One site: its kind ("elementwise", "product", "softmax", "lstm") and the reference's values there."""

    kind: str
    values: tuple[Tensor, ...]


class ReferenceTape:
    """The references' values at the rule sites of one forward pass: :meth:`record`, then :meth:`replay`.

    ``recording`` is True until :meth:`start_replay`. A tape of one reference shared by every point holds
    values of batch size 1, which broadcast to the points'.
    """

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.recording = True
        self.position = 0

    def record(self, kind: str, *values: Tensor) -> None:
        self.entries.append(Entry(kind, tuple(v.detach() for v in values)))

    def start_replay(self) -> None:
        self.recording, self.position = False, 0

    def replay(self, kind: str, *like: Tensor) -> tuple[Tensor, ...]:
        """The next site's reference values, checked against the kind and the points' tensors ``like``."""
        if self.position >= len(self.entries):
            raise ReferenceMismatch(f"the points' pass meets a {kind} site after the {len(self.entries)} sites of "
                                    "the references' pass")
        entry = self.entries[self.position]
        self.position += 1
        if entry.kind != kind:
            raise ReferenceMismatch(f"site {self.position - 1} is a {kind} for the points and a {entry.kind} for "
                                    "the references")
        for point, reference in zip(like, entry.values, strict=False):
            if reference.dim() != point.dim() or _broadcast(point.shape, reference.shape) != point.shape:
                raise ReferenceMismatch(f"at site {self.position - 1} ({kind}) the points' tensor has shape "
                                        f"{tuple(point.shape)} and the references' {tuple(reference.shape)}")
        return entry.values

    def finish(self) -> None:
        """Raise if the replay left sites of the recording unvisited."""
        if self.position != len(self.entries):
            raise ReferenceMismatch(f"the points' pass met {self.position} of the references' "
                                    f"{len(self.entries)} sites")


def _broadcast(a: torch.Size, b: torch.Size) -> torch.Size | None:
    try:
        return torch.broadcast_shapes(a, b)
    except RuntimeError:
        return None
