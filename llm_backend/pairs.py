"""Pair construction beyond two samples per prompt: best/worst of K by tournament (INPO) and SPPO's K-sample
win-rate label. Both return :class:`~preference_games.samplers.Pairs`, the shared training step's input.

* **Two samples per prompt** is :meth:`preference_games.samplers.PairSampler.sample` itself, with an
  :class:`~llm_backend.oracles.Environment` as its oracle: one response from each of the sampler's two sources.
* :func:`tournament_pairs`: K responses per prompt, the best and the worst found by a knockout tournament
  (INPO, Zhang et al. 2024, §4.1), kept only when the best strictly beats the worst; 11 comparisons for K = 8.
* :func:`win_rate_pairs`: one response y and K opponents from π_t, labelled by the estimate
  (1/K)·Σ_k p(y ≻ y_k) of p(y ≻ π_t) that SPPO's update π_{t+1}(y) ∝ π_t(y)·exp(p(y ≻ π_t)/η) needs (survey eq. 60,
  whose β is our ``eta``).

Responses are :class:`~preference_games.sequences.Tokens` with one configuration (C = 1, a network); every round of
comparisons is one batched ``env.prob`` call across all prompts.

>>> import torch
>>> from preference_games.samplers import PairSampler, Roles
>>> from preference_games.sequences import AutoregressivePolicy, SequenceOracle, sequence_game_by_name
>>> from llm_backend.oracles import Environment, GameOracle
>>> from llm_backend.text import TextCodec, game_tokenizer
>>> game = sequence_game_by_name("bt-sequences")
>>> env = Environment(SequenceOracle(game), GameOracle(game, TextCodec(game_tokenizer(game))))
>>> policy = AutoregressivePolicy.for_game(game)
>>> pairs = tournament_pairs(PairSampler("policy"), Roles(policy, policy.snapshot()), env, 16, 8,
...                          torch.Generator().manual_seed(0))
>>> env.calls, bool((env.prob(pairs.x, pairs.y, pairs.y2) > 0.5).all())        # 11 comparisons per prompt
(176, True)
"""

from __future__ import annotations

import torch

from preference_games.samplers import Pairs, PairSampler, Roles
from preference_games.sequences import Tokens, _positive_int

TOURNAMENT_LABELS = ("hard", "soft")


def _take(batch: Tokens, index: torch.Tensor) -> Tokens:
    """The sequences at ``index`` long [n] along the batch axis: Tokens [C, B, L] → [C, n, L]."""
    if not isinstance(batch, Tokens):
        raise ValueError(f"pair construction picks responses out of token batches; got {type(batch).__name__}")
    index = index.to(batch.ids.device)
    return Tokens(batch.ids[:, index], batch.lengths[:, index])


def _prob(env, x: Tokens, a: Tokens, b: Tokens) -> torch.Tensor:
    """``env.prob`` for one configuration: float64 [n] on the CPU."""
    p = env.prob(x, a, b)  # [C, n]
    if p.shape[0] != 1:
        raise ValueError(f"tournaments and win rates need one configuration (C = 1); the oracle returned "
                         f"{p.shape[0]}")
    return p[0].to(device="cpu", dtype=torch.float64)


def _judge(env, x: Tokens, y: Tokens, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """p(y[first] ≻ y[second] | x) for candidate indices first, second long [B, m] into y's batch, row b judged
    against prompt b: one ``env.prob`` call on B·m triples. float64 [B, m] on the CPU."""
    B, m = first.shape
    prompts = _take(x, torch.arange(B).repeat_interleave(m))  # [1, B·m, Lp]
    return _prob(env, prompts, _take(y, first.reshape(-1)), _take(y, second.reshape(-1))).reshape(B, m)


def _play(env, x, y, first, second):
    """One round of matches first[b, j] vs second[b, j]: (winners, losers), each [B, m]. The first wins unless
    p(first ≻ second) < ½: a tie goes to the first, as in INPO §4.1."""
    p = _judge(env, x, y, first, second)  # [B, m]
    first_wins = p >= 0.5
    return torch.where(first_wins, first, second), torch.where(first_wins, second, first)


def tournament_pairs(sampler: PairSampler, roles: Roles, env, batch: int, k: int, generator: torch.Generator,
                     labels: str = "hard", attempts: int = 10) -> Pairs:
    """Best-of-K against worst-of-K pairs by a knockout tournament (INPO, Zhang et al. 2024, §4.1).

    For each of ``batch`` prompts x ~ ``env``, K responses y_1 … y_K from the sampler's first source (π_t for
    ``PairSampler("policy")``). Round one splits them into K/2 matches; the winners then play a knockout for the
    best (K/2 − 1 more matches) while the losers play one for the worst, the *loser* of each match advancing
    (K/2 − 1 matches); a final match winner vs loser decides whether to keep the pair:

        comparisons per prompt = (K − 1) + (K/2 − 1) + 1 = 3K/2 − 1        (11 for K = 8, as in INPO),

    in log₂K + 1 batched oracle calls (each round's matches, both brackets, for every prompt at once). A match goes
    to the first response unless p(first ≻ second | x) < ½ (INPO: "if the result is a tie, we select the first one
    as the winner"); the pair is kept only if p(best ≻ worst | x) > ½ strictly. With a transitive oracle
    (Bradley–Terry) it finds a highest- and a lowest-reward response; with an intransitive one (a general preference)
    "best" is the bracket's winner, which depends on the order of the draws.

    Returns Pairs(x, y = best, y2 = worst, weight = 1/n, pref) over the n kept prompts ([1, n] each); pref = 1
    (``labels="hard"``: the best is the chosen response) or the final match's p(best ≻ worst | x)
    (``labels="soft"``). If no pair survives (every final a tie, e.g. an oracle that always says ½), a fresh batch
    is drawn, up to ``attempts`` batches in all; then a ValueError. ``env.calls`` counts every comparison made.
    K must be a power of 2, at least 2 (the bracket has no byes).
    """
    k = _positive_int("k", k)
    if k < 2 or k & (k - 1):
        raise ValueError(f"a knockout tournament needs k a power of 2, at least 2; got {k}")
    batch, attempts = _positive_int("batch", batch), _positive_int("attempts", attempts)
    if labels not in TOURNAMENT_LABELS:
        raise ValueError(f"labels must be one of {TOURNAMENT_LABELS}; got {labels!r}")
    source = sampler.source(roles, sampler.first)
    for _ in range(attempts):
        x = env.sample(batch, generator)  # [1, B, Lp]
        y = source.sample(x, k, generator)  # [1, B·K, L]: prompt b's candidates at b·K … b·K + K − 1
        candidates = torch.arange(batch * k).reshape(batch, k)  # [B, K]
        winners, losers = _play(env, x, y, candidates[:, 0::2], candidates[:, 1::2])  # [B, K/2] each
        while winners.shape[1] > 1:  # both brackets in one call: winners' matches, then losers' matches
            half = winners.shape[1] // 2
            first = torch.cat([winners[:, 0::2], losers[:, 0::2]], 1)  # [B, 2·half]
            second = torch.cat([winners[:, 1::2], losers[:, 1::2]], 1)
            won, lost = _play(env, x, y, first, second)
            winners, losers = won[:, :half], lost[:, half:]  # the losers' bracket advances its losers
        p = _judge(env, x, y, winners, losers)[:, 0]  # [B]: p(best ≻ worst | x)
        kept = torch.nonzero(p > 0.5)[:, 0]  # [n]
        if len(kept):
            break
    else:
        raise ValueError(f"no prompt's best of {k} strictly beat its worst in {attempts} batches of {batch}: the "
                         f"oracle called every final a tie")
    policy = roles.policy
    n = len(kept)
    weight = torch.full((1, n), 1.0 / n, dtype=policy.dtype, device=policy.device)  # [1, n]
    pref = torch.ones_like(weight) if labels == "hard" else p[kept][None].to(weight)
    return Pairs(_take(x, kept), _take(y, winners[kept, 0]), _take(y, losers[kept, 0]), weight, pref)


def win_rate_pairs(sampler: PairSampler, roles: Roles, env, batch: int, k: int,
                   generator: torch.Generator) -> Pairs:
    """Pairs labelled by SPPO's K-sample estimate of the win rate p(y ≻ π_t | x) (survey eq. 60).

    For each of ``batch`` prompts x ~ ``env``: y from the sampler's first source and y_1 … y_K from its second
    (π_t for ``PairSampler("policy")``), then

        pref(x, y) = (1/K)·Σ_k p(y ≻ y_k | x),

    an unbiased estimate of p(y ≻ π_t | x) = E_{y'~π_t} p(y ≻ y' | x) with variance at most 1/(4K); all B·K
    comparisons in one batched oracle call. Returns Pairs(x, y, y2 = y_1, weight = 1/B, pref) ([1, B] each): y2 is
    the first opponent, there for losses that read a second response; the label is the estimate against π_t, not
    p(y ≻ y_1).
    """
    batch, k = _positive_int("batch", batch), _positive_int("k", k)
    first, second = sampler.sources(roles)
    x = env.sample(batch, generator)  # [1, B, Lp]
    y = first.sample(x, 1, generator)  # [1, B, L]
    opponents = second.sample(x, k, generator)  # [1, B·K, L]: prompt b's at b·K … b·K + K − 1
    p = _prob(env, x.repeat_interleave(k), y.repeat_interleave(k), opponents)  # [B·K]: p(y_b ≻ y_{b,j} | x_b)
    policy = roles.policy
    pref = p.reshape(batch, k).mean(-1)[None].to(dtype=policy.dtype, device=policy.device)  # [1, B]
    weight = torch.full_like(pref, 1.0 / batch)
    return Pairs(x, y, _take(opponents, torch.arange(batch) * k), weight, pref)
