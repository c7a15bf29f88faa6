"""Prompt and preference datasets in TRL's conventions, and the epoch walk that samples them.

**Formats** (TRL's "prompt-only" and "preference" datasets):

* prompts — a ``prompt`` column; a prompt is a string or a conversation (a list of ``{"role", "content"}``
  messages), which :class:`~llm_backend.text.TextCodec` renders with the tokenizer's chat template;
* preferences — ``prompt``, ``chosen`` and ``rejected`` columns. ``chosen`` / ``rejected`` are strings or, in the
  conversational form, one assistant message; either way they become the response *text* (the message's content),
  which the codec encodes with the tokenizer's EOS at the end — the token the policy stops on — rather than the chat
  template's end-of-turn markup. TRL's implicit-prompt form (no ``prompt`` column; ``chosen`` and ``rejected`` are
  whole conversations sharing every message but a last assistant one) is accepted for conversations: the shared
  messages become the prompt. For plain strings it is not (where a prompt ends in a string is a guess).

**Sources**: a local ``.jsonl`` (one JSON object per line, blank lines skipped), ``.json`` (an array of objects, or
an object of equal-length columns) or ``.csv`` file (a header row; strings only, so no conversations); a
``datasets.Dataset`` when the ``datasets`` package is installed; or a list of dicts. Nothing is downloaded. Rows are
counted from 0 in error messages (``dataset[i]``), file lines from 1 (as editors do).

**Sampling** (:class:`PromptDataset`, :class:`PreferenceDataset`): batches walk a random permutation of the rows,
drawn from the caller's generator, epoch after epoch, so every row is seen exactly once per epoch. ``state_dict()``
holds the epoch, the position in it and the permutation; restored together with the generator's state
(``generator.get_state()``), a resumed run draws the same batches as one never interrupted.

>>> from llm_backend.text import TextCodec, char_tokenizer
>>> data = PromptDataset(["What is 2+2?", "Name a colour.", "Say hi."], TextCodec(char_tokenizer()))
>>> generator = torch.Generator().manual_seed(0)
>>> first = data.codec.decode_prompts(data.sample(2, generator))            # Tokens [1, 2, Lp], decoded
>>> second = data.codec.decode_prompts(data.sample(1, generator))           # the epoch's last prompt
>>> sorted(first + second) == sorted(data.prompts), data.epoch, data.position
(True, 0, 3)
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import torch

from preference_games.sequences import Tokens, _positive_int

from .text import TextCodec, encode_each, is_conversation

EXTENSIONS = (".jsonl", ".json", ".csv")


# ===================================================================================================== reading rows
def _dataset_class():
    """``datasets.Dataset`` when the package is installed (it is optional), else None."""
    try:
        from datasets import Dataset
    except ImportError:
        return None
    return Dataset


def _read_json_lines(path: Path) -> list:
    rows = []
    with open(path, encoding="utf-8") as file:
        for number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path} line {number}: malformed JSON ({error.msg})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path} line {number}: expected a JSON object, got {type(row).__name__}")
            rows.append(row)
    return rows


def _read_json(path: Path) -> list:
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} line {error.lineno}: malformed JSON ({error.msg}); a file of one object per line "
                         f"is read as .jsonl") from None
    if isinstance(data, dict):  # columns: {"prompt": [...], ...}
        if not all(isinstance(column, list) for column in data.values()) or len(
                {len(column) for column in data.values()}) > 1:
            raise ValueError(f"{path}: a JSON object must map each column name to a list, all of one length")
        return [dict(zip(data, values)) for values in zip(*data.values())]
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON array of objects or an object of columns, got "
                         f"{type(data).__name__}")
    return data


def _read_rows(source) -> tuple[list, list[str], str]:
    """(rows, column names, how to name the source in errors) from any accepted source (module docstring)."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ValueError(f"no such file: {path}")
        extension = path.suffix.lower()
        if extension == ".csv":
            with open(path, encoding="utf-8", newline="") as file:
                reader = csv.DictReader(file)
                rows = list(reader)
                return rows, list(reader.fieldnames or []), str(path)
        if extension not in EXTENSIONS:
            raise ValueError(f"{path}: unknown extension {extension!r}; use one of {', '.join(EXTENSIONS)}")
        rows, where = (_read_json_lines(path) if extension == ".jsonl" else _read_json(path)), str(path)
    else:
        Dataset = _dataset_class()
        if Dataset is not None and isinstance(source, Dataset):
            return source.to_list(), list(source.column_names), "the dataset"
        if not isinstance(source, (list, tuple)):
            raise ValueError(f"a data source is a path to a {', '.join(EXTENSIONS)} file, a datasets.Dataset or a "
                             f"list of dicts; got {type(source).__name__}")
        rows, where = list(source), "the dataset"
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ValueError(f"{where} row {i}: expected an object (dict) of columns, got {type(row).__name__}")
    columns = list(dict.fromkeys(key for row in rows for key in row))  # every key, in order of first appearance
    return rows, columns, where


def _require(rows: list, columns: list[str], where: str, required: tuple[str, ...]) -> None:
    """One-line errors for a source with no rows or without the ``required`` columns."""
    if not rows:
        raise ValueError(f"{where} is empty (no rows)")
    missing = [name for name in required if name not in columns]
    if missing:
        names = " and ".join(repr(name) for name in missing)
        raise ValueError(f"{where} has no {names} column (columns found: {', '.join(columns) or 'none'})")


def _value(row: dict, name: str, i: int, where: str):
    if name not in row:
        raise ValueError(f"{where} row {i}: no {name!r} value")
    return row[name]


def _prompt(row: dict, i: int, where: str):
    prompt = _value(row, "prompt", i, where)
    if not isinstance(prompt, str) and not is_conversation(prompt):
        raise ValueError(f"{where} row {i}: a prompt must be a string or a list of {{'role': str, 'content': str}} "
                         f"messages; got {type(prompt).__name__}")
    return prompt


def load_prompts(source) -> list:
    """The ``prompt`` column of a prompt-only dataset: strings and conversations (module docstring: sources).

    >>> load_prompts([{"prompt": "Hi"}, {"prompt": [{"role": "user", "content": "Yo"}]}])
    ['Hi', [{'role': 'user', 'content': 'Yo'}]]
    """
    rows, columns, where = _read_rows(source)
    _require(rows, columns, where, ("prompt",))
    return [_prompt(row, i, where) for i, row in enumerate(rows)]


def _response_text(value, name: str, i: int, where: str) -> str:
    """A chosen/rejected value → its text: a string, or the content of one assistant message."""
    if isinstance(value, str):
        return value
    if is_conversation(value) and len(value) == 1 and value[0]["role"] == "assistant":
        return value[0]["content"]
    got = (f"{len(value)} message(s), the last from {value[-1]['role']!r}" if is_conversation(value)
           else type(value).__name__)
    raise ValueError(f"{where} row {i}: {name} must be a string or one assistant message; got {got}")


def _implicit_prompt(row: dict, i: int, where: str) -> dict:
    """TRL's implicit-prompt conversational row → prompt (the shared messages), chosen, rejected (the last ones)."""
    chosen, rejected = _value(row, "chosen", i, where), _value(row, "rejected", i, where)
    if not (is_conversation(chosen) and is_conversation(rejected) and len(chosen) > 1
            and chosen[:-1] == rejected[:-1]):
        raise ValueError(f"{where} row {i}: without a 'prompt' column, chosen and rejected must be conversations "
                         f"sharing every message but the last (TRL's implicit-prompt form; plain strings need a "
                         f"'prompt' column)")
    return {"prompt": chosen[:-1], "chosen": chosen[-1:], "rejected": rejected[-1:]}


def load_preferences(source) -> list[dict]:
    """Rows ``{"prompt": str | conversation, "chosen": str, "rejected": str}`` of a preference dataset (module
    docstring: formats, sources).

    >>> load_preferences([{"prompt": "2+2=", "chosen": "4", "rejected": "5"}])
    [{'prompt': '2+2=', 'chosen': '4', 'rejected': '5'}]
    >>> talk = [{"role": "user", "content": "2+2?"}]
    >>> load_preferences([{"chosen": talk + [{"role": "assistant", "content": "4"}],
    ...                    "rejected": talk + [{"role": "assistant", "content": "5"}]}])
    [{'prompt': [{'role': 'user', 'content': '2+2?'}], 'chosen': '4', 'rejected': '5'}]
    """
    rows, columns, where = _read_rows(source)
    implicit = "prompt" not in columns and {"chosen", "rejected"} <= set(columns)
    _require(rows, columns, where, ("chosen", "rejected") if implicit else ("prompt", "chosen", "rejected"))
    out = []
    for i, row in enumerate(rows):
        row = _implicit_prompt(row, i, where) if implicit else row
        out.append({"prompt": _prompt(row, i, where),
                    "chosen": _response_text(_value(row, "chosen", i, where), "chosen", i, where),
                    "rejected": _response_text(_value(row, "rejected", i, where), "rejected", i, where)})
    return out


# ======================================================================================================== sampling
class EpochWalk:
    """Row indices in batches along a random permutation, a new one each epoch: every row once per epoch.

    The next permutation is drawn lazily, when a batch needs a row past the current one, so the generator is touched
    only by ``take`` — the state (epoch, position, permutation) plus the generator's state determine everything that
    follows.

    >>> walk = EpochWalk(3)
    >>> generator = torch.Generator().manual_seed(0)
    >>> batches = [walk.take(2, generator) for _ in range(3)]     # 6 indices: two epochs
    >>> sorted(batches[0] + batches[1][:1]), sorted(batches[1][1:] + batches[2]), walk.epoch
    ([0, 1, 2], [0, 1, 2], 1)
    """

    def __init__(self, size: int):
        self.size = _positive_int("size", size)
        self.epoch, self.position, self.permutation = 0, 0, None

    def take(self, batch: int, generator: torch.Generator | None = None) -> list[int]:
        """The next ``batch`` row indices (crossing into new epochs as needed)."""
        batch = _positive_int("batch", batch)
        indices: list[int] = []
        while len(indices) < batch:
            if self.permutation is None or self.position == self.size:
                if self.permutation is not None:
                    self.epoch += 1
                device = generator.device if generator is not None else "cpu"  # randperm draws on the generator's
                self.permutation = torch.randperm(self.size, generator=generator, device=device).tolist()
                self.position = 0
            stop = min(self.size, self.position + batch - len(indices))
            indices += self.permutation[self.position:stop]
            self.position = stop
        return indices

    def state_dict(self) -> dict:
        """``{"size", "epoch", "position", "permutation"}`` in plain Python types (``permutation`` is None before the
        first batch)."""
        permutation = None if self.permutation is None else list(self.permutation)
        return {"size": self.size, "epoch": self.epoch, "position": self.position, "permutation": permutation}

    def load_state_dict(self, state: dict) -> None:
        """Continue from ``state`` (checked against this walk's size)."""
        if state.get("size") != self.size:
            raise ValueError(f"the state is for a dataset of {state.get('size')} rows; this one has {self.size}")
        permutation = state.get("permutation")
        if permutation is not None and sorted(permutation) != list(range(self.size)):
            raise ValueError(f"the state's permutation is not a permutation of 0..{self.size - 1}")
        epoch, position = state.get("epoch"), state.get("position")
        if not (isinstance(epoch, int) and epoch >= 0 and isinstance(position, int)
                and 0 <= position <= (self.size if permutation is not None else 0)):
            raise ValueError(f"the state's epoch ({epoch!r}) and position ({position!r}) are not valid for "
                             f"{self.size} rows")
        self.epoch, self.position = epoch, position
        self.permutation = None if permutation is None else [int(i) for i in permutation]


class _WalkedDataset:
    """What both datasets share: the codec, the walk, its state."""

    def __init__(self, size: int, codec: TextCodec, device):
        if not isinstance(codec, TextCodec):
            raise ValueError(f"codec must be a TextCodec; got {type(codec).__name__}")
        self.codec, self.device, self.walk = codec, device, EpochWalk(size)

    def __len__(self) -> int:
        return self.walk.size

    @property
    def epoch(self) -> int:
        """The current epoch, from 0."""
        return self.walk.epoch

    @property
    def position(self) -> int:
        """How many rows of the current epoch have been sampled."""
        return self.walk.position

    def state_dict(self) -> dict:
        """The walk's state (:meth:`EpochWalk.state_dict`); the generator's state is the caller's to save."""
        return self.walk.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.walk.load_state_dict(state)


def _is_prompt_list(items) -> bool:
    """A list of prompts (strings, conversations) rather than a data source (rows are dicts)."""
    return isinstance(items, (list, tuple)) and len(items) > 0 and all(isinstance(p, (str, list)) for p in items)


class PromptDataset(_WalkedDataset):
    """Prompts as a :class:`~preference_games.protocols.PromptSource`: ``sample(batch, generator)`` → Tokens
    [1, batch, Lp] along the epoch walk (module docstring).

    ``prompts``: a list of prompts (strings, conversations) or any source :func:`load_prompts` reads. Every prompt is
    encoded once, on construction, with ``codec`` (:meth:`TextCodec.prompt_ids`); batches land on ``device``.
    """

    def __init__(self, prompts, codec: TextCodec, *, device=None):
        self.prompts = list(prompts) if _is_prompt_list(prompts) else load_prompts(prompts)
        super().__init__(len(self.prompts), codec, device)
        self._ids = encode_each("prompt", self.prompts, codec.prompt_ids)

    @property
    def longest_prompt(self) -> int:
        """The most tokens of any encoded prompt (what a model's context must hold besides the response)."""
        return max(len(ids) for ids in self._ids)

    def sample(self, batch: int, generator: torch.Generator | None = None) -> Tokens:
        """The next ``batch`` prompts of the walk: Tokens [1, batch, Lp], right-padded."""
        return self.codec.pad([self._ids[i] for i in self.walk.take(batch, generator)], self.device)


class PreferenceDataset(_WalkedDataset):
    """Offline preference pairs: ``sample(batch, generator)`` → (prompts [1, batch, Lp], chosen [1, batch, L],
    rejected [1, batch, L′]) Tokens along the epoch walk, row b of each the same dataset row.

    ``rows``: anything :func:`load_preferences` reads (its output included). Prompts are encoded with
    :meth:`TextCodec.prompt_ids`, chosen and rejected with :meth:`TextCodec.response_ids` (EOS appended), once, on
    construction.
    """

    def __init__(self, rows, codec: TextCodec, *, device=None):
        self.rows = load_preferences(rows)
        super().__init__(len(self.rows), codec, device)
        self._prompts = encode_each("row", [row["prompt"] for row in self.rows], codec.prompt_ids)
        self._chosen = encode_each("row", [row["chosen"] for row in self.rows], codec.response_ids)
        self._rejected = encode_each("row", [row["rejected"] for row in self.rows], codec.response_ids)

    @property
    def longest_prompt(self) -> int:
        """The most tokens of any encoded prompt."""
        return max(len(ids) for ids in self._prompts)

    def sample(self, batch: int, generator: torch.Generator | None = None) -> tuple[Tokens, Tokens, Tokens]:
        """The next ``batch`` rows of the walk as (prompts, chosen, rejected) Tokens, each right-padded."""
        rows = self.walk.take(batch, generator)
        return tuple(self.codec.pad([ids[i] for i in rows], self.device)
                     for ids in (self._prompts, self._chosen, self._rejected))
