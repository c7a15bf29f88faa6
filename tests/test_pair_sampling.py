"""PairSampler.sample: when both sides name one distribution, y and y2 come from one ``sample(x, 2)`` call (prompt
b's two draws at 2b and 2b + 1); otherwise from one call per side. Checked on a table and on a sequence model; and
the token draw every sequence model's ``sample`` makes."""

import torch

from preference_games.games import rock_paper_scissors
from preference_games.models import TabularLogits
from preference_games.samplers import PairSampler, Roles, TabularOracle
from preference_games.sequences import AutoregressivePolicy, SequenceOracle, Tokens, _pick, sequence_game_by_name


def seeded(seed):
    return torch.Generator().manual_seed(seed)


def test_one_distribution_is_sampled_once_for_both_sides_of_a_table():
    oracle = TabularOracle(rock_paper_scissors(), configs=2)
    policy = TabularLogits.uniform(configs=2, prompts=1, actions=3)
    pairs = PairSampler("policy").sample(Roles(policy, policy.snapshot()), oracle, 5, seeded(0), "soft")
    generator = seeded(0)
    x = oracle.sample(5, generator)  # [2, 5]
    both = policy.snapshot().sample(x, 2, generator)  # [2, 10]
    assert torch.equal(pairs.x, x) and torch.equal(pairs.y, both[:, 0::2]) and torch.equal(pairs.y2, both[:, 1::2])


def test_one_distribution_is_sampled_once_for_both_sides_of_a_sequence_model():
    game = sequence_game_by_name("judge-sequences")
    oracle, policy = SequenceOracle(game), AutoregressivePolicy.for_game(game, seed=1, dtype=torch.float64)
    pairs = PairSampler("policy").sample(Roles(policy, policy.snapshot()), oracle, 6, seeded(2), "bernoulli")
    generator = seeded(2)
    x = oracle.sample(6, generator)
    both = policy.sample(x, 2, generator)  # Tokens [1, 12, 3]
    assert isinstance(pairs.y, Tokens) and pairs.y.shape == pairs.y2.shape == (1, 6, 3)
    assert torch.equal(pairs.y.ids, both.ids[:, 0::2]) and torch.equal(pairs.y2.ids, both.ids[:, 1::2])
    assert torch.equal(pairs.y2.lengths, both.lengths[:, 1::2])
    expected = oracle.prob(x, pairs.y, pairs.y2)
    assert torch.equal(pairs.pref, torch.bernoulli(expected, generator=generator))  # labels drawn after the pair


def test_two_distributions_are_sampled_one_call_each():
    game = sequence_game_by_name("judge-sequences")
    oracle = SequenceOracle(game)
    policy = AutoregressivePolicy.for_game(game, seed=1, dtype=torch.float64)
    ref = AutoregressivePolicy.for_game(game, seed=2, dtype=torch.float64).snapshot()
    pairs = PairSampler("policy", "ref").sample(Roles(policy, ref), oracle, 4, seeded(3), "soft")
    generator = seeded(3)
    x = oracle.sample(4, generator)
    assert torch.equal(pairs.y.ids, policy.sample(x, 1, generator).ids)
    assert torch.equal(pairs.y2.ids, ref.sample(x, 1, generator).ids)


def test_tokens_index_along_configurations_and_batch():
    tokens = Tokens(torch.arange(12).reshape(1, 4, 3), torch.tensor([[3, 2, 1, 3]]))
    odd = tokens[:, 1::2]
    assert odd.shape == (1, 2, 3) and odd.ids[0, :, 0].tolist() == [3, 9] and odd.lengths.tolist() == [[2, 3]]


def test_a_token_draw_follows_its_distribution_and_never_picks_a_token_of_probability_zero():
    probs = torch.tensor([0.5, 0.0, 0.2, 0.3, 0.0], dtype=torch.float64)
    tokens = _pick(probs.log().expand(20000, -1), seeded(4), greedy=False)  # [20000]
    frequencies = torch.bincount(tokens, minlength=5).double() / 20000
    assert frequencies[1] == 0 and frequencies[4] == 0
    assert torch.allclose(frequencies, probs, atol=0.015)  # > 4 standard errors: √(0.25 / 20000) = 0.0035
