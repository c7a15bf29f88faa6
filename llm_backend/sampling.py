"""Sampling from the token-level geometric mixture of two transformers, each with its own KV cache.

IPO-MD and Nash-MD-PG sample from π^{1−β} other^β (``Policy.mixture_sampler``). For an autoregressive model that is,
as in the paper, the per-token mixture

    q(y_t | x, y_<t) = softmax((1 − β)·log π(· | x, y_<t) + β·log other(· | x, y_<t))[y_t],
    log q(y | x) = Σ_t log q(y_t | x, y_<t),

equal to the sequence-level mixture π(y|x)^{1−β} other(y|x)^β / Z(x) for one-token responses and at β ∈ {0, 1}, and
different in general (``sequences.mixture_tv`` measures by how much).

**One cache per model.** Each model's cache holds *its own* keys and values of the prefix. A widely used
implementation decodes both models through one shared cache, so every layer of each model attends to keys and values
the other model wrote — a distribution that is neither model's nor their mixture (and silently wrong, since shapes
match when the architectures do). :class:`TransformerMixture` keeps two caches, and the tests compare it token for
token with :func:`full_recompute_mixture_sample`, which recomputes the whole prefix with both models at every step.

>>> from preference_games.sequences import sequence_game_by_name
>>> from llm_backend import TransformerPolicy
>>> game = sequence_game_by_name("rps-sequences")
>>> policy, ref = TransformerPolicy.for_game(game, seed=0), TransformerPolicy.for_game(game, seed=1).snapshot()
>>> mixture = policy.mixture_sampler(ref, 0.5)
>>> prompts = game.prompt_tokens(torch.tensor([[0]]))
>>> mixture.sample(prompts, 4, torch.Generator().manual_seed(0)).shape     # Tokens [1, 4, 3]
(1, 4, 3)
"""

from __future__ import annotations

import torch

from preference_games.sequences import SequenceGame, TokenMixture, Tokens, full_recompute_sample

from .policy import TransformerPolicy


class TransformerMixture(TokenMixture):
    """The token-level mixture q ∝ π^{1−β} other^β of two :class:`TransformerPolicy` models over the same response
    vocabulary and length (module docstring), a sampling distribution (no gradient).

    The decoding — each model with its own KV cache, next-token log-probabilities mixed and renormalised — is
    :class:`~preference_games.sequences.TokenMixture`'s, shared with the GRU; this class adds the transformer's input
    checks (response tokens, context length) before sampling, scoring or enumerating.
    """

    def check(self, prompts: Tokens, responses: Tokens | None = None) -> None:
        """Both models' input checks (:meth:`TransformerPolicy.check`)."""
        self.policy.check(prompts, responses)
        self.other.check(prompts, responses)

    def log_prob(self, prompts: Tokens, responses: Tokens) -> torch.Tensor:
        """log q(y | x) = Σ_t log q(y_t | x, y_<t): [C, B], detached."""
        self.check(prompts, responses)
        return super().log_prob(prompts, responses)

    def sample(self, prompts: Tokens, n: int = 1, generator: torch.Generator | None = None, *,
               greedy: bool = False) -> Tokens:
        """n responses per prompt from q, prompt b's at b·n … b·n + n − 1: Tokens [C, B·n, L]."""
        self.check(prompts)
        return super().sample(prompts, n, generator, greedy=greedy)

    def enumerate(self, game: SequenceGame) -> torch.Tensor:
        """log q(y | x) for every prompt and response string: float64 [1, X, Y] (sums to 1 over Y)."""
        self.policy.enumerate(game)  # its checks of the game against the models
        return super().enumerate(game)


@torch.no_grad()
def full_recompute_mixture_sample(policy: TransformerPolicy, other: TransformerPolicy, beta: float, prompts: Tokens,
                                  n: int = 1, generator: torch.Generator | None = None, *,
                                  greedy: bool = False) -> Tokens:
    """What ``policy.mixture_sampler(other, beta).sample`` computes, without any cache: at every step both models
    rerun over the prompt and the whole prefix. O(L²) work; the reference the two-cache decoder is tested against.
    Draws from ``generator`` in the same order, so equal seeds give equal tokens."""
    mixture = TransformerMixture(policy, other, beta)
    mixture.check(prompts)
    return full_recompute_sample(mixture, prompts, n, generator, greedy=greedy)
