"""Preference oracles on text: p(y ≻ y' | x) for token batches, behind the
:class:`~preference_games.protocols.PreferenceOracle` protocol.

Every oracle here judges *strings*. ``prob(prompts, responses, responses2)`` decodes the three
:class:`~preference_games.sequences.Tokens` batches with the policy's ``codec`` (``decode_prompts`` /
``decode_responses``, flattened in C·B order), and ``compare(prompts, a, b)`` judges the texts: the oracle never
depends on the policy's vocabulary, so a reward model keeps its own tokenizer.

==========================  ===========================================================================
oracle                      p(y ≻ y' | x)
==========================  ===========================================================================
:class:`RewardModelOracle`  Bradley–Terry: σ(r(x, y) − r(x, y')), r a sequence classifier with one output
:class:`PairwiseOracle`     ½(σ(f(x, y, y')) + 1 − σ(f(x, y', y))), f a classifier of "A is better than B"
:class:`CallableOracle`     ½(g(x, y, y') + 1 − g(x, y', y)), g any Python function on strings into [0, 1]
:class:`GameOracle`         P[x, y, y'] of a :class:`~preference_games.sequences.SequenceGame`, from the text
==========================  ===========================================================================

**The protocol's identity p(y ≻ y') + p(y' ≻ y) = 1 holds exactly, in floating point.** Each oracle computes an
antisymmetric score u(y, y') = −u(y', y) in [−1, 1] (u = tanh((r − r')/2) for Bradley–Terry, u = g(y, y') − g(y', y)
when both orders are averaged) and returns p = ½(1 + u), whose two orders always round to complements
(:func:`_symmetric`). For u to be antisymmetric to the last bit, swapping y and y' must reproduce the judge's numbers
exactly, whatever its padding or batching: pairs judged in both orders are asked in one canonical orientation (the
smaller string first), and a classifier scores its texts in a canonical order (deduplicated, sorted).

**Counting.** ``calls`` is the number of (x, y, y') triples judged so far (a pair scored in both orders counts once).

:class:`Environment` joins a prompt source and an oracle into the one object that
:meth:`~preference_games.samplers.PairSampler.sample` asks for both.

>>> from preference_games.sequences import sequence_game_by_name
>>> from llm_backend.text import TextCodec, game_tokenizer
>>> game = sequence_game_by_name("rps-sequences")
>>> oracle = CallableOracle(lambda prompt, a, b: 1.0 if a > b else 0.0, TextCodec(game_tokenizer(game)))
>>> oracle.compare(["<x0>", "<x0>"], ["abc", "aaa"], ["aaa", "aaa"]).tolist(), oracle.calls
([1.0, 0.5], 2)
"""

from __future__ import annotations

import math
import os
import re
from abc import ABC, abstractmethod
from typing import Callable, Sequence

import torch

from preference_games.sequences import SequenceGame, Tokens

from .text import GAME_LETTERS

DTYPE = torch.float64  # the sampler casts to the policy's dtype


# ==================================================================================================== symmetry
def _symmetric(u: torch.Tensor) -> torch.Tensor:
    """p = ½(1 + u) for an antisymmetric score u(y, y') = −u(y', y) in [−1, 1], given to the two orders bit for bit
    negated (negation is exact). Then p(y ≻ y') + p(y' ≻ y) = fl(½ + v) + fl(½ − v), v = u/2, is exactly 1: the two
    roundings err by at most 2⁻⁵⁴ and 2⁻⁵⁵ (½ − v is exact for v ≥ ¼), so the sum lies within 1.5·2⁻⁵⁴ of 1 and
    rounds to it (the tie 1 − 2⁻⁵⁴ goes to the even 1). Rounding each order's own formula does not: ½(q + 1 − q')
    and ½(q' + 1 − q) sum to 1 − 2⁻⁵³ at q = 0.51, q' = 0.4, and σ(d) + σ(−d) misses 1 for about a quarter of
    d ~ N(0, 10²)."""
    return 0.5 + 0.5 * u


def _both_orders(judge: Callable, prompts: list[str], a: list[str], b: list[str]) -> torch.Tensor:
    """p = ½(q(x, a, b) + 1 − q(x, b, a)) for a judge q of "first better than second" that need not be consistent:
    one call ``judge(prompts, firsts, seconds) -> [2M]`` for both orders of the M pairs with a ≠ b (a response
    against itself is ½ by the protocol's identity; the judge is not asked). Each pair is asked with its smaller
    string first and u negated where that flipped it, so (x, a, b) and (x, b, a) send the judge identical batches
    and get answers that are complements to the last bit (:func:`_symmetric`). float64 [N]."""
    ask = [i for i, (ai, bi) in enumerate(zip(a, b)) if ai != bi]
    flip = torch.tensor([b[i] < a[i] for i in ask], dtype=torch.bool)  # [M]
    lo = [min(a[i], b[i]) for i in ask]
    hi = [max(a[i], b[i]) for i in ask]
    x = [prompts[i] for i in ask]
    u = torch.zeros(len(a), dtype=DTYPE)  # [N]
    if ask:
        q = judge(x + x, lo + hi, hi + lo)  # [2M]: q(x, lo, hi) then q(x, hi, lo)
        d = q[: len(ask)] - q[len(ask):]  # [M]: u(lo, hi) in [−1, 1]
        u[ask] = torch.where(flip, -d, d)  # u(a, b)
    return _symmetric(u)


def _short(text: str, limit: int = 60) -> str:
    """A text for a one-line error message: its repr, cut after ``limit`` characters."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "…"


def _check_probabilities(values, prompts: list[str], a: list[str], b: list[str]) -> torch.Tensor:
    """A judge's answers as float64 [N], refused (one line, naming the first offender) unless each is in [0, 1]."""
    out = torch.empty(len(values), dtype=DTYPE)
    for i, value in enumerate(values):
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if not 0.0 <= number <= 1.0:  # NaN fails this too
            raise ValueError(f"the preference function returned {value!r} for (prompt={_short(prompts[i])}, "
                             f"a={_short(a[i])}, b={_short(b[i])}); it must be a probability in [0, 1]")
        out[i] = number
    return out


# ================================================================================================= text oracles
class TextOracle(ABC):
    """What every oracle here shares: decode token batches with ``codec``, broadcast them over C, judge the texts.

    Subclasses implement ``_judge(prompts, a, b) -> float64 [N]`` on lists of N strings; :meth:`compare` counts the
    triples and :meth:`prob` is the protocol method.
    """

    def __init__(self, codec):
        self.codec = codec
        self.calls = 0

    def compare(self, prompts: Sequence[str], a: Sequence[str], b: Sequence[str]) -> torch.Tensor:
        """p(a ≻ b | prompt) for N triples of strings: float64 [N] on the CPU."""
        prompts, a, b = list(prompts), list(a), list(b)
        if not len(prompts) == len(a) == len(b):
            raise ValueError(f"compare needs as many prompts as responses; got {len(prompts)}, {len(a)} and {len(b)}")
        self.calls += len(a)
        if not a:
            return torch.empty(0, dtype=DTYPE)
        return self._judge(prompts, a, b)

    def prob(self, prompts: Tokens, responses: Tokens, responses2: Tokens) -> torch.Tensor:
        """p(y ≻ y2 | x) for token batches [C, B, ·] (each C may be 1 and broadcast): float64 [C, B] on the CPU."""
        batches = (prompts, responses, responses2)
        C = max(t.shape[0] for t in batches)
        B = prompts.shape[1]
        for t in batches:
            if t.shape[0] not in (1, C) or t.shape[1] != B:
                raise ValueError(f"prompts and responses must share [C, B] (C may be 1); got "
                                 f"{[tuple(t.shape[:2]) for t in batches]}")
        texts = [self.codec.decode_prompts(prompts), self.codec.decode_responses(responses),
                 self.codec.decode_responses(responses2)]  # flattened C·B order
        # a batch with one configuration stands for all C: its B texts repeat C times
        texts = [t * (C // batch.shape[0]) for t, batch in zip(texts, batches)]
        return self.compare(*texts).reshape(C, B)

    @abstractmethod
    def _judge(self, prompts: list[str], a: list[str], b: list[str]) -> torch.Tensor:
        """p(a ≻ b | prompt) for N ≥ 1 triples of strings: float64 [N]."""


class _ClassifierOracle(TextOracle):
    """A HuggingFace sequence classifier with one output, scoring texts with its own tokenizer (right-padded, with
    an attention mask) in mini-batches of ``batch_size`` texts, in eval mode and without gradients."""

    def __init__(self, model, tokenizer, codec, *, batch_size: int = 64, max_length: int | None = None):
        super().__init__(codec)
        labels = getattr(model.config, "num_labels", None)
        if labels != 1:
            raise ValueError(f"a preference model needs exactly one output (config.num_labels == 1); got "
                             f"num_labels={labels}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1; got {batch_size!r}")
        limit = getattr(model.config, "max_position_embeddings", None)
        if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int)
                                       or not 1 <= max_length <= (limit or max_length)):
            raise ValueError(f"max_length must be None or an integer in [1, max_position_embeddings={limit}]; got "
                             f"{max_length!r}")
        # HF classifiers score the rightmost token that is not pad_token_id: without one they cannot batch, and with
        # a tokenizer that pads with another id they would score a pad position
        pad = model.config.get_text_config().pad_token_id
        if pad is None:
            raise ValueError("the preference model's config has no pad_token_id: set model.config.pad_token_id to "
                             "its tokenizer's pad token id")
        if tokenizer.pad_token_id is None:
            raise ValueError("the preference model's tokenizer has no pad token: set tokenizer.pad_token")
        if tokenizer.pad_token_id != pad:
            raise ValueError(f"the tokenizer pads with id {tokenizer.pad_token_id} but the model's config has "
                             f"pad_token_id={pad}: they must agree")
        self.model, self.tokenizer, self.batch_size, self.max_length = model, tokenizer, batch_size, max_length
        self.pad_id = pad

    @classmethod
    def from_pretrained(cls, path, codec, *, model_kwargs: dict | None = None, **kwargs):
        """Load the model (``AutoModelForSequenceClassification``; ``model_kwargs`` such as ``dtype`` go to its
        ``from_pretrained``) and its tokenizer from a local directory — nothing is downloaded; ``kwargs`` (e.g.
        ``batch_size``) go to the oracle."""
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        if not os.path.isdir(path):
            raise ValueError(f"no model directory at {path}")
        model = AutoModelForSequenceClassification.from_pretrained(path, local_files_only=True,
                                                                   **(model_kwargs or {}))
        return cls(model, AutoTokenizer.from_pretrained(path, local_files_only=True), codec, **kwargs)

    @torch.no_grad()
    def scores(self, texts: Sequence[str]) -> torch.Tensor:
        """The model's one output on each text: float64 [N] on the CPU.

        Unique texts are scored once, shortest first (less padding), so a text's score does not depend on the
        order or company it was asked in. Right padding keeps every real token at its unpadded position (causal
        attention hides the pads after it). Without ``max_length`` a text longer than the model's
        ``max_position_embeddings`` is refused; with it, texts are truncated to ``max_length`` tokens (the
        tokenizer's ``truncation_side``)."""
        texts = list(texts)
        unique = sorted(set(texts), key=lambda t: (len(t), t))
        self.model.eval()
        device = next(self.model.parameters()).device
        limit = getattr(self.model.config, "max_position_embeddings", None)
        found = {}
        for start in range(0, len(unique), self.batch_size):
            chunk = unique[start:start + self.batch_size]
            encoded = self.tokenizer(chunk, padding=True, padding_side="right", return_tensors="pt",
                                     truncation=self.max_length is not None, max_length=self.max_length)
            ids, mask = encoded["input_ids"], encoded["attention_mask"]  # [b, T] each
            length = mask.sum(-1)  # [b]
            if self.max_length is None and limit is not None and ids.shape[1] > limit:
                i = int(length.argmax())
                raise ValueError(f"a text of {int(length[i])} tokens exceeds the preference model's context "
                                 f"(max_position_embeddings={limit}); pass max_length to truncate: {_short(chunk[i])}")
            # the classifier pools at the rightmost token that is not the pad id (alone or batched alike: right
            # padding only appends pads); a text with none would be pooled at a pad
            empty = ~((ids != self.pad_id) & mask.bool()).any(-1)  # [b]
            if bool(empty.any()):
                text = chunk[int(empty.nonzero()[0])]
                raise ValueError(f"the text {_short(text)} has no token other than the pad token (id {self.pad_id}) "
                                 f"for the classifier to score")
            logits = self.model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits  # [b, 1]
            found.update(zip(chunk, logits[:, 0].to(device="cpu", dtype=DTYPE).tolist()))
        return torch.tensor([found[t] for t in texts], dtype=DTYPE)


class RewardModelOracle(_ClassifierOracle):
    """Bradley–Terry preferences from a reward model (an ``AutoModelForSequenceClassification`` with one output):

        r(x, y) = the model's output on the text x + y (plain concatenation, re-tokenized by its own tokenizer),
        p(y ≻ y' | x) = σ(r(x, y) − r(x, y')) = ½(1 + tanh((r − r')/2)),

    the BT model (Bradley and Terry, 1952; the unnumbered display of INPO §2.1). All texts of one call are
    scored in mini-batches of ``batch_size`` (:meth:`scores`). One-line errors: ``num_labels != 1``, no
    ``pad_token_id`` on the config, a tokenizer without a pad token (or padding with another id), a text longer than
    the context when ``max_length`` is None.

    >>> oracle = RewardModelOracle.from_pretrained("path/to/reward-model", codec)       # doctest: +SKIP
    >>> oracle.compare(["2+2="], ["4"], ["5"])                                          # doctest: +SKIP
    tensor([0.93], dtype=torch.float64)
    """

    def rewards(self, prompts: Sequence[str], responses: Sequence[str]) -> torch.Tensor:
        """r(x, y) for N prompt and response strings: float64 [N]."""
        return self.scores([x + y for x, y in zip(prompts, responses)])

    def _judge(self, prompts, a, b):
        N = len(a)
        r = self.rewards(prompts + prompts, a + b)  # [2N]: r(x, a) then r(x, b)
        margin = r[:N] - r[N:]  # [N]; r' − r = −(r − r') exactly
        return _symmetric(margin.sign() * torch.tanh(margin.abs() / 2))  # σ(margin), the orders complementary


#: The default text a :class:`PairwiseOracle` scores: ``{prompt}``, ``{a}`` (response A), ``{b}`` (response B).
PAIRWISE_TEMPLATE = "{prompt}\n\n[A] {a}\n\n[B] {b}\n\nIs A better than B?"


class PairwiseOracle(_ClassifierOracle):
    """General preferences from a pairwise preference model: a sequence classifier with one output f, read as the
    logit of "A is better than B" on ``template.format(prompt=x, a=A, b=B)`` (default :data:`PAIRWISE_TEMPLATE`;
    use the one the model was trained on). A model trained on ordered pairs need not be consistent across orders
    (position bias), so each pair is scored both ways and averaged:

        p(y ≻ y' | x) = ½(σ(f(x, y, y')) + 1 − σ(f(x, y', y))),

    which makes p(y ≻ y') + p(y' ≻ y) = 1 exactly: the game of INPO §2.2, eq. 3, is symmetric (J(π, π) = ½) only
    under this identity. Both orders of a call's pairs are scored in one batched pass, mini-batches of ``batch_size``.

    >>> oracle = PairwiseOracle.from_pretrained("pair-model/", codec, template="{prompt}|{a}|{b}")  # doctest: +SKIP
    """

    def __init__(self, model, tokenizer, codec, *, template: str = PAIRWISE_TEMPLATE, batch_size: int = 64,
                 max_length: int | None = None):
        super().__init__(model, tokenizer, codec, batch_size=batch_size, max_length=max_length)
        try:
            probe = template.format(prompt="\0x", a="\0a", b="\0b")
        except (KeyError, IndexError, ValueError, AttributeError) as error:
            raise ValueError(f"a pairwise template takes the fields {{prompt}}, {{a}} and {{b}} only; "
                             f"{template!r} fails: {error!r}") from None
        if not all(field in probe for field in ("\0x", "\0a", "\0b")):
            raise ValueError(f"a pairwise template must contain {{prompt}}, {{a}} and {{b}}; got {template!r}")
        self.template = template

    def _judge(self, prompts, a, b):
        def judge(prompts, firsts, seconds):  # σ(f(x, A, B)) on the templated texts: [2N]
            texts = [self.template.format(prompt=x, a=s, b=t) for x, s, t in zip(prompts, firsts, seconds)]
            return torch.sigmoid(self.scores(texts))

        return _both_orders(judge, prompts, a, b)


class CallableOracle(TextOracle):
    """Any Python function of strings as a preference oracle: ``fn(prompt, a, b) -> float`` in [0, 1], the
    probability that a beats b; with ``batched=True``, ``fn(prompts, as_, bs) -> sequence of floats`` called once
    per :meth:`compare` with lists of strings (a judge that batches its own requests).

    The function need not be consistent across orders (an LLM judge rarely is). The oracle calls it in both orders
    and averages, as :class:`PairwiseOracle` does with its model:

        p(a ≻ b | x) = ½(fn(x, a, b) + 1 − fn(x, b, a)),

    so the protocol's p(a ≻ b) + p(b ≻ a) = 1 holds exactly whatever ``fn`` returns. Each pair is asked with its
    smaller string first, so ``fn`` sees the same questions for (a, b) and (b, a). A value outside [0, 1], NaN, or
    not a number is a one-line ValueError naming it.

    >>> from llm_backend.text import TextCodec, char_tokenizer
    >>> oracle = CallableOracle(lambda x, a, b: 0.9 if len(a) > len(b) else 0.3, TextCodec(char_tokenizer()))
    >>> round(oracle.compare(["x"], ["long"], ["s"]).item(), 12)                        # ½(0.9 + 1 − 0.3)
    0.8
    """

    def __init__(self, fn: Callable, codec, *, batched: bool = False):
        if not callable(fn):
            raise ValueError(f"CallableOracle needs a function; got {type(fn).__name__}")
        super().__init__(codec)
        self.fn, self.batched = fn, bool(batched)

    def _ask(self, prompts, firsts, seconds) -> torch.Tensor:
        if not self.batched:
            values = [self.fn(x, s, t) for x, s, t in zip(prompts, firsts, seconds)]
        else:
            values = list(self.fn(prompts, firsts, seconds))
            if len(values) != len(prompts):
                raise ValueError(f"the batched preference function returned {len(values)} values for "
                                 f"{len(prompts)} questions")
        return _check_probabilities(values, prompts, firsts, seconds)  # [2N]

    def _judge(self, prompts, a, b):
        return _both_orders(self._ask, prompts, a, b)


class GameOracle(TextOracle):
    """The exact preference oracle of a :class:`~preference_games.sequences.SequenceGame` read through text: the
    prompts and responses are decoded with ``codec``, parsed back to the game's indices (the game tokenizer writes
    response token i as the letter chr(ord('a') + i) and prompt x as ``<bos><x{x}>``; the ``<bos>`` may be skipped
    as a special token), and p(y ≻ y' | x) = P[x, y, y'] of ``game.tabular``. It equals
    :class:`~preference_games.sequences.SequenceOracle` on token ids, and so checks a text pipeline end to end. A
    text that is not a prompt or response string of the game is a one-line ValueError.

    >>> from preference_games.sequences import sequence_game_by_name
    >>> from llm_backend.text import TextCodec, game_tokenizer
    >>> game = sequence_game_by_name("rps-sequences")
    >>> GameOracle(game, TextCodec(game_tokenizer(game))).compare(["<bos><x0>"], ["baa"], ["aaa"]).item()  # paper, rock
    1.0
    """

    def __init__(self, game: SequenceGame, codec):
        if game.vocab > len(GAME_LETTERS):
            raise ValueError(f"the game tokenizer spells at most {len(GAME_LETTERS)} response tokens as letters; "
                             f"{game.name} has {game.vocab}")
        super().__init__(codec)
        self.game = game
        self.P = torch.tensor(game.tabular.P, dtype=DTYPE)  # [X, Y, Y]
        self._letters = GAME_LETTERS[:game.vocab]
        self._response = re.compile(f"[{self._letters}]{{{game.length}}}")

    def prompt_index(self, text: str) -> int:
        """x for the text ``<bos><x{x}>`` (or ``<x{x}>``)."""
        match = re.fullmatch(r"(?:<bos>)?<x(\d+)>", text)
        if match is None or int(match.group(1)) >= self.game.num_prompts:
            raise ValueError(f"{_short(text)} is not a prompt of {self.game.name} (<bos><x0> … "
                             f"<bos><x{self.game.num_prompts - 1}>)")
        return int(match.group(1))

    def response_index(self, text: str) -> int:
        """y for a string of ``length`` letters: its base-V digits, most significant first."""
        if self._response.fullmatch(text) is None:
            raise ValueError(f"{_short(text)} is not a response of {self.game.name} ({self.game.length} letters from "
                             f"{self._letters!r})")
        y = 0
        for letter in text:
            y = y * self.game.vocab + self._letters.index(letter)
        return y

    def _judge(self, prompts, a, b):
        x = torch.tensor([self.prompt_index(t) for t in prompts])  # [N]
        y = torch.tensor([self.response_index(t) for t in a])
        y2 = torch.tensor([self.response_index(t) for t in b])
        return self.P[x, y, y2]


# ================================================================================================= environment
class Environment:
    """A prompt source and a preference oracle as one object, what
    :meth:`~preference_games.samplers.PairSampler.sample` and :mod:`llm_backend.pairs` ask for: ``sample(batch,
    generator)`` draws prompts, ``prob`` judges pairs, ``calls`` counts the (x, y, y') triples judged through it.

    ``prompts``: a :class:`~preference_games.protocols.PromptSource` (e.g. a
    :class:`~preference_games.sequences.SequenceOracle`, whose prompts follow the game's d0), or a fixed pool of
    prompts as right-padded :class:`~preference_games.sequences.Tokens` [1, N, L], drawn uniformly with replacement
    and trimmed to the widest prompt drawn.

    >>> from preference_games.samplers import PairSampler, Roles
    >>> from preference_games.sequences import AutoregressivePolicy, SequenceOracle, sequence_game_by_name
    >>> from llm_backend.text import TextCodec, game_tokenizer
    >>> game = sequence_game_by_name("rps-sequences")
    >>> env = Environment(SequenceOracle(game), GameOracle(game, TextCodec(game_tokenizer(game))))
    >>> policy = AutoregressivePolicy.for_game(game)
    >>> pairs = PairSampler("policy").sample(Roles(policy, policy.snapshot()), env, 8, torch.Generator(), "soft")
    >>> pairs.pref.shape, env.calls
    (torch.Size([1, 8]), 8)
    """

    def __init__(self, prompts, oracle):
        if isinstance(prompts, Tokens):
            if prompts.shape[0] != 1 or prompts.shape[1] == 0:
                raise ValueError(f"a prompt pool is Tokens [1, N, L] with N >= 1; got {prompts.shape}")
        elif not callable(getattr(prompts, "sample", None)):
            raise ValueError(f"prompts must be Tokens or a prompt source with sample(batch, generator); got "
                             f"{type(prompts).__name__}")
        if not callable(getattr(oracle, "prob", None)):
            raise ValueError(f"oracle must have prob(prompts, responses, responses2); got {type(oracle).__name__}")
        self.prompts, self.oracle = prompts, oracle
        self.calls = 0  # its own count, so that any oracle (a SequenceOracle has none) is counted


    def sample(self, batch: int, generator: torch.Generator | None = None):
        """``batch`` prompts: the source's, or Tokens [1, batch, L'] drawn uniformly from the pool."""
        if not isinstance(self.prompts, Tokens):
            return self.prompts.sample(batch, generator)
        index = torch.randint(self.prompts.shape[1], (batch,), generator=generator)  # [B], on the CPU generator
        index = index.to(self.prompts.ids.device)
        lengths = self.prompts.lengths[:, index]  # [1, B]
        width = int(lengths.max()) if batch else 0
        return Tokens(self.prompts.ids[:, index, :width], lengths)

    def prob(self, prompts, responses, responses2) -> torch.Tensor:
        """The oracle's p(y ≻ y2 | x) [C, B], counted in ``calls`` (C·B triples)."""
        p = self.oracle.prob(prompts, responses, responses2)
        self.calls += p.numel()
        return p
