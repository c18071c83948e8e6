"""Time ``taylorlens.explain_generation`` against Captum's ``LLMGradientAttribution`` and against the ideal.

Run ``python benchmarks/generation.py`` (a few minutes on 2 shared CPU cores) or ``--quick``. The model is a
small random GPT-2 (``transformers.GPT2Config``, nothing downloaded: only timing and agreement matter);
one prompt of ``--prompt`` tokens and ``--tokens`` generated tokens (default 16 and 32), batch 1 (Captum's
``LLMGradientAttribution`` explains one prompt at a time). The explained value of generated token ``t`` is
its log-probability at position ``P + t - 1`` (what Captum explains); methods: gradient*input and IG with
``--steps`` Gauss-Legendre nodes at the word embeddings ``transformer.wte``. IG's baseline is Captum's: token
id 0's embedding at the prompt positions and the real embeddings at the generated ones.

Contenders, timed in interleaved rounds (``benchmarks.timing``):

* ``ours``: one ``taylorlens.explain_generation`` call (one forward per evaluation point over the whole
  sequence, the T targets' backward passes batched by the engine);
* ``loop``: the per-token loop through ``taylorlens.attribute`` (T calls, each one forward + one backward
  per point), the reference the result must equal to 1e-5 (checked in float64);
* ``captum``: ``LLMGradientAttribution`` around ``LayerGradientXActivation`` / ``LayerIntegratedGradients``
  (T calls on the growing sequence ``prompt + generated[:t]``); its ``(T, P)`` matrix is compared with
  ours' prompt columns;
* ideal: evaluation points x the best per-point cost (over batch sizes) of a plain pass in the same run:
  ``inputs_embeds`` forward over the whole sequence (logits only at the last T + 1 positions,
  ``logits_to_keep``, as ``explain_generation`` asks for) and the T log-probabilities' input gradients, by
  ``torch.autograd.grad(..., is_grads_batched=True)`` or by T backward calls with a retained graph,
  whichever is cheaper (parameters not requiring grad).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/generation.py` finds the package

import torch  # noqa: E402
import transformers  # noqa: E402
from captum.attr import (  # noqa: E402
    LayerGradientXActivation,
    LayerIntegratedGradients,
    LLMGradientAttribution,
    TextTokenInput,
)
from torch import Tensor, nn  # noqa: E402

import taylorlens  # noqa: E402
from benchmarks.timing import (  # noqa: E402
    load_average,
    machine,
    markdown_table,
    parameters_frozen,
    seconds,
    time_call,
    time_interleaved,
)

LAYER = "transformer.wte"
#: Calls of ``ours`` before timing: a short job measures a few chunk sizes per call and resumes the next call.
WARMUPS = 4


class IdTokenizer:
    """The few tokenizer calls Captum's text input makes, for ids written ``t<id>`` (no vocabulary to download)."""

    def encode(self, text: str, return_tensors: str | None = None, add_special_tokens: bool = True) -> object:
        ids = [int(word[1:]) for word in text.split()]
        return torch.tensor([ids]) if return_tensors == "pt" else ids

    def decode(self, ids: object) -> str:
        ids = ids.tolist() if isinstance(ids, Tensor) else ids
        return " ".join(f"t{i}" for i in ([ids] if isinstance(ids, int) else ids))

    def __call__(self, text: str, return_offsets_mapping: bool = False, **_: object) -> dict[str, list]:
        ids, offsets, position = [], [], 0
        for word in text.split(" "):
            ids.append(int(word[1:]))
            offsets.append((position, position + len(word)))
            position += len(word) + 1
        return {"input_ids": ids, "offset_mapping": offsets}

    def convert_ids_to_tokens(self, ids: list[int]) -> list[str]:
        return [f"t{i}" for i in ids]

    def convert_tokens_to_ids(self, tokens: list[str]) -> list[int]:
        return [int(token[1:]) for token in tokens]


def gpt2(dtype: torch.dtype, layers: int, width: int, vocabulary: int) -> nn.Module:
    config = transformers.GPT2Config(vocab_size=vocabulary, n_positions=128, n_embd=width, n_layer=layers,
                                     n_head=4, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    torch.manual_seed(0)
    return transformers.GPT2LMHeadModel(config).to(dtype).eval()


def log_probabilities(out: object) -> Tensor:
    return out.logits.log_softmax(-1)


def method_options(method: str, model: nn.Module, prompt: Tensor, generated: Tensor, steps: int) -> dict:
    if method == "gradient_x_input":
        return {}
    embed = model.get_input_embeddings()
    with torch.no_grad():
        baseline = embed(torch.cat([torch.zeros_like(prompt), generated], dim=1))[0]  # Captum's: token 0
    return {"steps": steps, "rule": "gauss_legendre", "baseline": baseline}


def ours(model: nn.Module, prompt: Tensor, generated: Tensor, method: str, options: dict) -> Tensor:
    return taylorlens.explain_generation(model, prompt, generated, method, layer=LAYER, output=log_probabilities,
                                         **options)[0]


def per_token_loop(model: nn.Module, prompt: Tensor, generated: Tensor, method: str, options: dict) -> Tensor:
    sequence, start = torch.cat([prompt, generated], dim=1), prompt.shape[1]
    rows = []
    for t in range(generated.shape[1]):
        def read(out: object, t: int = t) -> Tensor:
            return out.logits[:, start + t - 1].log_softmax(-1)

        rows.append(taylorlens.attribute(model, sequence, generated[:, t], method, layer=LAYER, output=read,
                                         **options).sum(-1)[0])
    return torch.stack(rows)


def captum(model: nn.Module, prompt: Tensor, generated: Tensor, method: str, steps: int) -> Tensor:
    tokenizer = IdTokenizer()
    layer = model.get_input_embeddings()
    if method == "gradient_x_input":
        inner, options = LayerGradientXActivation(model, layer), {}
    else:
        inner, options = LayerIntegratedGradients(model, layer), {"n_steps": steps, "method": "gausslegendre"}
    explainer = LLMGradientAttribution(inner, tokenizer)
    text = TextTokenInput(tokenizer.decode(prompt[0]), tokenizer)
    return explainer.attribute(text, target=generated[0], **options).token_attr


def plain_pass(model: nn.Module, sequence: Tensor, generated: Tensor, start: int, size: int,
               batched: bool) -> Callable[[], None]:
    """``size`` points through the model at the embeddings and the T input gradients (the ideal's unit)."""
    with torch.no_grad():
        embeddings = model.get_input_embeddings()(sequence).repeat(size, 1, 1)
    count = generated.shape[1]
    columns = generated.expand(size, -1)[..., None]

    def run() -> None:
        with parameters_frozen(model):
            point = embeddings.clone().requires_grad_(True)
            logits = model(inputs_embeds=point, logits_to_keep=count + 1).logits[:, :-1].log_softmax(-1)
            chosen = logits.gather(2, columns)[..., 0]  # (size, T)
            if batched:
                seeds = torch.eye(count, dtype=chosen.dtype)[:, None, :].expand(count, *chosen.shape)
                torch.autograd.grad(chosen, point, seeds, is_grads_batched=True)
            else:
                for t in range(count):
                    torch.autograd.grad(chosen[:, t].sum(), point, retain_graph=t < count - 1)

    return run


def best_plain_cost(model: nn.Module, sequence: Tensor, generated: Tensor, start: int,
                    sizes: tuple[int, ...], clock: str) -> tuple[float, str, Callable[[], None], int]:
    """(seconds per point, how, the pass, its size) of the cheapest plain pass over sizes and both variants."""
    best = None
    for batched in (True, False):
        for size in sizes:
            run = plain_pass(model, sequence, generated, start, size, batched)
            try:
                cost = time_call(run, repeats=3, budget=4.0, clock=clock).median / size
            except RuntimeError as error:  # no batching rule for some operation
                print(f"plain pass batched={batched} refused: {str(error).splitlines()[0]}")
                break
            if best is None or cost < best[0]:
                best = (cost, f"{'is_grads_batched' if batched else 'T backward calls'} at batch {size}", run, size)
    return best


def check_agreement(method: str, steps: int, prompt: Tensor, generated: Tensor, arch: dict) -> tuple[float, float]:
    """Largest differences in float64: ours vs the per-token loop, ours' prompt columns vs Captum."""
    model = gpt2(torch.float64, **arch)
    options = method_options(method, model, prompt, generated, steps)
    matrix = ours(model, prompt, generated, method, options)
    loop = per_token_loop(model, prompt, generated, method, options)
    theirs = captum(model, prompt, generated, method, steps)
    torch.testing.assert_close(matrix, loop, rtol=1e-5, atol=1e-5)
    return float((matrix - loop).abs().max()), float((matrix[:, : prompt.shape[1]] - theirs).abs().max())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 generated tokens, 4 IG steps, one round")
    parser.add_argument("--prompt", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--vocabulary", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: the model is small)")
    parser.add_argument("--methods", default="gradient_x_input,integrated_gradients")
    parser.add_argument("--clock", choices=("cpu", "wall"), default=None,
                        help="cpu: CPU seconds of this process (default with one thread), wall: wall-clock")
    args = parser.parse_args(argv)
    clock = args.clock or ("cpu" if args.threads == 1 else "wall")
    if args.quick:
        args.tokens, args.steps, args.repeats = 8, 4, 1
    torch.set_num_threads(args.threads)
    arch = {"layers": args.layers, "width": args.width, "vocabulary": args.vocabulary}
    generator = torch.Generator().manual_seed(0)
    prompt = torch.randint(1, args.vocabulary, (1, args.prompt), generator=generator)
    generated = torch.randint(1, args.vocabulary, (1, args.tokens), generator=generator)
    sequence = torch.cat([prompt, generated], dim=1)
    model = gpt2(torch.float32, **arch)
    print(f"{machine()}; load {load_average()}; {clock} clock")
    print(f"random GPT-2: {args.layers} layers, width {args.width}, vocabulary {args.vocabulary}; prompt "
          f"{args.prompt}, {args.tokens} generated tokens, float32")
    rows = []
    for method in args.methods.split(","):
        steps = 1 if method == "gradient_x_input" else args.steps
        to_loop, to_captum = check_agreement(method, args.steps, prompt, generated, arch)
        options = method_options(method, model, prompt, generated, args.steps)
        per_point, how, plain, size = best_plain_cost(model, sequence, generated, args.prompt,
                                                      (1, 2, 4, 8, 16) if steps > 1 else (1,), clock)
        for _ in range(WARMUPS):  # the chunk-size ladder is measured over the first calls
            ours(model, prompt, generated, method, options)
        times = time_interleaved({
            "ours": lambda: ours(model, prompt, generated, method, options),  # noqa: B023
            "loop": lambda: per_token_loop(model, prompt, generated, method, options),  # noqa: B023
            "captum": lambda: captum(model, prompt, generated, method, args.steps),  # noqa: B023
            "plain": plain,
        }, repeats=args.repeats, budget=120.0, clock=clock)
        ideal = steps * times["plain"].median / size
        ours_time = times["ours"].median
        rows.append([method, f"{steps}", seconds(ours_time), seconds(ideal), f"{ours_time / ideal:.2f}",
                     seconds(times["loop"].median), seconds(times["captum"].median),
                     f"{times['captum'].median / ours_time:.1f}x", f"{to_loop:.1e}", f"{to_captum:.1e}", how])
        print(f"{method}: plain pass {how}, {per_point * 1e3:.2f} ms/point when measured", flush=True)
    print(markdown_table(["method", "points", "ours", "ideal", "ours/ideal", "per-token loop", "captum",
                          "captum/ours", "max |ours-loop|", "max |ours-captum|", "ideal pass"], rows))
    print(f"load average at the end: {load_average()}")


if __name__ == "__main__":
    main()
