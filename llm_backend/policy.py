"""A HuggingFace causal language model as a :class:`~preference_games.protocols.Policy` on a sequence game.

:class:`TransformerPolicy` wraps any ``AutoModelForCausalLM`` over the token layout of a
:class:`~preference_games.sequences.SequenceGame` (the model's vocabulary is the game's ``vocab_size``; ids
0 … V − 1 are the response tokens) and is what :class:`~preference_games.sequences.AutoregressivePolicy` is for a
GRU: the unchanged algorithms train it through :class:`~preference_games.training.TrainingStep`, and on a small game
it is *enumerated* over every response string, so the engine's exact tools (``sequences.exact_duality_gap``,
``sequences.mixture_tv``) measure it.

The policy is a distribution over the V response tokens only: at every position the head's logits are sliced to the
first V before the softmax,

    π(y_t | x, y_<t) = softmax(z_t[:V])[y_t],     log π(y | x) = Σ_{t < |y|} log π(y_t | x, y_<t),

with z_t the model's logits after reading [x, y_<t]. PAD, BOS and prompt tokens are read, never generated.

>>> from preference_games.sequences import sequence_game_by_name
>>> game = sequence_game_by_name("rps-sequences")
>>> policy = TransformerPolicy.for_game(game, dtype=torch.float64)
>>> prompts = game.prompt_tokens(torch.tensor([[0, 0]]))
>>> y = policy.sample(prompts, 2, torch.Generator().manual_seed(0))          # Tokens [1, 4, 3]
>>> policy.log_prob(prompts.repeat_interleave(2), y).shape
torch.Size([1, 4])
>>> float(policy.enumerate(game).detach().exp().sum())                       # all 27 strings
1.0
"""

from __future__ import annotations

import contextlib
import copy
import inspect

import torch

from preference_games.sequences import SequenceGame, Tokens, _flat_pair, _positive_int, _TokenModel


def _cache_argument(model) -> str:
    """The keyword that passes a KV cache to ``model.forward``: ``cache`` from transformers 5.2x on,
    ``past_key_values`` before (still accepted, with a deprecation warning, until it is removed)."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


class TransformerPolicy(_TokenModel, torch.nn.Module):
    """π(y | x) from a causal LM's logits sliced to the ``response_vocab`` response tokens (module docstring).

    * ``log_prob(prompts, responses)`` [C, B]: one teacher-forced forward pass over [prompt, response]; the masked
      sum Σ_t log π(y_t | x, y_<t) — or, with ``length_normalise=True``, the per-token mean (1/|y|)·Σ_t …:
      implementations disagree on which a DPO-style loss should see (TRL sums; SimPO and some IPO code average).
      ``enumerate`` always sums, since only the sum is a distribution over strings.
    * ``sample(prompts, n, generator, greedy=False)``: token by token with the model's KV cache — the prompt is read
      once, then each step feeds only the new token; draws with ``torch.multinomial(…, generator=generator)``.
    * ``snapshot()``: a frozen deep copy (eval mode, no gradient, detached log-probs).

    Prompts must be unpadded (a SequenceGame's all have 2 tokens): positions are then 0 … Lp + L − 1 without an
    attention mask, and must fit in the model's ``max_position_embeddings``.
    """

    def __init__(self, model, response_vocab: int, length: int, *, length_normalise: bool = False):
        super().__init__()
        self.response_vocab, self.length = _positive_int("response_vocab", response_vocab), _positive_int("length",
                                                                                                          length)
        if model.config.vocab_size <= self.response_vocab:
            raise ValueError(f"the model's vocabulary ({model.config.vocab_size}) must exceed response_vocab "
                             f"({self.response_vocab}): prompts need their own tokens")
        self.model, self.length_normalise, self.frozen = model, bool(length_normalise), False
        self._cache_argument = _cache_argument(model)

    @classmethod
    def for_game(cls, game: SequenceGame, hidden: int = 32, layers: int = 2, seed: int = 0,
                 dtype: torch.dtype = torch.float32, device=None, *, length_normalise: bool = False
                 ) -> "TransformerPolicy":
        """A tiny Llama (``hidden`` wide, ``layers`` deep, 4 query and 2 key-value heads, MLP 2·hidden) built from a
        config — nothing is downloaded — and initialised from ``seed`` alone (the global RNG is left untouched).
        Eager attention: on the CPU, PyTorch's fused attention (sdpa) moved float64 log-probs by ~3e-8, too much for
        the exact bridge's 1e-10 checks."""
        from transformers import LlamaConfig, LlamaForCausalLM

        config = LlamaConfig(vocab_size=game.vocab_size, hidden_size=hidden, intermediate_size=2 * hidden,
                             num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                             max_position_embeddings=64, bos_token_id=game.bos_id, pad_token_id=game.pad_id,
                             eos_token_id=None, attn_implementation="eager")
        with torch.random.fork_rng(devices=[]):  # HF initialises from the global RNG: seed it, then restore it
            torch.manual_seed(seed)
            model = LlamaForCausalLM(config)
        return cls(model.to(dtype=dtype, device=device), game.vocab, game.length, length_normalise=length_normalise)

    @classmethod
    def from_pretrained(cls, path, response_vocab: int, length: int, *, length_normalise: bool = False,
                        **kwargs) -> "TransformerPolicy":
        """Load a model saved with :meth:`save_pretrained` (``kwargs`` go to ``AutoModelForCausalLM.from_pretrained``,
        e.g. ``dtype``, and ``attn_implementation="eager"`` to reproduce :meth:`for_game`'s log-probs exactly)."""
        from transformers import AutoModelForCausalLM

        return cls(AutoModelForCausalLM.from_pretrained(path, **kwargs), response_vocab, length,
                   length_normalise=length_normalise)

    def save_pretrained(self, path) -> None:
        """The model's weights and config in HuggingFace format (response_vocab and length are not stored)."""
        self.model.save_pretrained(path)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # ---------------------------------------------------------------------------------------------- checks
    def check(self, prompts: Tokens, responses: Tokens | None = None) -> None:
        """One-line ValueErrors for what the model cannot read: padded prompts, tokens outside its vocabulary,
        response tokens outside the response vocabulary, more positions than ``max_position_embeddings``."""
        vocab = self.model.config.vocab_size
        if bool((prompts.lengths != prompts.ids.shape[-1]).any()):
            raise ValueError("prompts must be unpadded (every length equal to the width of Tokens.ids)")
        if prompts.ids.numel() and (prompts.ids.min() < 0 or prompts.ids.max() >= vocab):
            raise ValueError(f"prompt tokens must lie in [0, {vocab}); got {prompts.ids.min()}..{prompts.ids.max()}")
        width = self.length if responses is None else responses.ids.shape[-1]
        if responses is not None:
            inside = torch.arange(width, device=responses.ids.device) < responses.lengths[..., None]  # [C, B, L]
            bad = inside & ((responses.ids < 0) | (responses.ids >= self.response_vocab))
            if bool(bad.any()):
                raise ValueError(f"response tokens must lie in the response vocabulary [0, {self.response_vocab}); "
                                 f"got {int(responses.ids[bad][0])}")
        limit = getattr(self.model.config, "max_position_embeddings", None)
        if limit is not None and prompts.ids.shape[-1] + width > limit:
            raise ValueError(f"a prompt of {prompts.ids.shape[-1]} tokens and a response of {width} need "
                             f"{prompts.ids.shape[-1] + width} positions; the model has max_position_embeddings="
                             f"{limit}")

    # ------------------------------------------------------------------------------------------ primitives
    def _response_log_probs(self, logits: torch.Tensor) -> torch.Tensor:
        """log π(· | prefix) over the response tokens only: logits [..., vocab] → [..., V]."""
        return torch.log_softmax(logits[..., : self.response_vocab], -1)

    def _forward(self, ids: torch.Tensor, cache=None) -> torch.Tensor:
        """The model's logits [N, T, vocab] for ids [N, T], continuing ``cache`` (updated in place) if given."""
        if cache is None:
            return self.model(input_ids=ids, use_cache=False).logits
        return self.model(input_ids=ids, use_cache=True, **{self._cache_argument: cache}).logits

    def token_log_probs(self, prompts: Tokens, responses: Tokens) -> torch.Tensor:
        """log π(· | x, y_<t) at every response position t, teacher-forced in one pass: [C·B, L, V]."""
        prompts, responses, C, B = _flat_pair(prompts, responses)
        Lp, L = prompts.shape[-1], responses.shape[-1]
        ids = responses.ids.reshape(C * B, L)  # [N, L]
        # PAD past a response's end may be any id: causal attention hides it from the positions log_prob keeps
        ids = torch.where(torch.arange(L, device=ids.device) < responses.lengths.reshape(-1, 1), ids, 0)
        # not enable_grad for a trainable policy: a caller's no_grad (sampling, a mixture) must still hold
        with torch.no_grad() if self.frozen else contextlib.nullcontext():
            logits = self._forward(torch.cat([prompts.ids.reshape(C * B, Lp), ids[:, :-1]], -1))  # [N, Lp+L−1, vocab]
            return self._response_log_probs(logits[:, Lp - 1:])  # [N, L, V]: position Lp−1+t predicts y_t

    def _start(self, prompts: Tokens):
        """Read the prompts [N, Lp] into a fresh KV cache: (cache, next-token log-probs [N, V])."""
        from transformers import DynamicCache

        cache = DynamicCache()
        logits = self._forward(prompts.ids.reshape(-1, prompts.shape[-1]), cache)  # [N, Lp, vocab]
        return cache, self._response_log_probs(logits[:, -1])

    def _next(self, state) -> torch.Tensor:
        return state[1]  # [N, V]

    def _advance(self, state, tokens: torch.Tensor):
        """Feed only the new tokens [N]; the cache holds the keys and values of everything before."""
        cache, _ = state
        logits = self._forward(tokens[:, None], cache)  # [N, 1, vocab]
        return cache, self._response_log_probs(logits[:, -1])

    # ------------------------------------------------------------------------------------------- protocol
    def log_prob(self, prompts: Tokens, responses: Tokens) -> torch.Tensor:
        """Σ_t log π(y_t | x, y_<t) [C, B] (or the per-token mean with ``length_normalise``)."""
        self.check(prompts, responses)
        total = super().log_prob(prompts, responses)  # [C, B]
        if not self.length_normalise:
            return total
        return total / responses.lengths.expand_as(total).clamp(min=1).to(total.dtype)

    def sample(self, prompts: Tokens, n: int = 1, generator: torch.Generator | None = None, *,
               greedy: bool = False) -> Tokens:
        """n responses of ``length`` tokens per prompt, prompt b's at b·n … b·n + n − 1: Tokens [C, B·n, L].
        ``greedy`` takes the argmax (``generator`` unused)."""
        self.check(prompts)
        return super().sample(prompts, n, generator, greedy=greedy)

    def enumerate(self, game: SequenceGame) -> torch.Tensor:
        """log π(y | x) (the sum, whatever ``length_normalise``) for every prompt and response string of ``game``:
        float64 [1, X, Y], summing to 1 over Y up to the model's rounding (1e-15 in float64, ~1e-6 in float32)."""
        if (game.vocab, game.length, game.vocab_size) != (self.response_vocab, self.length,
                                                          self.model.config.vocab_size):
            raise ValueError(f"{game!r} does not match this policy (response vocab {self.response_vocab}, length "
                             f"{self.length}, vocabulary {self.model.config.vocab_size})")
        X, Y = game.num_prompts, game.num_responses
        prompts = game.prompt_tokens(torch.arange(X, device=self.device).repeat_interleave(Y)[None])  # [1, X·Y, 2]
        responses = game.responses(self.device)
        responses = Tokens(responses.ids.repeat(1, X, 1), responses.lengths.repeat(1, X))  # [1, X·Y, L]
        self.check(prompts, responses)
        return _TokenModel.log_prob(self, prompts, responses).to(torch.float64).reshape(1, X, Y)

    def mixture_sampler(self, other, beta) -> "TransformerMixture":
        """The token-level geometric mixture self^{1−β} other^β, each model with its own KV cache
        (:class:`~llm_backend.sampling.TransformerMixture`)."""
        from .sampling import TransformerMixture

        return TransformerMixture(self, other, beta)

    def snapshot(self) -> "TransformerPolicy":
        """A frozen deep copy (eval mode, no gradient, detached log-probs); a snapshot's snapshot is itself."""
        if self.frozen:
            return self
        frozen = copy.deepcopy(self)
        frozen.eval()
        for weight in frozen.parameters():
            weight.requires_grad_(False)
            weight.grad = None
        frozen.frozen = True
        return frozen
