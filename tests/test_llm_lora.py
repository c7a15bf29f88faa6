"""TransformerPolicy with LoRA (peft): the reference is the base with the adapter disabled, a snapshot is a second
adapter — neither copies the model — and both read exactly the weights they stand for."""

import gc

import pytest
import torch

pytest.importorskip("peft")

from llm_backend import TransformerPolicy, full_recompute_mixture_sample  # noqa: E402
from llm_backend.policy import tiny_llama  # noqa: E402
from llm_backend.trainer import Trainer  # noqa: E402
from preference_games.algorithms import make  # noqa: E402
from preference_games.samplers import Roles  # noqa: E402
from preference_games.sequences import SequenceOracle, Tokens, sequence_game_by_name  # noqa: E402

GAME = sequence_game_by_name("rps-sequences")
VOCAB, PAD, EOS = 9, 0, 1


def text_policy(seed=0) -> TransformerPolicy:
    model = tiny_llama(VOCAB, pad_id=PAD, eos_id=EOS, seed=seed, dtype=torch.float64)
    return TransformerPolicy(model, 5, eos_id=EOS)


def prompts() -> Tokens:
    return Tokens(torch.tensor([[[2, 3, 4], [5, PAD, PAD]]]), torch.tensor([[3, 1]]))


def responses() -> Tokens:
    return Tokens(torch.tensor([[[3, 4, EOS], [2, 2, 6]]]), torch.tensor([[3, 3]]))


def nudge(policy: TransformerPolicy, seed: int) -> None:
    """Move every trainable (adapter) weight, as training would."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in policy.parameters():
            if p.requires_grad:
                p.add_(0.2 * torch.randn(p.shape, generator=generator, dtype=p.dtype))


def adapter_parameters(policy, name) -> int:
    return sum(p.numel() for key, p in policy.model.named_parameters() if f".{name}." in key)


def test_reference_and_snapshot_read_the_weights_they_stand_for():
    base = text_policy()
    before = base.log_prob(prompts(), responses()).detach()
    policy = base.with_lora(r=4)
    assert torch.equal(policy.log_prob(prompts(), responses()).detach(), before)  # B = 0: the same policy
    trainable = [p for p in policy.parameters() if p.requires_grad]
    assert 0 < sum(p.numel() for p in trainable) < sum(p.numel() for p in policy.parameters()) / 5
    ref = policy.reference()
    nudge(policy, 1)
    moved = policy.log_prob(prompts(), responses()).detach()
    assert not torch.allclose(moved, before)
    assert torch.equal(ref.log_prob(prompts(), responses()), before)  # the base, whatever the adapter holds
    snapshot = policy.snapshot()
    assert torch.equal(snapshot.log_prob(prompts(), responses()), moved)
    nudge(policy, 2)
    assert torch.equal(snapshot.log_prob(prompts(), responses()), moved)  # a copy: training does not move it
    assert not torch.allclose(policy.log_prob(prompts(), responses()).detach(), moved)
    # reading the others left the trained adapter trainable and active
    assert [p.requires_grad for p in policy.parameters() if p.requires_grad] and policy.model.active_adapter == "default"
    assert all(p.requires_grad for p in trainable)


def test_a_snapshot_is_an_adapter_not_a_model_and_goes_with_its_snapshot():
    policy = text_policy().with_lora(r=4)
    total = sum(p.numel() for p in policy.model.parameters())
    snapshot = policy.snapshot()
    name = snapshot.adapter
    added = sum(p.numel() for p in policy.model.parameters()) - total
    assert added == adapter_parameters(policy, "default") == adapter_parameters(policy, name) > 0
    assert added < total / 5
    del snapshot
    gc.collect()
    assert name not in policy.model.peft_config and adapter_parameters(policy, name) == 0


@pytest.mark.parametrize("greedy", [False, True])
def test_mixture_of_the_adapter_and_the_base_with_two_caches_equals_full_recompute(greedy):
    """Both models of the mixture are one peft model read with different adapters; each keeps its own KV cache."""
    policy = text_policy(3).with_lora(r=4)
    nudge(policy, 4)
    ref = policy.reference()
    cached = policy.mixture_sampler(ref, 0.4).sample(prompts(), 3, torch.Generator().manual_seed(5), greedy=greedy)
    full = full_recompute_mixture_sample(policy, ref, 0.4, prompts(), 3, torch.Generator().manual_seed(5),
                                         greedy=greedy)
    assert torch.equal(cached.ids, full.ids) and torch.equal(cached.lengths, full.lengths)


@pytest.mark.parametrize("name", ["inpo", "bpo", "ipo-md"])
def test_trainer_with_lora_trains_only_the_adapter(name):
    policy = TransformerPolicy.for_game(GAME, seed=0, dtype=torch.float64, init_scale=0.1).with_lora(r=4)
    frozen = {key: p.detach().clone() for key, p in policy.model.named_parameters() if not p.requires_grad}
    oracle = SequenceOracle(GAME)
    algorithm = make(name, **{"inpo": {"inner_steps": 2}, "bpo": {"annotations": 2}, "ipo-md": {}}[name])
    run = Trainer(algorithm, policy, oracle, oracle, steps=4, game=GAME, batch=8, eval_batch=8, eval_every=2,
                  lr=1e-2).train()
    assert run.final_duality_gap != run.initial_duality_gap
    for key, p in policy.model.named_parameters():
        if key in frozen:
            assert torch.equal(p, frozen[key]), key  # the base never moves
    assert Roles(policy, policy.reference()).ref.adapter == "base"
