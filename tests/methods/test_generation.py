"""explain_generation on a small random GPT-2: equal to the per-token loop, with a readable output= and clear
errors for token ids outside the vocabulary."""

import pytest
import torch

import taylorlens

transformers = pytest.importorskip("transformers")
VOCAB = 30


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These models are tiny: one thread is several times faster than many on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def gpt2():
    config = transformers.GPT2Config(vocab_size=VOCAB, n_positions=32, n_embd=16, n_layer=2, n_head=2,
                                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    torch.manual_seed(0)
    return transformers.GPT2LMHeadModel(config).double().eval()


def ids(batch, length, seed):
    return torch.randint(0, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


def test_log_probability_rows_equal_the_per_token_loop_through_attribute(gpt2):
    prompt, generated = ids(2, 4, 1), ids(2, 6, 2)
    log_probs = lambda out: out.logits.log_softmax(-1)  # noqa: E731
    matrix = taylorlens.explain_generation(gpt2, prompt, generated, "gradient_x_input", output=log_probs)
    sequence = torch.cat([prompt, generated], 1)
    for t in range(6):
        row = taylorlens.attribute(gpt2, sequence, generated[:, t], "gradient_x_input", layer="transformer.wte",
                                   output=lambda out, t=t: out.logits[:, 3 + t].log_softmax(-1)).sum(-1)
        torch.testing.assert_close(matrix[:, t], row, rtol=1e-5, atol=1e-7)
    assert bool((matrix[:, 0, 4:] == 0).all())  # the first generated token is explained by the prompt only


def test_generated_ids_outside_the_vocabulary_are_refused_naming_its_size(gpt2):
    with pytest.raises(taylorlens.AttributionInputError, match=rf"\[0, {VOCAB}\)"):
        taylorlens.explain_generation(gpt2, ids(1, 3, 0), torch.tensor([[1, VOCAB]]), "gradient")
    with pytest.raises(taylorlens.AttributionInputError, match=">= 0"):
        taylorlens.explain_generation(gpt2, ids(1, 3, 0), torch.tensor([[1, -2]]), "gradient")


def test_the_head_runs_only_at_the_predicting_positions_and_values_do_not_change(gpt2):
    # a Hugging Face causal LM takes logits_to_keep: the head sees T + 1 rows, not the whole sequence
    prompt, generated = ids(1, 5, 3), ids(1, 4, 4)
    rows = []
    handle = gpt2.lm_head.register_forward_pre_hook(lambda module, args: rows.append(args[0].shape[1]))
    try:
        kept = taylorlens.explain_generation(gpt2, prompt, generated, "integrated_gradients", steps=4)
    finally:
        handle.remove()
    assert rows and set(rows) == {4 + 1}
    everything = taylorlens.explain_generation(gpt2, prompt, generated, "integrated_gradients", steps=4,
                                               forward_kwargs={"logits_to_keep": 0})  # 0: every position
    torch.testing.assert_close(kept, everything, rtol=1e-10, atol=1e-12)
