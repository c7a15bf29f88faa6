"""Text ↔ :class:`~preference_games.sequences.Tokens`: tokenizers built in code, and the codec the trainer reads
prompts and offline responses through.

* :func:`char_tokenizer` — a character-level ``PreTrainedTokenizerFast`` (one id per character, ``<pad>``, ``<bos>``,
  ``<eos>``, ``<unk>``), the tokenizer of the ``tiny`` model: nothing is downloaded.
* :func:`game_tokenizer` — a tokenizer whose ids *are* a :class:`~preference_games.sequences.SequenceGame`'s token
  layout (response token t is the letter ``"abc…"[t]``, prompt x is ``"<bos><x{x}>"``), so a text pipeline and the
  exact engine see the same ids.
* :class:`TextCodec` — prompts (plain strings or chat conversations) and responses to right-padded ``Tokens``
  [1, B, L] and back.

>>> codec = TextCodec(char_tokenizer())
>>> prompts = codec.encode_prompts(["Hi!", "2+2="])          # Tokens [1, 2, 5]: BOS, then one id per character
>>> prompts.ids.shape, prompts.lengths.tolist()
(torch.Size([1, 2, 5]), [[4, 5]])
>>> codec.decode_prompts(prompts)
['Hi!', '2+2=']
>>> codec.decode_responses(codec.encode_responses(["4", " four "]))   # EOS appended, then skipped when decoding
['4', ' four ']
"""

from __future__ import annotations

import string

import torch

from preference_games.sequences import SequenceGame, Tokens

#: The default alphabet of :func:`char_tokenizer`: printable ASCII without the rarely used whitespace (tab, carriage
#: return, vertical tab, form feed), which encode to ``<unk>``.
PRINTABLE = string.ascii_letters + string.digits + string.punctuation + " \n"

#: :func:`game_tokenizer` writes response token t as the t-th lower-case letter.
GAME_LETTERS = string.ascii_lowercase


def _fast_tokenizer(vocab: dict[str, int], special: dict[str, str], extra_tokens: list[str] = ()):
    """A ``PreTrainedTokenizerFast`` over ``vocab`` that reads one character at a time.

    ``special``: role → token (``"pad_token": "<pad>"``, …), every token already in ``vocab``;
    ``extra_tokens``: more multi-character vocabulary entries matched whole in text (not special, so decoding keeps
    them)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    model = Tokenizer(models.WordLevel(vocab, unk_token=special.get("unk_token")))
    # Every character its own word, whitespace included: WordLevel then maps each to its id (``[\s\S]`` because
    # Oniguruma's ``.`` skips newlines).
    model.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    # The default decoder joins tokens with spaces; Fuse concatenates them, so decoding gives back the exact string.
    model.decoder = decoders.Fuse()
    # Registered as added tokens so that "<bos>" in a text (a chat template writes it) is one token, not five.
    model.add_special_tokens(list(special.values()))
    model.add_tokens(list(extra_tokens))
    # clean_up_tokenization_spaces would turn "a ." into "a." when decoding.
    return PreTrainedTokenizerFast(tokenizer_object=model, clean_up_tokenization_spaces=False, **special)


def char_tokenizer(alphabet: str | None = None):
    """A character-level tokenizer built in code: ids 0 … 3 are ``<pad>``, ``<bos>``, ``<eos>``, ``<unk>``, then one
    id per character of ``alphabet`` in order (default :data:`PRINTABLE`); characters outside it encode to ``<unk>``.

    Decoding gives back the exact string, spaces and newlines included, for any text over the alphabet that does not
    contain a special token's spelling (like every HF tokenizer, it reads ``"<eos>"`` in a text as the EOS token).
    Saves and loads with ``save_pretrained`` / ``AutoTokenizer.from_pretrained``. No chat template: set
    ``tokenizer.chat_template`` to add one.

    >>> tok = char_tokenizer("ab ")
    >>> tok("ab a", add_special_tokens=False).input_ids, len(tok)
    ([4, 5, 6, 4], 7)
    >>> tok.decode([1, 4, 6, 5, 2], skip_special_tokens=True)
    'a b'
    >>> tok.pad_token_id, tok.bos_token_id, tok.eos_token_id, tok.unk_token_id
    (0, 1, 2, 3)
    """
    alphabet = PRINTABLE if alphabet is None else alphabet
    if not alphabet:
        raise ValueError("the alphabet must hold at least one character")
    if len(set(alphabet)) != len(alphabet):
        repeated = sorted({c for c in alphabet if alphabet.count(c) > 1})
        raise ValueError(f"the alphabet repeats {''.join(repeated)!r}")
    special = {"pad_token": "<pad>", "bos_token": "<bos>", "eos_token": "<eos>", "unk_token": "<unk>"}
    vocab = {token: i for i, token in enumerate([*special.values(), *alphabet])}
    return _fast_tokenizer(vocab, special)


def game_tokenizer(game: SequenceGame):
    """A tokenizer whose ids are exactly ``game``'s token layout (``preference_games.sequences``): ids 0 … V − 1 are
    the response tokens ``"a"``, ``"b"``, …; id V is ``<pad>``, id V + 1 ``<bos>``, ids V + 2 + x the prompt tokens
    ``<x0>``, ``<x1>``, … No EOS and no ``<unk>``: responses have a fixed length, and any other character is an error.

    >>> from preference_games.sequences import sequence_game_by_name
    >>> tok = game_tokenizer(sequence_game_by_name("rps-sequences"))      # V = 3, one prompt
    >>> tok.decode([0, 2, 1]), tok("<bos><x0>", add_special_tokens=False).input_ids
    ('acb', [4, 5])
    """
    V, X = game.vocab, game.num_prompts
    if V > len(GAME_LETTERS):
        raise ValueError(f"game_tokenizer spells response tokens as letters, so it handles at most "
                         f"{len(GAME_LETTERS)} of them; this game has {V}")
    prompt_tokens = [f"<x{x}>" for x in range(X)]
    vocab = {token: i for i, token in enumerate([*GAME_LETTERS[:V], "<pad>", "<bos>", *prompt_tokens])}
    return _fast_tokenizer(vocab, {"pad_token": "<pad>", "bos_token": "<bos>"}, prompt_tokens)


def game_prompt_texts(game: SequenceGame) -> list[str]:
    """The text of every prompt of ``game`` in index order, ``"<bos><x0>"``, ``"<bos><x1>"``, … (its
    :func:`game_tokenizer` encodes prompt x to ``game.prompt_tokens`` of x)."""
    return [f"<bos><x{x}>" for x in range(game.num_prompts)]


def game_response_texts(game: SequenceGame) -> list[str]:
    """Every response string of ``game`` in its index order (lexicographic: ``"aaa"``, ``"aab"``, …).

    >>> from preference_games.sequences import sequence_game_by_name
    >>> game_response_texts(sequence_game_by_name("rps-sequences"))[:4]
    ['aaa', 'aab', 'aac', 'aba']
    """
    if game.vocab > len(GAME_LETTERS):
        raise ValueError(f"at most {len(GAME_LETTERS)} response tokens can be spelled as letters; this game has "
                         f"{game.vocab}")
    return ["".join(GAME_LETTERS[t] for t in row) for row in game.responses().ids[0].tolist()]


def is_conversation(prompt) -> bool:
    """Whether ``prompt`` is a conversation in TRL's format: a non-empty list of ``{"role": str, "content": str}``."""
    return (isinstance(prompt, list) and len(prompt) > 0
            and all(isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
                    for m in prompt))


def encode_each(kind: str, items, encode) -> list[list[int]]:
    """``encode`` applied to every item of a non-empty list, a failure reported as one line naming the item
    (``"{kind} {i}: …"``)."""
    if isinstance(items, str) or not isinstance(items, (list, tuple)):
        raise ValueError(f"{kind}s must be a list; got {type(items).__name__}")
    if not items:
        raise ValueError(f"no {kind}s to encode (an empty list)")
    rows = []
    for i, item in enumerate(items):
        try:
            rows.append(encode(item))
        except ValueError as error:
            raise ValueError(f"{kind} {i}: {error}") from None
    return rows


class TextCodec:
    """Prompts and responses as text ↔ right-padded :class:`~preference_games.sequences.Tokens` [1, B, L].

    **Prompts.** A prompt is a string or a conversation (TRL's conversational format: a list of
    ``{"role", "content"}`` messages).

    * *With a chat template* (``chat_template=True``, or ``None`` and the tokenizer has one): a string ``s`` is the
      conversation ``[{"role": "user", "content": s}]``; the conversation is rendered with
      ``add_generation_prompt=True`` (so the response is the assistant's turn) and the rendered text tokenized
      without adding special tokens — the template writes its own BOS, and adding another would double it.
    * *Without one*: the string is tokenized as is and the tokenizer's BOS, when it has one, is put in front unless
      the text already starts with it. Causal LMs are trained with BOS at position 0 (Llama's tokenizer adds it
      itself; GPT-2's has none to add), and prompting from the same start is what keeps their first-token
      predictions sane. A conversation needs a chat template: a one-line error otherwise.

    **Long prompts** (``max_prompt_tokens``): the *last* tokens are kept (left truncation) — the end of a prompt holds
    the question and, with a template, the assistant header the response must follow; cutting there would have the
    model continue the user's text. A leading BOS stays in front of the kept tokens.

    **Responses** (offline chosen/rejected text): tokenized without special tokens, then the tokenizer's EOS appended
    when it has one, since a response the policy generates ends with the EOS it stopped on.

    **Decoding** keeps each sequence's first ``lengths`` tokens and drops special tokens (BOS, EOS, PAD).

    >>> codec = TextCodec(char_tokenizer(), max_prompt_tokens=4)
    >>> codec.decode_prompts(codec.encode_prompts(["a long prompt"]))     # BOS and the last 3 characters
    ['mpt']
    """

    def __init__(self, tokenizer, *, chat_template: bool | None = None, max_prompt_tokens: int | None = None):
        if tokenizer.pad_token_id is None:
            raise ValueError("the tokenizer has no pad token; set tokenizer.pad_token (e.g. to its eos token) before "
                             "training")
        has_template = bool(getattr(tokenizer, "chat_template", None))
        if chat_template and not has_template:
            raise ValueError("chat_template=True but the tokenizer has no chat template; set tokenizer.chat_template")
        if max_prompt_tokens is not None and (isinstance(max_prompt_tokens, bool) or int(max_prompt_tokens)
                                              != max_prompt_tokens or max_prompt_tokens < 1):
            raise ValueError(f"max_prompt_tokens must be an integer >= 1 or None; got {max_prompt_tokens!r}")
        self.tokenizer = tokenizer
        self.uses_chat_template = has_template if chat_template is None else bool(chat_template)
        self.max_prompt_tokens = None if max_prompt_tokens is None else int(max_prompt_tokens)

    @property
    def pad_id(self) -> int:
        return self.tokenizer.pad_token_id

    @property
    def eos_id(self) -> int | None:
        return self.tokenizer.eos_token_id

    @property
    def bos_id(self) -> int | None:
        return self.tokenizer.bos_token_id

    # --------------------------------------------------------------------------------------------- one sequence
    def _text_ids(self, text: str) -> list[int]:
        try:
            return self.tokenizer(text, add_special_tokens=False)["input_ids"]
        except Exception as error:  # the Rust tokenizer's errors are bare Exceptions ("WordLevel error: …")
            raise ValueError(f"the tokenizer cannot encode {text!r}: {error}") from None

    def prompt_ids(self, prompt) -> list[int]:
        """One prompt (string or conversation) → its token ids, truncated to ``max_prompt_tokens`` (class
        docstring)."""
        if not isinstance(prompt, str) and not is_conversation(prompt):
            raise ValueError(f"a prompt must be a string or a list of {{'role': str, 'content': str}} messages; got "
                             f"{type(prompt).__name__}")
        if self.uses_chat_template:
            messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
            ids = self._text_ids(self.tokenizer.apply_chat_template(messages, tokenize=False,
                                                                    add_generation_prompt=True))
        elif isinstance(prompt, str):
            ids = self._text_ids(prompt)
            if self.bos_id is not None and ids[:1] != [self.bos_id]:
                ids = [self.bos_id, *ids]
        else:
            raise ValueError("a conversational prompt (a list of messages) needs a chat template; the tokenizer has "
                             "none (set tokenizer.chat_template)")
        if not ids:
            raise ValueError(f"the prompt {prompt!r} encodes to no tokens (and the tokenizer has no BOS to start it)")
        limit = self.max_prompt_tokens
        if limit is not None and len(ids) > limit:
            keep_bos = self.bos_id is not None and ids[0] == self.bos_id
            ids = [ids[0], *ids[len(ids) - limit + 1:]] if keep_bos else ids[-limit:]
        return ids

    def response_ids(self, response: str) -> list[int]:
        """One response string → its token ids, the tokenizer's EOS appended when it has one."""
        if not isinstance(response, str):
            raise ValueError(f"a response must be a string; got {type(response).__name__}")
        ids = self._text_ids(response)
        return ids if self.eos_id is None else [*ids, self.eos_id]

    def pad(self, rows: list[list[int]], device=None) -> Tokens:
        """Token id lists → Tokens [1, B, max length], right-padded with the pad id."""
        lengths = torch.tensor([len(row) for row in rows], dtype=torch.long)  # [B]
        ids = torch.full((len(rows), int(lengths.max())), self.pad_id, dtype=torch.long)  # [B, L]
        for b, row in enumerate(rows):
            ids[b, :len(row)] = torch.tensor(row, dtype=torch.long)
        return Tokens(ids[None].to(device), lengths[None].to(device))

    # ------------------------------------------------------------------------------------------------- batches
    def encode_prompts(self, prompts: list, device=None) -> Tokens:
        """Strings or conversations → Tokens [1, B, Lp], right-padded (class docstring)."""
        return self.pad(encode_each("prompt", prompts, self.prompt_ids), device)

    def encode_responses(self, responses: list[str], device=None) -> Tokens:
        """Response strings → Tokens [1, B, L], each ending with EOS when the tokenizer has one, right-padded."""
        return self.pad(encode_each("response", responses, self.response_ids), device)


    def decode(self, tokens: Tokens) -> list[str]:
        """Each sequence's first ``lengths`` tokens as text, special tokens dropped, in C·B order."""
        ids = tokens.ids.reshape(-1, tokens.ids.shape[-1]).tolist()  # [C·B, L]
        lengths = tokens.lengths.reshape(-1).tolist()  # [C·B]
        return self.tokenizer.batch_decode([row[:n] for row, n in zip(ids, lengths)], skip_special_tokens=True,
                                           clean_up_tokenization_spaces=False)

    def decode_prompts(self, prompts: Tokens) -> list[str]:
        """Prompt Tokens [C, B, Lp] → C·B strings (a chat template's markup stays; BOS does not)."""
        return self.decode(prompts)

    def decode_responses(self, responses: Tokens) -> list[str]:
        """Response Tokens [C, B, L] → C·B strings (without their EOS)."""
        return self.decode(responses)
