"""A HuggingFace causal language model as a :class:`~preference_games.protocols.Policy`.

:class:`TransformerPolicy` wraps any ``AutoModelForCausalLM`` and is what
:class:`~preference_games.sequences.AutoregressivePolicy` is for a GRU: the unchanged algorithms train it through
:class:`~preference_games.training.TrainingStep`. It runs in one of two layouts:

* **text** (``response_vocab=None``): responses are drawn from the whole vocabulary, up to ``length`` new tokens,
  ending at ``eos_id`` (kept, and counted) — a language model trained on prompts from a dataset and judged by a
  reward or preference model;
* **game** (``response_vocab=V``, no EOS): the token layout of a :class:`~preference_games.sequences.SequenceGame`
  (ids 0 … V − 1 are the response tokens, every response has ``length`` of them). The head's logits are sliced to
  those V, so the policy is a distribution over the game's V^L strings and is *enumerated* exactly
  (``sequences.exact_duality_gap``, ``sequences.mixture_tv``).

In both,

    π(y_t | x, y_<t) = softmax(z_t[R])[y_t],     log π(y | x) = Σ_{t < |y|} log π(y_t | x, y_<t),

with z_t the model's logits after reading [x, y_<t] and R the response tokens (all, or the first V). This is the
sum the papers write (IPO-MD eq. 6, INPO eq. 8, DPO); ``length_normalise=True`` gives the per-token mean
(1/|y|)·Σ_t instead, which SimPO-style code uses and TRL does not — the two define different losses.

**Padding.** ``Tokens`` are right-padded everywhere in the project. For a forward pass the policy moves each prompt
to the *left* of its row (left padding), masks the padding out of attention and numbers positions from each
prompt's first real token, so that every prompt's last token sits in the same column and generation appends to
all rows at once; a response's padding comes after its last token, where causal attention hides it from every
position ``log_prob`` keeps.

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
import itertools
import json
import os
import weakref
from dataclasses import dataclass

import torch

from preference_games.sequences import SequenceGame, Tokens, _flat_pair, _positive_int, _TokenModel

SETTINGS_FILE = "preference_games_policy.json"  # what save_pretrained adds beside the model's own files
BASE = "base"  # the weights a LoRA policy's reference reads: the base model with every adapter disabled
_ADAPTER_NAMES = itertools.count()


def _delete_adapter(model_ref, name: str) -> None:
    """Drop a snapshot's adapter once the snapshot is gone (if the model still exists)."""
    model = model_ref()
    if model is not None and name in model.peft_config:
        model.delete_adapter(name)


def _unwrapped(model):
    """The transformers model inside a peft wrapper (the model itself when it has none)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _cache_argument(model) -> str:
    """The keyword that passes a KV cache to ``model.forward``: ``cache`` from transformers 5.2x on,
    ``past_key_values`` before (still accepted, with a deprecation warning, until it is removed)."""
    base = _unwrapped(model)  # a peft model forwards **kwargs: its base's signature says which
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


#: Rotary types whose tables depend on the position alone (not on the sequence length seen so far), so that
#: :meth:`TransformerPolicy._start` can compute them once for every position a decode reaches.
_STATIC_ROPE = ("default", "linear", "llama3")
#: Attention implementations whose function the lean step writes out for its one query, softmax(q·Kᵀ·s + mask)·V
#: (both compute exactly that); others (flash, flex) keep the model's forward.
_LEAN_ATTENTION = ("eager", "sdpa")


def _lean_decoder(model) -> bool:
    """Whether :meth:`TransformerPolicy._lean_step` may decode ``model``'s architecture: a Llama (peft-wrapped or
    not) with a static rotary embedding (:data:`_STATIC_ROPE`) and the module layout it reads. Other architectures
    differ inside the model's ``forward`` (scaled embeddings, sliding windows, biases on norms) and keep it. The
    attention implementation, which can change after a policy is built, is checked when a decode starts."""
    top = _unwrapped(model)
    body = getattr(top, "model", None)
    if getattr(top.config, "model_type", None) != "llama" or not all(
            hasattr(body, name) for name in ("embed_tokens", "layers", "rotary_emb", "norm")):
        return False
    attn = body.layers[0].self_attn
    return (getattr(body.rotary_emb, "rope_type", None) in _STATIC_ROPE and hasattr(top, "lm_head")
            and all(hasattr(attn, name) for name in ("head_dim", "scaling", "layer_idx"))
            and not getattr(top.config, "attention_dropout", 0.0))  # the step has no dropout on attention weights


def _rms_norm(norm, hidden: torch.Tensor) -> torch.Tensor:
    """HF's LlamaRMSNorm, w ⊙ h / √(mean(h²) + ε) computed in float32, without its module call: [..., H]."""
    x = hidden.to(torch.float32)
    x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + norm.variance_epsilon)
    return norm.weight * x.to(hidden.dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(a, b) → (−b, a) on the two halves of the last axis (the rotary embedding's pairing)."""
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), -1)


@dataclass
class _Decoding:
    """What a cached decode carries from one token to the next (one per model, so a mixture keeps two).

    ``cache``: the model's KV cache after the prompts, extended in place by :meth:`TransformerPolicy._hf_step` (the
    lean step keeps its own, ``kv``); ``log_probs`` [N, V]: the next token's; ``padding`` long
    [N, Lp + length]: 1 on every column a query may see (the left-padded prompt's real tokens, then every generated
    token), preallocated, so that a step's mask is a view of its first ``width`` columns; ``padded``: whether any
    prompt is (without padding a step needs no mask: its one query sees the whole cache); ``position`` [N, 1]: the
    position of the last token read; ``width``: columns in the cache. For :meth:`TransformerPolicy._lean_step`
    (else None): ``rotary``, each row's rotary tables (cos, sin) at the positions of its generated tokens
    [N, length, head dim]; ``kv``, each layer's keys and values [N, kv heads, Lp + length, head dim], preallocated
    (the prompt's copied from ``cache``), so that a step writes one column instead of concatenating the whole
    cache; ``mask`` [N, 1, 1, Lp + length], ``padding`` as an additive mask (0 where seen, the dtype's minimum
    elsewhere; None without padding).
    """

    cache: object
    log_probs: torch.Tensor
    padding: torch.Tensor
    padded: bool
    position: torch.Tensor
    width: int
    rotary: tuple[torch.Tensor, torch.Tensor] | None = None
    kv: list[tuple[torch.Tensor, torch.Tensor]] | None = None
    mask: torch.Tensor | None = None


def tiny_llama(vocab_size: int, *, pad_id: int, bos_id: int | None = None, eos_id: int | None = None,
               hidden: int = 32, layers: int = 2, positions: int = 64, seed: int = 0,
               dtype: torch.dtype = torch.float32, device=None, init_scale: float | None = None):
    """A small ``LlamaForCausalLM`` built from a config — nothing is downloaded — ``hidden`` wide, ``layers`` deep,
    4 query and 2 key-value heads, MLP 2·hidden, initialised from ``seed`` alone (the global RNG is left untouched)
    with weights N(0, init_scale²) (HF's ``initializer_range``, 0.02 by default: a near-uniform policy).
    Eager attention: on the CPU, PyTorch's fused attention (sdpa) moved float64 log-probs by ~3e-8, too much for
    the exact bridge's 1e-10 checks."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=2 * hidden,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=positions, bos_token_id=bos_id, pad_token_id=pad_id,
                         eos_token_id=eos_id, attn_implementation="eager",
                         **({} if init_scale is None else {"initializer_range": init_scale}))
    with torch.random.fork_rng(devices=[]):  # HF initialises from the global RNG: seed it, then restore it
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    return model.to(dtype=dtype, device=device)


def _number(name: str, value, low: float, high: float, *, open_low: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            (low < value if open_low else low <= value) and value <= high):
        raise ValueError(f"{name} must lie in {'(' if open_low else '['}{low}, {high}]; got {value!r}")
    return float(value)


class TransformerPolicy(_TokenModel, torch.nn.Module):
    """π(y | x) from a causal LM (module docstring).

    * ``log_prob(prompts, responses)`` [C, B]: one teacher-forced forward pass over [prompt, response]; the masked
      sum Σ_t log π(y_t | x, y_<t), or with ``length_normalise`` the per-token mean.
      ``enumerate`` always sums, since only the sum is a distribution over strings.
    * ``sample(prompts, n, generator, greedy=False)``: token by token with the model's KV cache — the prompts are
      read once, then each step feeds only the new tokens; ``temperature`` and ``top_p`` (nucleus: the smallest
      set of most likely tokens holding mass ≥ top_p) shape the draw. Both default to 1, the policy itself: with
      other values the responses are *not* draws from π, which an on-policy algorithm assumes (its log-probs and
      losses always use π).
    * ``snapshot()``: a frozen copy (no gradient, detached log-probs) — a deep copy, or with LoRA a second adapter;
      ``view()``: a frozen view of the live weights; ``reference()``: π_ref as the initial policy.

    ``length``: the most new tokens. ``pad_id``: defaults to the model config's ``pad_token_id``.
    """

    def __init__(self, model, length: int, *, response_vocab: int | None = None, eos_id: int | None = None,
                 pad_id: int | None = None, temperature: float = 1.0, top_p: float = 1.0,
                 length_normalise: bool = False):
        super().__init__()
        vocab = model.config.vocab_size
        self.length = _positive_int("length", length)
        if response_vocab is not None:
            response_vocab = _positive_int("response_vocab", response_vocab)
            if vocab <= response_vocab:
                raise ValueError(f"the model's vocabulary ({vocab}) must exceed response_vocab ({response_vocab}): "
                                 "prompts need their own tokens")
            if eos_id is not None:
                raise ValueError("a policy over a game's response tokens has fixed-length responses: no eos_id")
        pad_id = getattr(model.config, "pad_token_id", None) if pad_id is None else pad_id
        if pad_id is None:
            raise ValueError("the model has no pad token id; pass pad_id (e.g. the tokenizer's pad_token_id)")
        for name, token in (("pad_id", pad_id), ("eos_id", eos_id)):
            if token is not None and not 0 <= int(token) < vocab:
                raise ValueError(f"{name} must lie in [0, {vocab}); got {token}")
        self.model, self.response_vocab = model, response_vocab
        self.eos_id, self.pad_id = None if eos_id is None else int(eos_id), int(pad_id)
        self.temperature = _number("temperature", temperature, 0.0, float("inf"), open_low=True)
        self.top_p = _number("top_p", top_p, 0.0, 1.0, open_low=True)
        self.length_normalise, self.frozen = bool(length_normalise), False
        self.adapter = None  # which weights a frozen view reads: None (the model as it is), BASE, or a LoRA adapter
        self._cache_argument = _cache_argument(model)
        self._lean = _lean_decoder(model)

    @classmethod
    def for_game(cls, game: SequenceGame, hidden: int = 32, layers: int = 2, seed: int = 0,
                 dtype: torch.dtype = torch.float32, device=None, *, init_scale: float | None = None,
                 **options) -> "TransformerPolicy":
        """A :func:`tiny_llama` over ``game``'s token layout (game layout: V response tokens, ``game.length``
        of them); ``options`` are the constructor's (temperature, top_p, length_normalise)."""
        model = tiny_llama(game.vocab_size, pad_id=game.pad_id, bos_id=game.bos_id, hidden=hidden, layers=layers,
                           seed=seed, dtype=dtype, device=device, init_scale=init_scale)
        return cls(model, game.length, response_vocab=game.vocab, **options)

    @classmethod
    def tiny(cls, tokenizer, length: int, hidden: int = 32, layers: int = 2, seed: int = 0,
             dtype: torch.dtype = torch.float32, device=None, *, positions: int = 256, **options
             ) -> "TransformerPolicy":
        """A :func:`tiny_llama` over ``tokenizer``'s vocabulary (text layout: up to ``length`` new tokens, ending at
        the tokenizer's EOS); ``options`` are the constructor's (temperature, top_p, length_normalise)."""
        if tokenizer.pad_token_id is None:
            raise ValueError("the tokenizer has no pad token; set tokenizer.pad_token before building a model")
        model = tiny_llama(len(tokenizer), pad_id=tokenizer.pad_token_id, bos_id=tokenizer.bos_token_id,
                           eos_id=tokenizer.eos_token_id, hidden=hidden, layers=layers, positions=positions,
                           seed=seed, dtype=dtype, device=device)
        return cls(model, length, eos_id=tokenizer.eos_token_id, pad_id=tokenizer.pad_token_id, **options)

    @classmethod
    def from_pretrained(cls, path, length: int | None = None, **kwargs) -> "TransformerPolicy":
        """Load a local model directory. The policy's settings (length, response_vocab, eos_id, pad_id, temperature,
        top_p, length_normalise) are read from the file :meth:`save_pretrained` writes beside the weights, and any
        given here override them; a plain HF checkpoint has no such file, so give ``length`` (``eos_id`` then
        defaults to the config's). Other ``kwargs`` go to ``AutoModelForCausalLM.from_pretrained``, e.g. ``dtype``,
        and ``attn_implementation="eager"`` to reproduce :func:`tiny_llama`'s log-probs exactly."""
        from transformers import AutoModelForCausalLM

        if not os.path.isdir(path):
            raise ValueError(f"no model directory at {path}")
        settings_path = os.path.join(path, SETTINGS_FILE)
        settings = {}
        if os.path.exists(settings_path):
            with open(settings_path) as handle:
                settings = json.load(handle)
        names = ("response_vocab", "eos_id", "pad_id", "temperature", "top_p", "length_normalise")
        settings.update({name: kwargs.pop(name) for name in names if name in kwargs})
        if length is not None:
            settings["length"] = length
        if "length" not in settings:
            raise ValueError(f"{path} was not saved by TransformerPolicy: give the response length (max new tokens)")
        try:
            model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
        except (OSError, ValueError) as error:  # no config.json, no weights, an unknown architecture
            raise ValueError(f"cannot load a causal language model from {path}: {str(error).splitlines()[0]}"
                             ) from None
        if "eos_id" not in settings and settings.get("response_vocab") is None:
            eos = model.config.eos_token_id
            settings["eos_id"] = eos[0] if isinstance(eos, (list, tuple)) else eos
        return cls(model, settings.pop("length"), **settings)

    def settings(self) -> dict:
        """What the constructor needs besides the model (written by :meth:`save_pretrained`)."""
        return {"length": self.length, "response_vocab": self.response_vocab, "eos_id": self.eos_id,
                "pad_id": self.pad_id, "temperature": self.temperature, "top_p": self.top_p,
                "length_normalise": self.length_normalise}

    def save_pretrained(self, path) -> None:
        """The model's weights and config in HuggingFace format, and the policy's settings beside them: a
        directory :meth:`from_pretrained` (or any HF loader) reads back. With LoRA, the trained adapter merged into
        a copy of the base — a complete model — and the adapter alone in ``path/adapter`` (peft's format)."""
        if self.is_lora:
            self.model.save_pretrained(os.path.join(path, "adapter"))
            merged = copy.deepcopy(self.model).merge_and_unload()  # a copy: the training model keeps its adapter
            merged.save_pretrained(path)
        else:
            self.model.save_pretrained(path)
        self._save_settings(path)

    def _save_settings(self, path) -> None:
        """The policy's settings (:meth:`settings`) beside its weights, where :meth:`from_pretrained` reads them."""
        with open(os.path.join(path, SETTINGS_FILE), "w") as handle:
            json.dump(self.settings(), handle, indent=1)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # ---------------------------------------------------------------------------------------------- checks
    def check(self, prompts: Tokens, responses: Tokens | None = None) -> None:
        """One-line ValueErrors for what the model cannot read: empty or over-long prompt lengths, tokens outside
        its vocabulary, response tokens outside the response vocabulary, more positions than
        ``max_position_embeddings``."""
        vocab = self.model.config.vocab_size
        Lp = prompts.ids.shape[-1]
        if bool(((prompts.lengths < 1) | (prompts.lengths > Lp)).any()):
            raise ValueError(f"every prompt needs a length in [1, {Lp}] (the width of its ids)")
        inside = torch.arange(Lp, device=prompts.ids.device) < prompts.lengths[..., None]  # [C, B, Lp]
        if bool((inside & ((prompts.ids < 0) | (prompts.ids >= vocab))).any()):
            raise ValueError(f"prompt tokens must lie in [0, {vocab})")
        width = self.length if responses is None else responses.ids.shape[-1]
        if responses is not None:
            inside = torch.arange(width, device=responses.ids.device) < responses.lengths[..., None]  # [C, B, L]
            high = vocab if self.response_vocab is None else self.response_vocab
            bad = inside & ((responses.ids < 0) | (responses.ids >= high))
            if bool(bad.any()):
                raise ValueError(f"response tokens must lie in the response vocabulary [0, {high}); "
                                 f"got {int(responses.ids[bad][0])}")
        limit = getattr(self.model.config, "max_position_embeddings", None)
        if limit is not None and Lp + width > limit:
            raise ValueError(f"a prompt of {Lp} tokens and a response of {width} need {Lp + width} positions; the "
                             f"model has max_position_embeddings={limit}")

    # ------------------------------------------------------------------------------------------ primitives
    def _response_log_probs(self, logits: torch.Tensor) -> torch.Tensor:
        """log π(· | prefix) over the response tokens: logits [..., vocab] → [..., V] (V = vocab in text layout).
        Float32 at least: a bf16 log-softmax would round log-probs to ~3 significant digits."""
        if self.response_vocab is not None:
            logits = logits[..., : self.response_vocab]
        return torch.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), -1)

    def _forward(self, ids: torch.Tensor, mask: torch.Tensor | None = None, positions: torch.Tensor | None = None,
                 cache=None) -> torch.Tensor:
        """The model's logits [N, T, vocab] for ids [N, T] (attention ``mask`` [N, T_past + T], ``positions``
        [N, T]), continuing ``cache`` (updated in place) if given."""
        extra = {} if cache is None else {self._cache_argument: cache}
        with self._weights():
            return self.model(input_ids=ids, attention_mask=mask, position_ids=positions,
                              use_cache=cache is not None, **extra).logits

    def _left(self, prompts: Tokens) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded prompts [C, B, Lp] → left-padded ids [N, Lp] and their attention mask [N, Lp]."""
        Lp = prompts.ids.shape[-1]
        ids, lengths = prompts.ids.reshape(-1, Lp), prompts.lengths.reshape(-1, 1)  # [N, Lp], [N, 1]
        column = torch.arange(Lp, device=ids.device)  # [Lp]
        mask = column >= Lp - lengths  # [N, Lp]: the last ``length`` columns hold the prompt
        source = (column - (Lp - lengths)).clamp(min=0)  # [N, Lp]: which right-padded column lands here
        return torch.where(mask, ids.gather(1, source), self.pad_id), mask.long()

    def _full_pass_mask(self, mask: torch.Tensor) -> torch.Tensor | None:
        """The attention mask of a pass that starts from an empty cache, from the 2-D padding mask [N, T]: None
        without padding (the model's own causal mask), else an additive 4-D mask [N, 1, T, T] — causal, padding
        hidden, and each padding position allowed to see *itself*. Without that a padding query sees nothing; HF
        softmaxes attention in float32, where the float64 mask's minimum becomes −inf, so the row is NaN, and the
        NaN reaches every real token through the zero-weighted values of later layers."""
        if bool(mask.all()):
            return None
        T = mask.shape[-1]
        diagonal = torch.eye(T, dtype=torch.bool, device=mask.device)
        allowed = torch.tril(torch.ones_like(diagonal)) & (mask.bool()[:, None, :] | diagonal)  # [N, T, T]
        additive = torch.zeros(allowed.shape, dtype=self.dtype, device=mask.device)
        return additive.masked_fill(~allowed, torch.finfo(self.dtype).min)[:, None]  # [N, 1, T, T]

    @staticmethod
    def _positions(mask: torch.Tensor) -> torch.Tensor:
        """Positions counted from each row's first real token (0 on the padding before it): [N, T]."""
        return (mask.cumsum(-1) - 1).clamp(min=0)

    def token_log_probs(self, prompts: Tokens, responses: Tokens) -> torch.Tensor:
        """log π(· | x, y_<t) at every response position t, teacher-forced in one pass: [C·B, L, V]."""
        prompts, responses, C, B = _flat_pair(prompts, responses)
        Lp, L = prompts.shape[-1], responses.shape[-1]
        prompt_ids, prompt_mask = self._left(prompts)  # [N, Lp] each
        ids = responses.ids.reshape(C * B, L)  # [N, L]
        # PAD past a response's end may be any id: causal attention hides it from the positions log_prob keeps
        ids = torch.where(torch.arange(L, device=ids.device) < responses.lengths.reshape(-1, 1), ids, self.pad_id)
        mask = torch.cat([prompt_mask, torch.ones_like(ids[:, :-1])], -1)  # [N, Lp + L − 1]
        # not enable_grad for a trainable policy: a caller's no_grad (sampling, a mixture) must still hold
        with torch.no_grad() if self.frozen else contextlib.nullcontext():
            logits = self._forward(torch.cat([prompt_ids, ids[:, :-1]], -1), self._full_pass_mask(mask),
                                   self._positions(mask))
            return self._response_log_probs(logits[:, Lp - 1:])  # [N, L, V]: column Lp−1+t predicts y_t

    def _start(self, prompts: Tokens) -> "_Decoding":
        """Read the prompts into a fresh KV cache: the decoding state after the prompts (:class:`_Decoding`)."""
        from transformers import DynamicCache

        cache = DynamicCache()
        ids, mask = self._left(prompts)  # [N, Lp]
        positions = self._positions(mask)  # [N, Lp]
        logits = self._forward(ids, self._full_pass_mask(mask), positions, cache)  # [N, Lp, vocab]
        N, Lp = mask.shape
        # every column past the prompt will hold a generated token, which every later query may see
        padding = torch.cat([mask, mask.new_ones(N, self.length)], -1)  # [N, Lp + length]
        state = _Decoding(cache, self._response_log_probs(logits[:, -1]), padding, not bool(mask.all()),
                          positions[:, -1:], Lp)
        if self._lean and self.model.config._attn_implementation in _LEAN_ATTENTION and hasattr(cache, "layers"):
            top = _unwrapped(self.model)
            reach = positions[:, -1:] + torch.arange(1, self.length + 1, device=mask.device)  # [N, length]
            state.rotary = top.model.rotary_emb(logits.new_empty(0, dtype=self.dtype), reach)  # [N, length, d] each
            state.kv = []
            for layer in cache.layers:  # [N, kv heads, Lp, d] each → [N, kv heads, Lp + length, d]
                keys, values = (torch.cat([t, t.new_empty(*t.shape[:2], self.length, t.shape[-1])], -2)
                                for t in (layer.keys, layer.values))
                state.kv.append((keys, values))
            if state.padded:
                state.mask = torch.zeros(padding.shape, dtype=self.dtype, device=mask.device).masked_fill(
                    padding == 0, torch.finfo(self.dtype).min)[:, None, None]  # [N, 1, 1, Lp + length]
        return state

    def _next(self, state: "_Decoding") -> torch.Tensor:
        return state.log_probs  # [N, V]

    def _advance(self, state: "_Decoding", tokens: torch.Tensor) -> "_Decoding":
        """Feed only the new tokens [N]; the cache holds the keys and values of everything before. Updates
        ``state`` in place and returns it."""
        state.width += 1
        state.position = state.position + 1  # [N, 1]: one past the last token read, in every row
        step = self._hf_step if state.rotary is None else self._lean_step
        logits = step(tokens[:, None], state)  # [N, 1, vocab]
        state.log_probs = self._response_log_probs(logits[:, -1])
        return state

    def _hf_step(self, tokens: torch.Tensor, state: "_Decoding") -> torch.Tensor:
        """One decoding step through the model's own ``forward``: logits [N, 1, vocab] for tokens [N, 1]. Without
        padding the mask is None (the query sees the whole cache, which is the causal mask of one new token)."""
        mask = state.padding[:, : state.width] if state.padded else None  # [N, T + 1], a view
        return self._forward(tokens, mask, state.position, state.cache)

    def _lean_step(self, tokens: torch.Tensor, state: "_Decoding") -> torch.Tensor:
        """The same step as :meth:`_hf_step` written out for a Llama (:func:`_lean_decoder`) under eager or sdpa
        attention, from the model's own weights and linear maps (LoRA's included): logits [N, 1, vocab].

        Per layer, with h [N, 1, H] and RMS(h) = w ⊙ h / √(mean(h²) + ε) (in float32, as HF's LlamaRMSNorm):

            q, k, v = RMS(h) W_q, W_k, W_v;   q, k ← q·cos + rot(q)·sin, k·cos + rot(k)·sin  (rot(a, b) = (−b, a))
            K, V ← [K, k], [V, v];   a = softmax(q Kᵀ·s + mask) V   (s = 1/√head dim; query head j reads kv head
            j // g, g query heads per kv head; the softmax in float32, as HF's eager attention)
            h ← h + a W_o;   h ← h + W_down (silu(RMS(h) W_gate) ⊙ RMS(h) W_up)

        then the head on RMS(h). The model's ``forward`` computes the same function; the tests compare both, and
        teacher forcing, at 1e-13 in float64 under eager attention (PyTorch's sdpa kernel on the CPU is itself
        ~1e-8 off exact attention in float64, and compared at 1e-7). Kept out: the per-call machinery (mask
        construction, output records, hooks, argument plumbing), the growing concatenation of the KV cache
        (``state.kv`` is preallocated and the step writes one column), the per-step rotary tables
        (``state.rotary`` holds them for every step) and sdpa's kernel set-up for one query (150 µs a call on the
        CPU at 80 keys, more than the arithmetic; the attention above is three small operations). At this
        project's model sizes a one-token ``forward`` is mostly that machinery: drawing 16 sequences of 64 tokens
        took a third of the time through this step (measured on the benchmark's 87k-parameter Llama, sdpa: 0.055
        against 0.148 s)."""
        top = _unwrapped(self.model)
        body = top.model
        T = state.width  # keys once this token's are in
        t = T - 1 - (state.padding.shape[-1] - self.length)  # which generated token this is (0 for the first)
        mask = None if state.mask is None else state.mask[..., :T]  # [N, 1, 1, T]
        cos, sin = (table[:, t:t + 1, None] for table in state.rotary)  # [N, 1, 1, head dim] each
        N = tokens.shape[0]
        with self._weights():
            hidden = body.embed_tokens(tokens)  # [N, 1, H]
            for layer, (keys, values) in zip(body.layers, state.kv):
                attn = layer.self_attn
                x = _rms_norm(layer.input_layernorm, hidden)
                q, k, v = (project(x).view(N, -1, 1, attn.head_dim)  # [N, heads, 1, head dim]: one position
                           for project in (attn.q_proj, attn.k_proj, attn.v_proj))
                q, k = q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin
                keys[:, :, T - 1:T], values[:, :, T - 1:T] = k, v
                Hk = keys.shape[1]
                q = q.view(N, Hk, -1, attn.head_dim)  # [N, kv heads, g, head dim]: query heads by their kv head
                scores = torch.matmul(q, keys[:, :, :T].transpose(2, 3)) * attn.scaling  # [N, kv heads, g, T]
                if mask is not None:
                    scores = scores + mask
                weights = torch.softmax(scores, -1, dtype=torch.float32).to(q.dtype)
                out = torch.matmul(weights, values[:, :, :T])  # [N, kv heads, g, head dim]
                hidden = hidden + attn.o_proj(out.reshape(N, 1, -1))
                hidden = hidden + layer.mlp(_rms_norm(layer.post_attention_layernorm, hidden))
            return top.lm_head(_rms_norm(body.norm, hidden))  # [N, 1, vocab]

    def _warp(self, log_probs: torch.Tensor) -> torch.Tensor:
        """Temperature, then top-p, on the next-token log-probs [N, V] that ``sample`` draws from."""
        if self.temperature != 1.0:
            log_probs = torch.log_softmax(log_probs / self.temperature, -1)
        if self.top_p < 1.0:
            ordered, order = log_probs.sort(-1, descending=True)  # [N, V]
            before = ordered.exp().cumsum(-1) - ordered.exp()  # mass of the more likely tokens
            ordered = ordered.masked_fill(before >= self.top_p, -torch.inf)  # the most likely token always stays
            log_probs = torch.log_softmax(torch.full_like(log_probs, -torch.inf).scatter(-1, order, ordered), -1)
        return log_probs

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
        """n responses of at most ``length`` tokens per prompt (``length`` exactly without EOS), prompt b's at
        b·n … b·n + n − 1: Tokens [C, B·n, L'] (L' the longest drawn). ``greedy`` takes the argmax (``generator``
        unused)."""
        self.check(prompts)
        return super().sample(prompts, n, generator, greedy=greedy)

    def enumerate(self, game: SequenceGame) -> torch.Tensor:
        """log π(y | x) (the sum, whatever ``length_normalise``) for every prompt and response string of ``game``:
        float64 [1, X, Y], summing to 1 over Y up to the model's rounding (1e-15 in float64, ~1e-6 in float32)."""
        if (game.vocab, game.length, game.vocab_size, None) != (self.response_vocab, self.length,
                                                                self.model.config.vocab_size, self.eos_id):
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
        """A frozen copy of the policy as it is now (no gradient, detached log-probs); a snapshot's snapshot is
        itself. With LoRA, a second *adapter* holding a copy of the trained adapter's weights, read through the same
        base model (deleted when the snapshot is garbage-collected); otherwise a deep copy of the model."""
        if self.frozen:
            return self
        if self.is_lora:
            name = f"snapshot-{next(_ADAPTER_NAMES)}"
            self.model.add_adapter(name, self.model.peft_config[self.model.active_adapter])
            with torch.no_grad():
                weights = dict(self.model.named_parameters())
                for key, weight in weights.items():
                    if f".{name}." in key:  # this adapter's copy of the trained adapter's weight
                        weight.copy_(weights[key.replace(f".{name}.", f".{self.model.active_adapter}.")])
            view = self._view(name)
            weakref.finalize(view, _delete_adapter, weakref.ref(self.model), name)
            return view
        frozen = copy.deepcopy(self)
        frozen.eval()
        for weight in frozen.parameters():
            weight.requires_grad_(False)
            weight.grad = None
        frozen.frozen = True
        return frozen

    def view(self) -> "TransformerPolicy":
        """A frozen policy reading *this* policy's current weights, without copying them: what the pair sampler
        draws a step's responses from (:func:`~preference_games.protocols.live_view`). It changes when the policy
        is trained; keep a :meth:`snapshot` for anything that must stay."""
        return self._view(self.adapter)

    # ------------------------------------------------------------------------------------------------- LoRA
    @property
    def is_lora(self) -> bool:
        """Whether the model is a peft LoRA model (base weights frozen, adapters trained)."""
        return hasattr(self.model, "peft_config") and hasattr(self.model, "disable_adapter")

    def with_lora(self, r: int = 8, alpha: float = 16, dropout: float = 0.0,
                  target_modules="all-linear") -> "TransformerPolicy":
        """A policy over this model wrapped by peft's LoRA (Hu et al. 2021): every targeted linear map W becomes
        W + (alpha/r)·B A with A [r, in], B [out, r] trained and W frozen; B starts at 0, so the new policy equals
        this one. Its :meth:`reference` is the base model with the adapter disabled and its :meth:`snapshot` a
        second adapter — neither copies the model. The model is wrapped in place: use the returned policy."""
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(r=_positive_int("r", r), lora_alpha=alpha, lora_dropout=dropout,
                            target_modules=target_modules, task_type="CAUSAL_LM")
        settings = self.settings()
        return type(self)(get_peft_model(self.model, config), settings.pop("length"), **settings)

    def reference(self) -> "TransformerPolicy":
        """π_ref as the initial policy: with LoRA the base model with every adapter disabled (no copy), which is
        the policy itself before training moved the adapter; otherwise a :meth:`snapshot`."""
        return self._view(BASE) if self.is_lora else self.snapshot()

    def _view(self, adapter) -> "TransformerPolicy":
        """A frozen policy sharing this one's model and reading the weights named by ``adapter``."""
        view = copy.copy(self)  # shares the model (and its parameters): nothing is copied
        view.frozen, view.adapter = True, adapter
        return view

    @contextlib.contextmanager
    def _weights(self):
        """Run the model with the weights this policy reads: the base with adapters disabled (BASE), a snapshot
        adapter (switched in for the call, then back to the trained one), or the model as it is."""
        if self.adapter is None:
            yield
        elif self.adapter == BASE:
            with self.model.disable_adapter():
                yield
        else:
            trained = self.model.active_adapter
            self.model.set_adapter(self.adapter, inference_mode=True)
            try:
                yield
            finally:
                self.model.set_adapter(trained)  # peft marks the trained adapter's weights trainable again
