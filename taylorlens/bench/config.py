"""Benchmark configs (TOML): models, data and samples, methods with option grids, metrics, seed, device.

```toml
name = "smoothtaylor-table1"
seed = 0
device = "cpu"
batch_size = 32                 # samples per attribution batch (optional)
models = ["digits_cnn_relu"]    # top-level keys come before the first [table]
# layer = "embed"               # explain this layer's output (token-id models): given to every method and
#                               # to every metric that calls the model, as their ``layer=`` model option
# output = "softmax"            # explain the softmax probability instead of the model's raw output, or
#                               # "logit_difference" (2-class models: z_c - z_other, a single sigmoid's logit)

[data]
dataset = "digits"              # digits | mnist | fashion_mnist | photos | imagenet | boxes | imdb
split = "test"
samples = 64                    # the first N samples (scaled by --scale)
target = "label"                # label | predicted
# any other [data] key is an option of the data set: boxes take source, size, seed, object_scale,
# keep_classified_by
# (taylorlens.zoo.boxes.boxes); imagenet takes resolution (taylorlens.zoo.imagenet_samples); imdb takes
# context (N random sections of `context` words, the next word as label: taylorlens.bench.data)

[[methods]]
name = "smooth_taylor"
grid = { sigma = [0.3, 0.5], n_roots = [100, 150] }   # product of the lists
seed = 0                        # fixed options

[[metrics]]
name = "aupc"
region = 2
```
Each (model, method entry, metric entry) gets a key: a hash of exactly what determines its numbers, so a
changed method option recomputes only that method and an unchanged one is never recomputed.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DATASETS = ("digits", "mnist", "fashion_mnist", "photos", "imagenet", "boxes", "imdb")
#: Data sets of token ids: their gallery shows words (``taylorlens.report.text``), not heat maps.
TEXT_DATASETS = ("imdb",)
#: Data sets that take options from the [data] table, and which.
DATA_OPTIONS = {"boxes": ("source", "size", "seed", "object_scale", "keep_classified_by"), "imagenet": ("resolution",),
                "imdb": ("context",)}
#: ``output`` values of a config: what is explained instead of the model's raw output.
OUTPUTS = ("softmax", "logit_difference")
DATA_KEYS = ("dataset", "split", "samples", "target")
TARGETS = ("label", "predicted")


class ConfigError(ValueError):
    """A benchmark config that cannot run; the message names the field and what is accepted."""


@dataclass(frozen=True)
class Entry:
    """One method or metric with concrete options (one point of a grid)."""

    name: str
    options: dict[str, Any]

    @property
    def label(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in sorted(self.options.items()) if k != "seed")
        return f"{self.name}({shown})" if shown else self.name

    def key(self, *context: Any) -> str:
        """Stable hash of the entry and its context (model, data, seed)."""
        payload = json.dumps([self.name, self.options, *context], sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class BenchConfig:
    name: str
    models: list[str]
    dataset: str
    split: str
    samples: int
    target: str
    methods: list[Entry]
    metrics: list[Entry]
    seed: int = 0
    device: str = "cpu"
    batch_size: int = 32
    gallery: int = 4
    source: dict[str, Any] = field(default_factory=dict, repr=False)
    data_options: dict[str, Any] = field(default_factory=dict)
    layer: str | None = None
    output: str | None = None

    def scaled(self, factor: float) -> BenchConfig:
        """The same benchmark on ``factor`` times as many samples (``--scale``)."""
        if factor <= 0:
            raise ConfigError(f"scale must be > 0, got {factor}")
        return BenchConfig(**{**self.__dict__, "samples": max(1, round(self.samples * factor))})

    def data_context(self) -> list[Any]:
        """What besides a method's own options determines its numbers (part of every key)."""
        explained = {k: v for k, v in (("layer", self.layer), ("output", self.output)) if v is not None}
        return ([self.dataset, self.split, self.target] + ([self.data_options] if self.data_options else [])
                + ([explained] if explained else []))

    def model_options(self) -> dict[str, Any]:
        """The model options (``layer=``, ``output=``) every method and every model-calling metric gets."""
        options: dict[str, Any] = {} if self.layer is None else {"layer": self.layer}
        if self.output is not None:
            options["output"] = {"softmax": softmax_output, "logit_difference": logit_difference}[self.output]
        return options

    @property
    def is_text(self) -> bool:
        return self.dataset in TEXT_DATASETS


def softmax_output(logits: Any) -> Any:
    """``output = "softmax"``: the class probabilities ``softmax(logits, dim=1)`` of a ``(B, C)`` model."""
    return logits.softmax(dim=1)


def logit_difference(logits: Any) -> Any:
    """``output = "logit_difference"``: ``z_c - z_{1-c}`` for both classes of a ``(B, 2)`` model, the logit of a
    single sigmoid unit (Ancona et al.'s IMDB models end in Dense(1); the zoo's give two logits)."""
    if logits.dim() != 2 or logits.shape[1] != 2:
        raise ConfigError(f"output = \"logit_difference\" needs a model with 2 logits (B, 2), got "
                          f"{tuple(logits.shape)}")
    return logits - logits.flip(1)


def expand(table: dict[str, Any], where: str) -> list[Entry]:
    """One entry per point of the table's ``grid`` (product of its lists); other keys are fixed options."""
    if "name" not in table or not isinstance(table["name"], str):
        raise ConfigError(f"every [[{where}]] table needs a name, got {table!r}")
    fixed = {k: v for k, v in table.items() if k not in ("name", "grid")}
    grid = table.get("grid", {})
    if not isinstance(grid, dict) or any(not isinstance(v, list) or not v for v in grid.values()):
        raise ConfigError(f"{where} {table['name']}: grid must map option names to non-empty lists, got {grid!r}")
    keys = sorted(grid)
    return [
        Entry(table["name"], {**fixed, **dict(zip(keys, values, strict=True))})
        for values in itertools.product(*(grid[k] for k in keys))
    ]


def parse(source: dict[str, Any], name: str = "benchmark") -> BenchConfig:
    """Validate a parsed TOML document."""
    data = source.get("data", {})
    models = source.get("models")
    if not isinstance(models, list) or not models or not all(isinstance(m, str) for m in models):
        hint = " (write it before the first [table]: TOML puts later keys in that table)" if "models" in data else ""
        raise ConfigError(f"models must be a non-empty list of model names, got {models!r}{hint}")
    dataset = data.get("dataset", "digits")
    if dataset not in DATASETS:
        raise ConfigError(f"data.dataset must be one of {DATASETS}, got {dataset!r}")
    data_options = {k: v for k, v in data.items() if k not in DATA_KEYS}
    unknown = sorted(set(data_options) - set(DATA_OPTIONS.get(dataset, ())))
    if unknown:
        raise ConfigError(f"data.{unknown[0]}: {dataset} takes {list(DATA_OPTIONS.get(dataset, ())) or 'no options'}")
    context = data_options.get("context")
    if context is not None and (not isinstance(context, int) or isinstance(context, bool) or context < 1):
        raise ConfigError(f"data.context must be a positive int (the words before the predicted one), got {context!r}")
    target = data.get("target", "label")
    if target not in TARGETS:
        raise ConfigError(f"data.target must be one of {TARGETS}, got {target!r}")
    samples = data.get("samples", 16)
    if not isinstance(samples, int) or samples < 1:
        raise ConfigError(f"data.samples must be a positive int, got {samples!r}")
    methods = [e for table in source.get("methods", []) for e in expand(table, "methods")]
    metrics = [e for table in source.get("metrics", []) for e in expand(table, "metrics")]
    if not methods:
        raise ConfigError("a benchmark needs at least one [[methods]] table")
    layer = source.get("layer")
    if layer is not None and (not isinstance(layer, str) or not layer):
        raise ConfigError(f"layer must be the dotted name of a submodule of every model (e.g. \"embed\"), "
                          f"got {layer!r}")
    output = source.get("output")
    if output is not None and output not in OUTPUTS:
        raise ConfigError(f"output must be one of {OUTPUTS} (or left out: the model's raw output), got {output!r}")
    if dataset in TEXT_DATASETS and layer is None:
        raise ConfigError(f"data.dataset = {dataset!r} gives token ids, which have no gradient: set the top-level "
                          "layer (e.g. layer = \"embed\", the zoo text models' embedding) before the first [table]")
    batch_size = source.get("batch_size", 32)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive int, got {batch_size!r}")
    return BenchConfig(
        name=source.get("name", name), models=models, dataset=dataset, split=data.get("split", "test"),
        samples=samples, target=target, methods=methods, metrics=metrics, seed=int(source.get("seed", 0)),
        device=source.get("device", "cpu"), batch_size=batch_size, gallery=int(source.get("gallery", 4)),
        source=source, data_options=data_options, layer=layer, output=output,
    )


def load(path: str | Path) -> BenchConfig:
    """Read and validate a TOML config file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        source = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML: {error}") from None
    return parse(source, path.stem)
