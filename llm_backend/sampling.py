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

from preference_games.sequences import SequenceGame, Tokens, _TokenModel, full_recompute_sample

from .policy import TransformerPolicy


class TransformerMixture(_TokenModel):
    """The token-level mixture q ∝ π^{1−β} other^β of two :class:`TransformerPolicy` models over the same response
    vocabulary and length (module docstring), a sampling distribution (no gradient).

    ``sample`` decodes both models step by step, each with its own KV cache, and mixes their next-token
    log-probabilities; ``log_prob`` [C, B] is Σ_t log q(y_t | x, y_<t) from one teacher-forced pass of each model;
    ``enumerate(game)`` float64 [1, X, Y] scores every string. The models are read as they are when it samples —
    snapshot them first if they change in between.
    """

    def __init__(self, policy: TransformerPolicy, other: TransformerPolicy, beta):
        if torch.is_tensor(beta) and beta.numel() != 1:
            raise ValueError(f"a transformer mixture has one configuration; beta must be one number, got shape "
                             f"{tuple(beta.shape)}")
        beta = float(beta)
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta must lie in [0, 1]; got {beta}")
        if (policy.response_vocab, policy.length) != (other.response_vocab, other.length):
            raise ValueError(f"the two models generate {policy.length} and {other.length} tokens over "
                             f"{policy.response_vocab} and {other.response_vocab} response tokens")
        self.policy, self.other, self.beta, self.length = policy, other, beta, policy.length
        self.response_vocab = policy.response_vocab

    @property
    def dtype(self) -> torch.dtype:
        return self.policy.dtype

    @property
    def device(self) -> torch.device:
        return self.policy.device

    def check(self, prompts: Tokens, responses: Tokens | None = None) -> None:
        """Both models' input checks (:meth:`TransformerPolicy.check`)."""
        self.policy.check(prompts, responses)
        self.other.check(prompts, responses)

    def _mix(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """log_softmax((1 − β)·a + β·b) over the last axis: renormalised per token."""
        return torch.log_softmax((1 - self.beta) * a + self.beta * b.to(a.dtype), -1)

    @torch.no_grad()
    def token_log_probs(self, prompts: Tokens, responses: Tokens) -> torch.Tensor:
        return self._mix(self.policy.token_log_probs(prompts, responses),
                         self.other.token_log_probs(prompts, responses))  # [N, L, V]

    def _start(self, prompts: Tokens):
        return self.policy._start(prompts), self.other._start(prompts)  # two caches, never one

    def _next(self, state) -> torch.Tensor:
        return self._mix(self.policy._next(state[0]), self.other._next(state[1]))  # [N, V]

    def _advance(self, state, tokens: torch.Tensor):
        return self.policy._advance(state[0], tokens), self.other._advance(state[1], tokens)

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

    def snapshot(self) -> "TransformerMixture":
        return TransformerMixture(self.policy.snapshot(), self.other.snapshot(), self.beta)


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
