"""TransformerPolicy's two cached decoding steps: the lean one written out for a Llama (``_lean_step``) and the
model's own ``forward`` (``_hf_step``, every other architecture). Both must give teacher forcing's next-token
log-probs, and so each other's, on padded and unpadded prompts; sampling through either must equal full
recomputation token for token."""

import pytest
import torch

transformers = pytest.importorskip("transformers")

from llm_backend import TransformerPolicy  # noqa: E402
from llm_backend.policy import tiny_llama  # noqa: E402
from preference_games.sequences import Tokens, full_recompute_sample  # noqa: E402

VOCAB, PAD, EOS = 7, 0, 1


def llama(seed=0, length=6) -> TransformerPolicy:
    model = tiny_llama(VOCAB, pad_id=PAD, eos_id=EOS, seed=seed, dtype=torch.float64)
    return TransformerPolicy(model, length, eos_id=EOS)


def mistral(seed=0, length=6) -> TransformerPolicy:
    """A tiny Mistral (sliding-window attention, its own forward): no lean step."""
    config = transformers.MistralConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                                        pad_token_id=PAD, eos_token_id=EOS, attn_implementation="eager")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = transformers.MistralForCausalLM(config).to(torch.float64)
    return TransformerPolicy(model, length, eos_id=EOS)


def ragged() -> Tokens:
    """Right-padded prompts of lengths 3, 1 and 2: Tokens [1, 3, 3]."""
    return Tokens(torch.tensor([[[2, 3, 4], [5, PAD, PAD], [6, 2, PAD]]]), torch.tensor([[3, 1, 2]]))


def even() -> Tokens:
    """Prompts of one length (no padding, so no attention mask in the steps): Tokens [1, 3, 2]."""
    return Tokens(torch.tensor([[[2, 3], [5, 4], [6, 2]]]), torch.full((1, 3), 2))


RESPONSES = Tokens(torch.tensor([[[3, 4, 5, 6, 2], [2, 2, 3, 4, 5], [6, 5, 4, 3, 2]]]), torch.full((1, 3), 5))


def test_only_a_llama_takes_the_lean_step():
    assert llama()._lean and not mistral()._lean


@pytest.mark.parametrize("prompts", [ragged, even])
@pytest.mark.parametrize("lean", [True, False])
def test_each_cached_step_equals_teacher_forcing(prompts, lean):
    policy = llama(seed=3)
    policy._lean = lean  # the Llama through the model's own forward too: the path every other architecture takes
    x = prompts()
    forced = policy.token_log_probs(x, RESPONSES)  # [3, 5, V]
    state = policy._start(x)
    for t in range(RESPONSES.shape[-1]):
        assert torch.allclose(policy._next(state), forced[:, t], atol=1e-12, rtol=0), t
        state = policy._advance(state, RESPONSES.ids[0, :, t])


@pytest.mark.parametrize("prompts", [ragged, even])
@pytest.mark.parametrize("attention, tolerance", [("eager", 1e-13), ("sdpa", 1e-7)])
def test_the_lean_step_equals_the_models_forward_step(prompts, attention, tolerance):
    """Side by side from the same prompt pass, under each attention implementation the lean step stands in for. It
    computes softmax(q·Kᵀ·s + mask)·V as eager attention does, to rounding; PyTorch's sdpa kernel on the CPU is
    itself off that by ~1e-8 in float64 (measured: 1.4e-8 and 1.7e-8 here; see tiny_llama), hence its tolerance."""
    policy = llama(seed=9)
    policy.model.set_attn_implementation(attention)
    lean, own = policy._start(prompts()), policy._start(prompts())
    own.rotary = None  # what _start leaves for an architecture without the lean step: the model's forward
    for t in range(RESPONSES.shape[-1]):
        lean = policy._advance(lean, RESPONSES.ids[0, :, t])
        own = policy._advance(own, RESPONSES.ids[0, :, t])
        assert torch.allclose(policy._next(lean), policy._next(own), atol=tolerance, rtol=0), t


def test_a_mistral_decodes_through_its_forward_like_teacher_forcing():
    policy = mistral(seed=4)
    forced = policy.token_log_probs(ragged(), RESPONSES)
    state = policy._start(ragged())
    for t in range(RESPONSES.shape[-1]):
        assert torch.allclose(policy._next(state), forced[:, t], atol=1e-12, rtol=0), t
        state = policy._advance(state, RESPONSES.ids[0, :, t])


@pytest.mark.parametrize("make", [llama, mistral])
def test_cached_sampling_with_eos_equals_full_recomputation(make):
    policy = make(seed=5)
    cached = policy.sample(ragged(), 4, torch.Generator().manual_seed(6))  # [1, 12, L']
    full = full_recompute_sample(policy, ragged(), 4, torch.Generator().manual_seed(6))
    assert torch.equal(cached.ids, full.ids) and torch.equal(cached.lengths, full.lengths)
    assert len(set(cached.lengths[0].tolist())) > 1  # responses of several lengths: EOS and padding exercised


def test_the_lean_step_reads_a_lora_adapter_and_the_base():
    """With LoRA the step goes through peft's linear maps: the trained adapter and the base (adapter disabled)
    each decode like their own teacher forcing."""
    pytest.importorskip("peft")
    policy = llama(seed=7).with_lora(r=2)
    with torch.no_grad():  # move the adapter off zero, so that adapter and base differ
        for name, weight in policy.model.named_parameters():
            if "lora_B" in name:
                weight.normal_(0.0, 0.5, generator=torch.Generator().manual_seed(8))
    assert policy._lean
    for view in (policy.view(), policy.reference()):
        forced = view.token_log_probs(ragged(), RESPONSES)
        state = view._start(ragged())
        for t in range(RESPONSES.shape[-1]):
            assert torch.allclose(view._next(state), forced[:, t], atol=1e-12, rtol=0), t
            state = view._advance(state, RESPONSES.ids[0, :, t])
    assert not torch.allclose(policy.view().token_log_probs(ragged(), RESPONSES),
                              policy.reference().token_log_probs(ragged(), RESPONSES))
