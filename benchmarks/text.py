"""Benchmark a text model from token ids: IG-32 at the word embeddings of a BERT-base-sized classifier.

The work (issue 10): a random ``BertForSequenceClassification`` of BERT-base size (12 layers, hidden 768,
12 heads), a batch of 4 sequences of 128 token ids with an attention mask, Integrated Gradients with 32
Gauss-Legendre steps explained at ``bert.embeddings.word_embeddings`` (``layer=``), target class 1.

* ``ideal`` = 32 points per sample x the best per-point cost of a plain forward+backward pass of the part of
  the model after the word embeddings (``model(inputs_embeds=e, attention_mask=m)``), measured in the same
  run at the cheapest batch size, and re-measured in every timed round so that it sees the same load.
* Captum: ``LayerIntegratedGradients`` on the same layer, ids, mask, target, baseline (zero embedding),
  steps and rule (its ``internal_batch_size`` set to the chunk size our ladder found best), so both do the
  same work; the maximum absolute difference of the attributions is printed with the times.

Run: ``python benchmarks/text.py`` (several minutes on 2 cores) or ``--quick`` (2 layers, hidden 128,
sequence 32: seconds). Results are recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import transformers
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import taylorlens  # noqa: E402
from benchmarks.timing import (  # noqa: E402
    best_pass_cost,
    load_average,
    machine,
    markdown_table,
    plain_pass,
    seconds,
    time_interleaved,
)

LAYER = "bert.embeddings.word_embeddings"
TARGET = 1


class AfterWordEmbeddings(nn.Module):
    """The classifier from word embeddings on (what ``layer=`` substitutes), for the plain-pass ideal."""

    def __init__(self, model: nn.Module, mask: Tensor) -> None:
        super().__init__()
        self.model, self.mask = model, mask

    def forward(self, embedded: Tensor) -> Tensor:
        mask = self.mask[torch.arange(embedded.shape[0]) % self.mask.shape[0]]
        return self.model(inputs_embeds=embedded, attention_mask=mask).logits


def bert(layers: int, hidden: int, length: int) -> nn.Module:
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=30522, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=max(2, hidden // 64),
        intermediate_size=4 * hidden, max_position_embeddings=max(512, length), num_labels=2,
    )
    return transformers.BertForSequenceClassification(config).eval()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 layers, hidden 128, sequence 32")
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: the machine is shared)")
    parser.add_argument("--clock", choices=("cpu", "wall"), default=None,
                        help="cpu: CPU seconds of this process (default with one thread), wall: wall-clock")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    clock = args.clock or ("cpu" if args.threads == 1 else "wall")
    layers, hidden, length, batch = (2, 128, 32, 4) if args.quick else (12, 768, 128, 4)
    model = bert(layers, hidden, length)
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(1000, 30000, (batch, length), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, -length // 4:] = 0  # one padded sequence
    target = torch.full((batch,), TARGET)
    word_embeddings = model.get_submodule(LAYER)
    with torch.no_grad():
        embedded = word_embeddings(ids)
    after = AfterWordEmbeddings(model, mask)
    print(f"# IG-{args.steps} at {LAYER}: BERT {layers} layers, hidden {hidden}, sequence {length}, batch {batch}")
    print(machine(), f"load {load_average()}; {clock} clock", flush=True)
    cost = best_pass_cost(after, embedded, target, batch_sizes=(1, 2, 4, 8, 16, 32), repeats=2, clock=clock)
    print("plain pass per batch size:", ", ".join(f"{k}: {v * 1e3:.1f}" for k, v in cost.by_batch_size.items()),
          "ms/point")
    print(f"best plain pass after the word embeddings, {cost.describe()}", flush=True)
    # Captum's baseline is token ids (0 = [PAD]) that it embeds; ours is the same [PAD] embedding.
    pad = word_embeddings.weight[0].detach().clone()
    options = {"steps": args.steps, "rule": "gauss_legendre", "layer": LAYER, "baseline": pad,
               "forward_kwargs": {"attention_mask": mask}}
    results: dict[str, Tensor] = {}

    def ours() -> None:
        results["taylorlens"] = taylorlens.attribute(model, ids, target, "integrated_gradients", **options)

    captum_attr = _captum()

    def theirs() -> None:
        def forward(token_ids: Tensor, attention_mask: Tensor) -> Tensor:
            return model(token_ids, attention_mask=attention_mask).logits

        lig = captum_attr.LayerIntegratedGradients(forward, word_embeddings)
        results["captum"] = lig.attribute(
            ids, baselines=torch.zeros_like(ids), target=target, additional_forward_args=(mask,),
            n_steps=args.steps, method="gausslegendre", internal_batch_size=cost.batch_size,
        )

    ours()  # the chunk-size ladder of a large model is measured over its first two calls (see chunking.py)
    contenders = {"taylorlens": ours, "captum": theirs, "plain": plain_pass(after, embedded, target, cost.batch_size)}
    times = time_interleaved(contenders, repeats=args.repeats, warmups={"taylorlens": ours, "captum": theirs},
                             clock=clock)
    points = batch * args.steps
    ideal = points * times["plain"].median / cost.batch_size
    ours_time, captum_time = times["taylorlens"].median, times["captum"].median
    difference = (results["taylorlens"] - results["captum"]).abs().max().item()
    print(markdown_table(
        ["work", "points", "taylorlens", "ideal", "ratio", "Captum LIG", "Captum / taylorlens", "max abs diff"],
        [[f"IG-{args.steps} at word embeddings", points, seconds(ours_time), seconds(ideal),
          f"{ours_time / ideal:.2f}", seconds(captum_time), f"{captum_time / ours_time:.2f}", f"{difference:.1e}"]],
    ))
    print(f"load after: {load_average()}")


def _captum():  # noqa: ANN202 - Captum is a test-only dependency
    try:
        import captum.attr as captum_attr
    except ImportError as error:
        raise SystemExit("benchmarks/text.py compares against Captum: pip install '.[test]'") from error
    return captum_attr


if __name__ == "__main__":
    main()
