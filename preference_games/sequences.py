"""Preference games over token strings, a small autoregressive policy, and the exact bridge back to the tabular engine.

A :class:`SequenceGame` has a few prompts and, as responses, *every* string of ``length`` tokens over ``vocab``
response tokens: Y = V^L responses, small enough that one preference matrix per prompt fits in memory. It is a
tabular :class:`~preference_games.games.PreferenceGame` (``game.tabular``, X prompts × Y responses) whose actions
happen to be strings, so a policy that generates strings token by token — :class:`AutoregressivePolicy`, a GRU —
can be trained by the unchanged algorithms (through :mod:`preference_games.protocols`) and then *enumerated*:
log π(y | x) for every (x, y) is one batched forward pass, and the exact tools of the engine (duality gap, distance
to the regularised equilibrium) apply to it. That is the bridge from sampled training on sequences to exact answers.

**Token layout** (one vocabulary shared by prompts and responses; the policy embeds all of it, predicts only the
first V):

==========================  ==========================================================
ids 0 … V − 1               response tokens (the policy's head has exactly these V logits)
id V                        PAD (fills ``Tokens.ids`` past a sequence's length)
id V + 1                    BOS (first token of every prompt)
ids V + 2 … V + 1 + X       one token per prompt: prompt x is the sequence [BOS, V + 2 + x]
==========================  ==========================================================

so the policy's vocabulary has V + 2 + X entries (``SequenceGame.vocab_size``). Response y ∈ {0, …, Y − 1} is the
string whose base-V digits, most significant first, are its tokens (lexicographic order: index ↔ string).

**Shapes.** :class:`Tokens` holds ids [C, B, L] and lengths [C, B]; prompts are [C, B, 2], responses [C, B, L].
C = 1 for a network (the protocol's configuration axis). ``log_prob`` and ``prob`` return [C, B].

>>> game = sequence_game_by_name("rps-sequences")
>>> game.num_prompts, game.num_responses, game.vocab_size
(1, 27, 6)
>>> policy = AutoregressivePolicy.for_game(game, dtype=torch.float64)
>>> table = policy.enumerate(game)                          # log π(y | x) for all 27 strings: [1, X, Y]
>>> torch.allclose(table.exp().sum(-1), torch.ones(1, 1, dtype=torch.float64), atol=1e-12)
True
>>> oracle = SequenceOracle(game)
>>> prompts = oracle.sample(4, torch.Generator().manual_seed(0))              # [1, 4, 2]
>>> y = policy.sample(prompts, 1, torch.Generator().manual_seed(1))           # [1, 4, 3]
>>> oracle.prob(prompts, y, y).tolist()                    # a string against itself: ½
[[0.5, 0.5, 0.5, 0.5]]
>>> exact_duality_gap(policy, game, policy.snapshot(), tau=0.1) > 0   # exact, on all 27 strings
True
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from . import equilibria, games
from .games import PreferenceGame
from .policies import TabularPolicy, _kl, logsumexp

#: Largest X·Y² (entries of the stacked preference matrices) a sequence game may hold: 2²² float64 entries is 32 MiB
#: per matrix (the game keeps P and its skew part S), and the exact solvers factorise Y × Y blocks of it.
MAX_MATRIX_ENTRIES = 2**22


# ======================================================================================================== tokens
@dataclass(frozen=True)
class Tokens:
    """A batch of token sequences: ``ids`` long [C, B, L] (PAD past each length), ``lengths`` long [C, B].

    Prompts and responses alike; with fixed-length responses every length is L.
    """

    ids: torch.Tensor
    lengths: torch.Tensor

    def __post_init__(self):
        if self.ids.dim() != 3 or tuple(self.lengths.shape) != tuple(self.ids.shape[:2]):
            raise ValueError(f"Tokens needs ids [C, B, L] and lengths [C, B]; got {tuple(self.ids.shape)} and "
                             f"{tuple(self.lengths.shape)}")

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, B, L)."""
        return tuple(self.ids.shape)

    def __getitem__(self, index) -> "Tokens":
        """The sequences at ``index`` along [C, B] (e.g. ``tokens[:, 0::2]``), each kept whole: Tokens [C', B', L]."""
        return Tokens(self.ids[index], self.lengths[index])

    __iter__ = None  # indexing is along [C, B], not a sequence protocol: iterating a batch is an error, not a loop

    def repeat_interleave(self, n: int) -> "Tokens":
        """Each sequence n times in a row along the batch: [C, B, L] → [C, B·n, L] (the protocol's sample layout)."""
        return Tokens(self.ids.repeat_interleave(n, dim=1), self.lengths.repeat_interleave(n, dim=1))

    def expand(self, configs: int) -> "Tokens":
        """A [1, B, L] batch seen as [configs, B, L] (no copy)."""
        C, B, L = self.shape
        if C == configs:
            return self
        if C != 1:
            raise ValueError(f"cannot broadcast {C} configurations of tokens to {configs}")
        return Tokens(self.ids.expand(configs, B, L), self.lengths.expand(configs, B))


def _fixed_length(ids: torch.Tensor) -> Tokens:
    """Tokens [C, B, L] all of length L."""
    C, B, L = ids.shape
    return Tokens(ids, torch.full((C, B), L, dtype=torch.long, device=ids.device))


# ================================================================================================= sequence games
def _positive_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or int(value) != value or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return int(value)


def _num_responses(vocab, length, prompts) -> int:
    """Y = V^L after checking the sizes and that X·Y² stays within :data:`MAX_MATRIX_ENTRIES`."""
    vocab, length = _positive_int("vocab", vocab), _positive_int("length", length)
    prompts = _positive_int("prompts", prompts)
    Y = vocab**length
    if prompts * Y * Y > MAX_MATRIX_ENTRIES:
        mib = prompts * Y * Y * 8 / 2**20
        raise ValueError(f"{prompts} prompt(s) × {vocab}^{length} = {Y} responses need {mib:,.0f} MiB per "
                         f"preference matrix (limit {MAX_MATRIX_ENTRIES * 8 / 2**20:.0f} MiB); use a smaller "
                         f"vocabulary or length")
    return Y


def _all_strings(vocab: int, length: int) -> np.ndarray:
    """Every string in lexicographic order: int64 [V^L, L], row y = the base-V digits of y, most significant first."""
    y = np.arange(vocab**length)
    return (y[:, None] // vocab ** np.arange(length - 1, -1, -1)[None, :]) % vocab


class SequenceGame:
    """A preference game whose responses are all token strings of a fixed length (module docstring: layout).

    ``P`` [X, Y, Y] with Y = vocab**length, validated by :class:`~preference_games.games.PreferenceGame` and held
    as ``tabular`` with a uniform reference (the bridge, :func:`tabular_game`, swaps in a policy's). Build one with
    :meth:`lift`, :meth:`random_intransitive`, :meth:`bradley_terry`, :meth:`judge` or :func:`sequence_game_by_name`.
    """

    PROMPT_LENGTH = 2  # [BOS, prompt token]

    def __init__(self, P, vocab: int, length: int, prompt_probs=None, name: str = "sequences"):
        P = np.asarray(P, dtype=np.float64)
        Y = _num_responses(vocab, length, P.shape[0] if P.ndim == 3 else 1)
        if P.shape[-2:] != (Y, Y):
            raise ValueError(f"{vocab}^{length} = {Y} responses need preference matrices [X, {Y}, {Y}]; got "
                             f"{P.shape}")
        self.vocab, self.length = int(vocab), int(length)
        self.tabular = PreferenceGame(P, prompt_probs=prompt_probs, name=name)
        self.name = name

    def __repr__(self) -> str:
        return (f"SequenceGame({self.name!r}, prompts={self.num_prompts}, vocab={self.vocab}, length={self.length}, "
                f"responses={self.num_responses})")

    # ------------------------------------------------------------------------------------------------- layout
    @property
    def num_prompts(self) -> int:
        return self.tabular.num_prompts

    @property
    def num_responses(self) -> int:
        return self.tabular.num_actions

    @property
    def pad_id(self) -> int:
        return self.vocab

    @property
    def bos_id(self) -> int:
        return self.vocab + 1

    @property
    def vocab_size(self) -> int:
        """V + 2 + X: response tokens, PAD, BOS and one token per prompt."""
        return self.vocab + 2 + self.num_prompts

    def prompt_tokens(self, x: torch.Tensor) -> Tokens:
        """Prompt indices long [C, B] (or [B]) → their token sequences [BOS, V + 2 + x], Tokens [C, B, 2]."""
        x = torch.as_tensor(x, dtype=torch.long)
        x = x[None] if x.dim() == 1 else x
        if x.numel() and (x.min() < 0 or x.max() >= self.num_prompts):
            raise ValueError(f"prompt indices must lie in [0, {self.num_prompts}); got {x.min()}..{x.max()}")
        ids = torch.stack([torch.full_like(x, self.bos_id), x + self.vocab + 2], dim=-1)  # [C, B, 2]
        return _fixed_length(ids)

    def prompt_index(self, prompts: Tokens) -> torch.Tensor:
        """The inverse of :meth:`prompt_tokens`: long [C, B]."""
        message = (f"not prompts of this game ([BOS, prompt token] with prompt tokens "
                   f"{self.vocab + 2}..{self.vocab + 1 + self.num_prompts})")
        if prompts.ids.shape[-1] != self.PROMPT_LENGTH:
            raise ValueError(message)
        x = prompts.ids[..., 1] - (self.vocab + 2)  # [C, B]
        if x.numel() and (x.min() < 0 or x.max() >= self.num_prompts):
            raise ValueError(message)
        return x

    def responses(self, device=None) -> Tokens:
        """All Y responses in index order: Tokens [1, Y, L]."""
        ids = torch.as_tensor(_all_strings(self.vocab, self.length), device=device)  # [Y, L]
        return _fixed_length(ids[None])

    def response_index(self, responses: Tokens) -> torch.Tensor:
        """The index of each response string (base-V digits, most significant first): long [C, B]."""
        ids = responses.ids  # [C, B, L]
        if ids.shape[-1] != self.length or bool((responses.lengths != self.length).any()):
            raise ValueError(f"responses of this game have exactly {self.length} tokens")
        if ids.numel() and (ids.min() < 0 or ids.max() >= self.vocab):
            raise ValueError(f"response tokens must lie in [0, {self.vocab}); got {ids.min()}..{ids.max()}")
        place = self.vocab ** torch.arange(self.length - 1, -1, -1, device=ids.device)  # [L]
        return (ids * place).sum(-1)

    # ------------------------------------------------------------------------------------------- constructors
    @classmethod
    def lift(cls, game: PreferenceGame, length: int) -> "SequenceGame":
        """A tabular game on strings: the first token is the action, later tokens are neutral,
        P_seq(y ≻ y' | x) = P(y₁ ≻ y'₁ | x). Keeps the game's prompt distribution; its reference is not lifted
        (the sequence game's is uniform, and the bridge replaces it).

        >>> SequenceGame.lift(games.rock_paper_scissors(), 2).tabular.P[0, 3, 7].item()   # "paper…" vs "scissors…"
        0.0
        """
        V = game.num_actions
        _num_responses(V, length, game.num_prompts)
        first = _all_strings(V, length)[:, 0]  # [Y]: each string's action
        P = game.P[:, first[:, None], first[None, :]]  # [X, Y, Y]
        return cls(P, V, length, game.prompt_probs, name=f"{game.name}-lifted(L={length})")

    @classmethod
    def random_intransitive(cls, vocab: int, length: int, prompts: int = 1, seed: int = 0) -> "SequenceGame":
        """Seeded random games on the strings with no Condorcet winner (:func:`games.random_intransitive` on Y
        actions: P = ½ + S, S antisymmetric with entries uniform in [−½, ½])."""
        Y = _num_responses(vocab, length, prompts)
        if Y < 3:
            raise ValueError(f"an intransitive game needs at least 3 responses; {vocab}^{length} = {Y}")
        P = games.random_intransitive(Y, seed=seed, num_prompts=prompts).P
        return cls(P, vocab, length, name=f"random-intransitive(V={vocab}, L={length}, seed={seed})")

    @classmethod
    def bradley_terry(cls, reward, vocab: int, length: int, prompts: int = 1) -> "SequenceGame":
        """p(y ≻ y' | x) = σ(r(x, y) − r(x, y')) for a per-string reward.

        ``reward``: an array [Y] (every prompt) or [X, Y], or a function ``reward(x, strings)`` of a prompt index
        and all strings int [Y, L] (index order) returning [Y].

        >>> round(SequenceGame.bradley_terry(lambda x, s: s.sum(-1), 2, 2).tabular.P[0, 3, 0].item(), 4)   # σ(2 − 0)
        0.8808
        """
        Y = _num_responses(vocab, length, prompts)
        if callable(reward):
            strings = _all_strings(vocab, length)
            reward = [np.asarray(reward(x, strings), dtype=np.float64) for x in range(prompts)]
        r = np.asarray(reward, dtype=np.float64)
        r = np.broadcast_to(r, (prompts, Y)) if r.shape == (Y,) else r
        if r.shape != (prompts, Y) or not np.all(np.isfinite(r)):
            raise ValueError(f"rewards must be finite with shape ({Y},) or ({prompts}, {Y}); got {r.shape}")
        margin = r[:, :, None] - r[:, None, :]  # [X, Y, Y]
        P = 0.5 * (1.0 + np.tanh(margin / 2))  # σ(margin), exactly constant-sum
        return cls(P, vocab, length, name=f"bradley-terry(V={vocab}, L={length})")

    @classmethod
    def judge(cls, vocab: int, length: int, prompts: int = 1, seed: int = 0, length_strength: float = 0.8,
              format_strength: float = 0.5) -> "SequenceGame":
        """A rule-based judge with a length cycle. Token 0 is a blank; the content length n(y) counts the other
        tokens. Between two strings of different content lengths the judge prefers, with probability
        ½ + length_strength/2,

        * the one with exactly one more content token ("more detail"), but
        * the *shorter* one when they differ by two or more ("rambling"),

        so lengths 0 ≺ 1 ≺ 2 ≺ 0 form a cycle (no length wins against all). Between equal content lengths it
        prefers, with probability ½ + format_strength/2, the one whose last content token is the prompt's
        favourite closing token (drawn per prompt from 1 … V − 1 with ``seed``); ½ otherwise.
        """
        Y = _num_responses(vocab, length, prompts)
        if vocab < 2 or length < 2:
            raise ValueError(f"the judge needs a blank and a content token (vocab >= 2) and length >= 2 for its "
                             f"length cycle; got vocab={vocab}, length={length}")
        if not (0 < length_strength <= 1 and 0 <= format_strength <= 1):
            raise ValueError(f"strengths must lie in (0, 1] and [0, 1]; got {length_strength}, {format_strength}")
        strings = _all_strings(vocab, length)  # [Y, L]
        content = strings != 0
        n = content.sum(-1)  # [Y] content lengths
        # last content token (0 when there is none): the rightmost non-blank digit
        last = np.where(content.any(-1), strings[np.arange(Y), length - 1 - np.argmax(content[:, ::-1], -1)], 0)
        d = n[:, None] - n[None, :]  # [Y, Y]
        cycle = np.where((d == 1) | (d <= -2), 1.0, np.where((d == -1) | (d >= 2), -1.0, 0.0))  # antisymmetric
        favourite = np.random.default_rng(seed).integers(1, vocab, size=prompts)  # [X]
        closes = (last[None, :] == favourite[:, None]).astype(np.float64)  # [X, Y]
        style = (closes[:, :, None] - closes[:, None, :]) * (d == 0)  # [X, Y, Y], ties of length only
        P = 0.5 + 0.5 * (length_strength * cycle[None] + format_strength * style)
        return cls(P, vocab, length, name=f"judge(V={vocab}, L={length}, seed={seed})")


def _additive_rewards(vocab: int, length: int, prompts: int, seed: int) -> np.ndarray:
    """Seeded per-token rewards r(x, y) = Σ_l w[x, l, y_l], w ~ N(0, 1): [X, Y]."""
    w = np.random.default_rng(seed).normal(size=(prompts, length, vocab))
    strings = _all_strings(vocab, length)  # [Y, L]
    return w[:, np.arange(length)[None, :], strings].sum(-1)


#: name → (description, builder(seed) → SequenceGame); every game has at least 27 responses per prompt.
SEQUENCE_GAMES: dict[str, tuple[str, Callable[[int], SequenceGame]]] = {
    "rps-sequences": (
        "rock-paper-scissors on the first of 3 tokens over 3 (27 responses, 1 prompt; later tokens neutral)",
        lambda seed: SequenceGame.lift(games.rock_paper_scissors(), 3),
    ),
    "random-sequences": (
        "seeded random intransitive game on the 27 strings of 3 tokens over 3 (2 prompts)",
        lambda seed: SequenceGame.random_intransitive(3, 3, prompts=2, seed=seed),
    ),
    "bt-sequences": (
        "Bradley-Terry game with seeded additive per-token rewards on 27 strings of 3 tokens over 3 (2 prompts)",
        lambda seed: SequenceGame.bradley_terry(_additive_rewards(3, 3, 2, seed), 3, 3, prompts=2),
    ),
    "judge-sequences": (
        "rule-based judge: a length cycle (one more content token wins, two more loses) and a seeded favourite "
        "closing token per prompt; 27 strings of 3 tokens over 3 (2 prompts)",
        lambda seed: SequenceGame.judge(3, 3, prompts=2, seed=seed),
    ),
}


def sequence_game_by_name(name: str, seed: int = 0) -> SequenceGame:
    """Build a registered sequence game (see :data:`SEQUENCE_GAMES`)."""
    if name not in SEQUENCE_GAMES:
        raise ValueError(f"unknown sequence game {name!r}; choose one of: {', '.join(SEQUENCE_GAMES)}")
    return SEQUENCE_GAMES[name][1](seed)


# ======================================================================================================== oracle
class SequenceOracle:
    """The preference oracle and prompt source of a :class:`SequenceGame` (protocols ``PreferenceOracle`` and
    ``PromptSource``): p(y ≻ y' | x) read exactly from the game's matrices, prompts drawn from d0."""

    def __init__(self, game: SequenceGame, device=None):
        self.game = game
        self.P = torch.tensor(game.tabular.P, device=device)  # [X, Y, Y] float64 (a copy: the game's is read-only)
        self.prompt_probs = torch.tensor(game.tabular.prompt_probs, device=device)  # [X]

    @property
    def num_prompts(self) -> int:
        return self.game.num_prompts

    @property
    def num_actions(self) -> int:
        """Y, the number of response strings."""
        return self.game.num_responses

    def prob(self, prompts: Tokens, responses: Tokens, responses2: Tokens) -> torch.Tensor:
        """p(y ≻ y2 | x): float64 [C, B] (the three batches broadcast over C)."""
        x, y, y2 = torch.broadcast_tensors(self.game.prompt_index(prompts), self.game.response_index(responses),
                                           self.game.response_index(responses2))  # [C, B] each
        return self.P[x, y, y2]

    def sample(self, batch: int, generator: torch.Generator | None = None) -> Tokens:
        """``batch`` prompts from d0: Tokens [1, batch, 2]."""
        x = torch.multinomial(self.prompt_probs, batch, replacement=True, generator=generator)  # [B]
        return self.game.prompt_tokens(x[None])


# ======================================================================================================= policies
def _flat_pair(prompts: Tokens, responses: Tokens) -> tuple[Tokens, Tokens, int, int]:
    """Prompts and responses broadcast to one [C, B]: (prompts, responses, C, B)."""
    C = max(prompts.shape[0], responses.shape[0])
    prompts, responses = prompts.expand(C), responses.expand(C)
    if prompts.shape[1] != responses.shape[1]:
        raise ValueError(f"prompts and responses must have the same batch; got {prompts.shape[1]} and "
                         f"{responses.shape[1]}")
    return prompts, responses, C, prompts.shape[1]


def _pick(log_probs: torch.Tensor, generator: torch.Generator | None, greedy: bool) -> torch.Tensor:
    """One next token per row of log_probs [N, V]: long [N].

    A draw by the inverse CDF: with F_j = Σ_{i ≤ j} p_i (float64) and u ~ U[0, 1), the token is the first j with
    F_j > u·F_V, which is j with probability p_j / F_V up to u's 2⁻⁵³ grid (dividing by F_V absorbs its rounding
    away from 1). A token of probability 0 has F_j = F_{j−1} and is never the first to exceed; u < 1 keeps
    u·F_V < F_V, so some token always is. One uniform per row: ``torch.multinomial`` cost ~6× as much per call at
    these sizes (measured: 147 against 25 µs for [16, 100]), a sixth of a tiny model's decoding step."""
    if greedy:
        return log_probs.argmax(-1)
    # one seeded stream for a run (a trainer's CPU generator) whatever device the model is on: the draw moves to the
    # generator's device and back, a synchronisation per token on a GPU, but the same tokens everywhere
    device = log_probs.device if generator is None else generator.device
    cdf = log_probs.to(device=device, dtype=torch.float64).exp().cumsum(-1)  # [N, V]
    u = torch.rand(cdf.shape[0], 1, dtype=torch.float64, device=device, generator=generator) * cdf[:, -1:]  # [N, 1]
    return torch.searchsorted(cdf, u, right=True)[:, 0].to(log_probs.device)


class _TokenModel:
    """The protocol members of an autoregressive model built from four primitives that subclasses provide:

    * ``token_log_probs(prompts, responses) -> [C·B, L, V]``: log p(· | x, y_<t) at every position t, teacher-forced
      (one pass over prompt and response);
    * ``_start(prompts) -> cache`` after reading the prompts [N, Lp]; ``_next(cache) -> [N, V]`` the next-token
      log-probs; ``_advance(cache, tokens [N]) -> cache``: the cached decoding path.
    """

    length: int  # response length generated (the most new tokens)
    eos_id: int | None = None  # a response ends at this token (None: every response has ``length`` tokens)
    pad_id: int = 0  # fills a response past its EOS

    def _warp(self, log_probs: torch.Tensor) -> torch.Tensor:
        """The distribution ``sample`` draws the next token from, given the model's [N, V]: the model's own here;
        a transformer applies its temperature and top-p."""
        return log_probs

    @property
    def configs(self) -> int:
        return 1

    def log_prob(self, prompts: Tokens, responses: Tokens) -> torch.Tensor:
        """log π(y | x) = Σ_{t < length} log p(y_t | x, y_<t): [C, B]."""
        prompts, responses, C, B = _flat_pair(prompts, responses)
        table = self.token_log_probs(prompts, responses)  # [N, L, V]
        ids = responses.ids.reshape(C * B, -1)  # [N, L]
        inside = torch.arange(ids.shape[1], device=ids.device) < responses.lengths.reshape(-1, 1)  # [N, L]
        # PAD (id V) has no logit: gather at 0 there, the mask drops it
        per_token = table.gather(-1, torch.where(inside, ids, 0)[..., None])[..., 0]  # [N, L]
        return torch.where(inside, per_token, 0.0).sum(-1).reshape(C, B)

    @torch.no_grad()
    def sample(self, prompts: Tokens, n: int = 1, generator: torch.Generator | None = None, *,
               greedy: bool = False) -> Tokens:
        """n responses of at most ``length`` tokens per prompt, prompt b's at b·n … b·n + n − 1: Tokens [C, B·n, L'].

        Decodes with a cache (the GRU state, a transformer's keys and values): each step reads one token. ``greedy``
        takes the argmax instead of drawing (``generator``, on the policy's device, is then unused). A model with an
        ``eos_id`` stops a response at its EOS token (kept, and counted in its length) and pads it with ``pad_id``;
        L' ≤ ``length`` is the longest response drawn.
        """
        return _generate(self, prompts, n, generator, greedy, cached=True)

    def enumerate(self, game: SequenceGame) -> torch.Tensor:
        """log π(y | x) for every prompt and every response string of ``game``: float64 [1, X, Y] (sums to 1 over
        Y up to the policy's rounding). Differentiable in a trainable policy's parameters."""
        X, Y = game.num_prompts, game.num_responses
        x = torch.arange(X, device=self.device).repeat_interleave(Y)  # [X·Y]
        prompts = game.prompt_tokens(x[None])
        responses = game.responses(self.device)
        responses = Tokens(responses.ids.repeat(1, X, 1), responses.lengths.repeat(1, X))  # [1, X·Y, L]
        return self.log_prob(prompts, responses).to(torch.float64).reshape(1, X, Y)

    def mixture_sampler(self, other, beta) -> "TokenMixture":
        """The token-level geometric mixture self^{1−β} other^β (see :class:`TokenMixture`)."""
        return TokenMixture(self, other, beta)


class AutoregressivePolicy(_TokenModel, torch.nn.Module):
    """π(y | x) = Π_t softmax(W h_t + b)[y_t]: embedding → 1-layer GRU → linear head over the V response tokens.

    h_t is the GRU state after reading the prompt and y_<t, so ``sample`` carries it as the cache (one GRU step per
    token) and ``log_prob`` is one teacher-forced pass. Initialised from ``seed`` alone (the global RNG is left
    untouched): embeddings N(0, 1), GRU weights U(±1/√H), head weights N(0, (head_scale/√H)²) and zero bias — so
    the initial policy is near uniform without being uniform. One configuration (C = 1).

    >>> game = sequence_game_by_name("judge-sequences")
    >>> policy = AutoregressivePolicy.for_game(game, seed=1)
    >>> prompts = game.prompt_tokens(torch.tensor([[0, 1]]))
    >>> policy.sample(prompts, 3, torch.Generator().manual_seed(0)).shape                # 3 per prompt
    (1, 6, 3)
    >>> policy.log_prob(prompts, policy.sample(prompts, 1, greedy=True)).shape
    torch.Size([1, 2])
    """

    def __init__(self, response_vocab: int, vocab_size: int, length: int, hidden: int = 32, seed: int = 0,
                 dtype: torch.dtype = torch.float32, device=None, head_scale: float = 0.5):
        super().__init__()
        response_vocab, length = _positive_int("response_vocab", response_vocab), _positive_int("length", length)
        hidden = _positive_int("hidden", hidden)
        if _positive_int("vocab_size", vocab_size) <= response_vocab:
            raise ValueError(f"vocab_size ({vocab_size}) must exceed response_vocab ({response_vocab}): prompts need "
                             f"their own tokens")
        self.response_vocab, self.length, self.frozen = response_vocab, length, False
        with torch.random.fork_rng(devices=[]):  # the default inits draw from the global RNG; ours is seeded below
            self.embed = torch.nn.Embedding(vocab_size, hidden, dtype=dtype)
            self.gru = torch.nn.GRU(hidden, hidden, num_layers=1, batch_first=True, dtype=dtype)
            self.head = torch.nn.Linear(hidden, response_vocab, dtype=dtype)
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            self.embed.weight.normal_(0.0, 1.0, generator=generator)
            for weight in self.gru.parameters():
                weight.uniform_(-hidden**-0.5, hidden**-0.5, generator=generator)
            self.head.weight.normal_(0.0, head_scale * hidden**-0.5, generator=generator)
            self.head.bias.zero_()
        self.to(device)

    @classmethod
    def for_game(cls, game: SequenceGame, hidden: int = 32, seed: int = 0, dtype: torch.dtype = torch.float32,
                 device=None, head_scale: float = 0.5) -> "AutoregressivePolicy":
        """A policy sized for ``game``'s token layout and response length."""
        return cls(game.vocab, game.vocab_size, game.length, hidden, seed, dtype, device, head_scale)

    @property
    def dtype(self) -> torch.dtype:
        return self.head.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    # --------------------------------------------------------------------------------------------- primitives
    def _start(self, prompts: Tokens) -> torch.Tensor:
        """GRU state after each prompt's last real token: [1, N, H] (the GRU is causal, so PAD after it is inert)."""
        ids = prompts.ids.reshape(-1, prompts.shape[-1])  # [N, Lp]
        out, _ = self.gru(self.embed(ids))  # [N, Lp, H]
        last = out[torch.arange(len(ids), device=ids.device), prompts.lengths.reshape(-1) - 1]  # [N, H]
        return last[None].contiguous()

    def _next(self, cache: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self.head(cache[0]), -1)  # [N, V]

    def _advance(self, cache: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        _, cache = self.gru(self.embed(tokens)[:, None], cache)  # one step: [N, 1, H] in, [1, N, H] state
        return cache

    def token_log_probs(self, prompts: Tokens, responses: Tokens) -> torch.Tensor:
        prompts, responses, C, B = _flat_pair(prompts, responses)
        # not enable_grad for a trainable policy: a caller's no_grad (sampling, a mixture) must still hold
        with torch.no_grad() if self.frozen else contextlib.nullcontext():
            h0 = self._start(prompts)  # [1, N, H]
            states = h0[0][:, None]  # [N, 1, H]: the state before token 0
            ids = responses.ids.reshape(C * B, -1)  # [N, L]
            if ids.shape[1] > 1:  # then the states after reading y_<t for t = 1 … L − 1
                out, _ = self.gru(self.embed(ids[:, :-1]), h0)  # [N, L − 1, H]
                states = torch.cat([states, out], 1)  # [N, L, H]
            return torch.log_softmax(self.head(states), -1)  # [N, L, V]

    # ----------------------------------------------------------------------------------------------- protocol
    def snapshot(self) -> "AutoregressivePolicy":
        """A frozen deep copy (no gradient, detached log-probs); a snapshot's snapshot is itself."""
        if self.frozen:
            return self
        frozen = copy.deepcopy(self)
        for weight in frozen.parameters():
            weight.requires_grad_(False)
            weight.grad = None
        frozen.frozen = True
        return frozen


class TokenMixture(_TokenModel):
    """The token-level geometric mixture of two autoregressive models, a sampling distribution (no gradient):

        q(y_t | x, y_<t) ∝ π(y_t | x, y_<t)^{1−β} · other(y_t | x, y_<t)^β,     log q(y | x) = Σ_t log q(y_t | …),

    each model decoding with its own cache. This is the paper's approximation of the sequence-level mixture
    π(y|x)^{1−β} other(y|x)^β / Z(x): equal to it for one-token responses and at β ∈ {0, 1}, different in general
    (per-token normalisers do not multiply up to Z; :func:`mixture_tv` measures the gap). The two models are read
    as they are when it samples — snapshot them first if they change in between.
    """

    def __init__(self, policy, other, beta):
        if torch.is_tensor(beta) and beta.numel() != 1:
            raise ValueError(f"an autoregressive mixture has one configuration; beta must be one number, got "
                             f"shape {tuple(beta.shape)}")
        beta = float(beta)
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta must lie in [0, 1]; got {beta}")
        if (policy.response_vocab, policy.length) != (other.response_vocab, other.length):
            raise ValueError(f"the two models generate {policy.length} and {other.length} tokens over "
                             f"{policy.response_vocab} and {other.response_vocab} response tokens")
        if (policy.eos_id, policy.pad_id) != (other.eos_id, other.pad_id):
            raise ValueError(f"the two models end responses differently (eos, pad): {(policy.eos_id, policy.pad_id)} "
                             f"and {(other.eos_id, other.pad_id)}")
        self.policy, self.other, self.beta, self.length = policy, other, beta, policy.length
        self.response_vocab, self.eos_id, self.pad_id = policy.response_vocab, policy.eos_id, policy.pad_id

    @property
    def dtype(self) -> torch.dtype:
        return self.policy.dtype

    @property
    def device(self) -> torch.device:
        return self.policy.device

    def _mix(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax((1 - self.beta) * a + self.beta * b.to(a.dtype), -1)  # renormalised per token

    @torch.no_grad()
    def token_log_probs(self, prompts: Tokens, responses: Tokens) -> torch.Tensor:
        return self._mix(self.policy.token_log_probs(prompts, responses),
                         self.other.token_log_probs(prompts, responses))  # [N, L, V]

    def _start(self, prompts: Tokens):
        return self.policy._start(prompts), self.other._start(prompts)

    def _next(self, cache) -> torch.Tensor:
        return self._mix(self.policy._next(cache[0]), self.other._next(cache[1]))

    def _advance(self, cache, tokens: torch.Tensor):
        return self.policy._advance(cache[0], tokens), self.other._advance(cache[1], tokens)

    def snapshot(self) -> "TokenMixture":
        return type(self)(self.policy.snapshot(), self.other.snapshot(), self.beta)


@torch.no_grad()
def full_recompute_sample(model: _TokenModel, prompts: Tokens, n: int = 1, generator: torch.Generator | None = None,
                          *, greedy: bool = False) -> Tokens:
    """What ``model.sample`` computes, without a cache: each step reruns the model over the prompt and the whole
    prefix (teacher-forced) and keeps the last position. O(L²) work; the reference the cached decoder is tested
    against. Draws from ``generator`` in the same order, so equal seeds give equal tokens."""
    return _generate(model, prompts, n, generator, greedy, cached=False)


def _generate(model: _TokenModel, prompts: Tokens, n: int, generator: torch.Generator | None, greedy: bool, *,
              cached: bool) -> Tokens:
    """The one decoding loop behind ``sample`` (``cached``: the model's ``_start``/``_next``/``_advance``) and
    :func:`full_recompute_sample` (every step's distribution from ``token_log_probs`` over the whole prefix).

    Each step draws a token for every sequence from ``model._warp`` of the next-token log-probs; after a
    sequence's EOS it gets PAD instead (its draw is still made, so the generator's stream does not depend on when
    sequences stop). Stops after ``model.length`` tokens or when every sequence has ended.
    """
    prompts = prompts.repeat_interleave(n)
    C, B, _ = prompts.shape
    device = prompts.ids.device
    lengths = torch.full((C * B,), model.length, dtype=torch.long, device=device)  # [N]
    ended = torch.zeros(C * B, dtype=torch.bool, device=device)  # [N]
    ids = torch.zeros(C * B, model.length, dtype=torch.long, device=device)  # [N, L]: column t written at step t
    cache = model._start(prompts) if cached else None
    drawn = 0  # columns written
    for t in range(model.length):
        if cached:
            log_probs = model._next(cache)  # [N, V]
        else:  # column t still holds 0, a placeholder: position t's distribution depends on y_<t only
            probe = ids[:, : t + 1].reshape(C, B, t + 1)
            log_probs = model.token_log_probs(prompts, _fixed_length(probe))[:, t]  # [N, V]
        token = _pick(model._warp(log_probs), generator, greedy)  # [N]
        if model.eos_id is not None:
            token = torch.where(ended, model.pad_id, token)
        ids[:, t] = token
        drawn = t + 1
        if model.eos_id is not None:
            stops = ~ended & (token == model.eos_id)
            lengths = torch.where(stops, t + 1, lengths)
            ended = ended | stops
            if bool(ended.all()):
                break
        if cached and t + 1 < model.length:
            cache = model._advance(cache, token)
    return Tokens(ids[:, :drawn].reshape(C, B, drawn), lengths.reshape(C, B))


# ==================================================================================================== the bridge
def _enumerated(policy, game: SequenceGame) -> TabularPolicy:
    """The policy as a TabularPolicy [X, Y], renormalised in float64 (a float32 policy's sums are 1 ± 1e-7)."""
    table = policy.enumerate(game)[0].detach().cpu().numpy()  # [X, Y]
    return TabularPolicy(table - logsumexp(table, axis=-1, keepdims=True))


def tabular_game(game: SequenceGame, ref_policy) -> PreferenceGame:
    """``game.tabular`` with the reference replaced by ``ref_policy`` enumerated (e.g. the initial policy's snapshot):
    the exact τ-regularised game that training against that reference plays."""
    return game.tabular.with_ref(_enumerated(ref_policy, game))


def exact_duality_gap(policy, game: SequenceGame, ref_policy, tau: float) -> float:
    """E_{x ~ d0} DualGap_τ(π(·|x)) of the enumerated policy in :func:`tabular_game` (``equilibria.duality_gap``:
    2τ KL(π ‖ BR_τ(π)) per prompt for τ > 0, 2 max_y p(y ≻ π) − 1 at τ = 0). Non-negative; zero only at the
    regularised equilibrium."""
    return float(equilibria.duality_gap(tabular_game(game, ref_policy), _enumerated(policy, game), tau))


def kl_to_equilibrium(policy, game: SequenceGame, ref_policy, tau: float) -> float:
    """E_{x ~ d0} KL(π(·|x) ‖ π*_τ(·|x)), π*_τ the regularised Nash equilibrium (``equilibria.regularized_nash``)
    of :func:`tabular_game`. At most :func:`exact_duality_gap`/(2τ) (the solver's certificate inequality)."""
    tabular = tabular_game(game, ref_policy)
    star = equilibria.regularized_nash(tabular, tau).policy
    return tabular.expected(_kl(_enumerated(policy, game).log_probs, star.log_probs))


def mixture_tv(policy, other, beta: float, game: SequenceGame) -> float:
    """E_{x ~ d0} TV(q, m) = E_x ½ Σ_y |q(y|x) − m(y|x)| between the token-level mixture q (enumerated through
    ``policy.mixture_sampler(other, beta).log_prob``) and the sequence-level mixture
    m = π^{1−β} other^β / Z computed from the two enumerated tables."""
    token = policy.mixture_sampler(other, beta).enumerate(game)[0].detach().cpu().numpy()  # [X, Y]
    a = policy.enumerate(game)[0].detach().cpu().numpy()
    b = other.enumerate(game)[0].detach().cpu().numpy()
    mixed = (1 - beta) * a + beta * b
    sequence = mixed - logsumexp(mixed, axis=-1, keepdims=True)  # [X, Y]
    tv = 0.5 * np.abs(np.exp(token) - np.exp(sequence)).sum(-1)  # [X]
    return game.tabular.expected(tv)
