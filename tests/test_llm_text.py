"""llm_backend.text and llm_backend.data: tokenizers built in code, the text codec, TRL-style datasets."""

import pytest

transformers = pytest.importorskip("transformers")

import csv  # noqa: E402
import json  # noqa: E402

import torch  # noqa: E402
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from llm_backend.data import (  # noqa: E402
    EpochWalk, PreferenceDataset, PromptDataset, load_preferences, load_prompts,
)
from llm_backend.text import (  # noqa: E402
    PRINTABLE, TextCodec, char_tokenizer, game_prompt_texts, game_response_texts, game_tokenizer,
)
from preference_games.sequences import SequenceGame, Tokens, sequence_game_by_name  # noqa: E402

GAME = sequence_game_by_name("rps-sequences")  # V = 3, L = 3, one prompt
SPECIAL = ("<pad>", "<bos>", "<eos>", "<unk>")
# [role]content lines, then the assistant header; BOS written by the template itself, as Llama's templates do.
TEMPLATE = ("{{ bos_token }}{% for m in messages %}[{{ m['role'] }}]{{ m['content'] }}\n{% endfor %}"
            "{% if add_generation_prompt %}[assistant]{% endif %}")

TOKENIZER = char_tokenizer()
CODEC = TextCodec(TOKENIZER)


def chat_tokenizer():
    tok = char_tokenizer()
    tok.chat_template = TEMPLATE
    return tok


def ids(tok, text):
    return tok(text, add_special_tokens=False).input_ids


# Text over the default alphabet that does not spell a special token (those are read as the token, by design).
texts = st.text(alphabet=PRINTABLE, max_size=30).filter(lambda s: not any(t in s for t in SPECIAL))


# ==================================================================================================== tokenizers
def test_char_tokenizer_known_ids():
    tok = char_tokenizer("ab \n")
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2, 3)
    assert len(tok) == 8
    assert ids(tok, "a b\nba") == [4, 6, 5, 7, 5, 4]
    assert ids(tok, "a<eos>z") == [4, 2, 3]  # special spelling → the token; outside the alphabet → <unk>
    assert tok.decode([4, 6, 6, 5]) == "a  b"


@given(texts)
def test_char_tokenizer_round_trip(text):
    assert TOKENIZER.decode(ids(TOKENIZER, text)) == text
    assert len(ids(TOKENIZER, text)) == len(text)


def test_char_tokenizer_bad_alphabets():
    with pytest.raises(ValueError, match="repeats 'a'"):
        char_tokenizer("aba")
    with pytest.raises(ValueError, match="at least one"):
        char_tokenizer("")


def test_tokenizers_save_and_load(tmp_path):
    for name, tok in [("char", chat_tokenizer()), ("game", game_tokenizer(GAME))]:
        tok.save_pretrained(tmp_path / name)
        loaded = transformers.AutoTokenizer.from_pretrained(tmp_path / name)
        text = "<bos><x0>abc" if name == "game" else "Hello,  world!\n<eos>"
        assert ids(loaded, text) == ids(tok, text)
        assert loaded.decode(ids(tok, text)) == text
        assert (loaded.pad_token_id, loaded.bos_token_id, loaded.eos_token_id) == (
            tok.pad_token_id, tok.bos_token_id, tok.eos_token_id)
        assert loaded.chat_template == tok.chat_template


def test_game_tokenizer_is_the_game_layout():
    game = SequenceGame.random_intransitive(vocab=4, length=2, prompts=3, seed=0)
    tok = game_tokenizer(game)
    V = game.vocab
    assert len(tok) == game.vocab_size
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id) == (game.pad_id, game.bos_id, None)
    assert ids(tok, "<bos><x0>") == [V + 1, V + 2]
    assert ids(tok, f"<x{game.num_prompts - 1}>") == [V + 1 + game.num_prompts]
    assert game_tokenizer(GAME).decode([0, 2, 1]) == "acb"


def test_game_round_trip_over_every_string():
    tok, codec = game_tokenizer(GAME), TextCodec(game_tokenizer(GAME))
    texts = game_response_texts(GAME)
    assert len(texts) == GAME.num_responses and texts[:4] == ["aaa", "aab", "aac", "aba"] and texts[-1] == "ccc"
    responses = codec.encode_responses(texts)  # no EOS: fixed length
    assert torch.equal(responses.ids, GAME.responses().ids) and torch.equal(responses.lengths, GAME.responses().lengths)
    assert codec.decode_responses(GAME.responses()) == texts
    prompts = codec.encode_prompts(game_prompt_texts(GAME))
    expected = GAME.prompt_tokens(torch.arange(GAME.num_prompts)[None])
    assert torch.equal(prompts.ids, expected.ids) and torch.equal(prompts.lengths, expected.lengths)
    assert codec.encode_prompts(["<x0>"]).ids.tolist() == expected.ids.tolist()  # BOS put in front, never doubled
    assert [tok.decode(t) for t in GAME.responses().ids[0].tolist()] == texts


def test_game_tokenizer_errors():
    with pytest.raises(ValueError, match="at most 26"):
        game_tokenizer(SequenceGame(torch.full((1, 27, 27), 0.5).numpy(), vocab=27, length=1))
    with pytest.raises(ValueError, match="response 0: the tokenizer cannot encode 'abd'"):
        TextCodec(game_tokenizer(GAME)).encode_responses(["abd"])


# ========================================================================================================= codec
def test_codec_known_tokens():
    tok = char_tokenizer("ab")  # ids: pad 0, bos 1, eos 2, unk 3, a 4, b 5
    codec = TextCodec(tok)
    prompts = codec.encode_prompts(["ab", "b", "<bos>a"])
    assert prompts.ids.tolist() == [[[1, 4, 5], [1, 5, 0], [1, 4, 0]]]
    assert prompts.lengths.tolist() == [[3, 2, 2]]
    responses = codec.encode_responses(["aab", "", "b"])
    assert responses.ids.tolist() == [[[4, 4, 5, 2], [2, 0, 0, 0], [5, 2, 0, 0]]]
    assert responses.lengths.tolist() == [[4, 1, 2]]
    assert codec.decode_responses(responses) == ["aab", "", "b"]
    assert (codec.pad_id, codec.bos_id, codec.eos_id) == (0, 1, 2)


@given(st.lists(texts, min_size=1, max_size=5))
def test_codec_round_trip(strings):
    prompts, responses = CODEC.encode_prompts(strings), CODEC.encode_responses(strings)
    assert CODEC.decode_prompts(prompts) == strings and CODEC.decode_responses(responses) == strings
    assert prompts.lengths.tolist() == [[len(s) + 1 for s in strings]]  # BOS + one token per character
    assert responses.lengths.tolist() == [[len(s) + 1 for s in strings]]  # + EOS
    width = prompts.ids.shape[-1]
    padding = torch.arange(width) >= prompts.lengths[..., None]  # [1, B, Lp]
    assert bool((prompts.ids[padding] == CODEC.pad_id).all())


def test_decode_reads_only_the_lengths_and_flattens_configurations():
    tok = char_tokenizer("ab")
    tokens = Tokens(torch.tensor([[[4, 5, 4]], [[5, 5, 2]]]), torch.tensor([[2], [3]]))  # [2, 1, 3]: C = 2
    assert TextCodec(tok).decode_responses(tokens) == ["ab", "bb"]


def test_left_truncation_keeps_bos_and_the_end():
    tok = char_tokenizer("abcdef")
    codec = TextCodec(tok, max_prompt_tokens=3)
    prompts = codec.encode_prompts(["abcdef", "ab"])
    assert prompts.ids.tolist() == [[ids(tok, "<bos>ef"), ids(tok, "<bos>ab")]]
    assert TextCodec(tok, max_prompt_tokens=1).encode_prompts(["abc"]).ids.tolist() == [[[1]]]
    no_bos = char_tokenizer("abc")
    no_bos.bos_token = None
    assert TextCodec(no_bos, max_prompt_tokens=2).encode_prompts(["abc"]).ids.tolist() == [[ids(tok, "bc")]]


def test_chat_template_path():
    tok = chat_tokenizer()
    codec = TextCodec(tok)
    assert codec.uses_chat_template
    conversation = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"}]
    prompts = codec.encode_prompts(["2+2?", conversation])
    expected = [ids(tok, "<bos>[user]2+2?\n[assistant]"), ids(tok, "<bos>[system]Be brief.\n[user]Hi?\n[assistant]")]
    assert expected[0][0] == tok.bos_token_id and expected[0][1] != tok.bos_token_id  # one BOS, from the template
    assert prompts.lengths.tolist() == [[len(e) for e in expected]]
    assert [row[:n] for row, n in zip(prompts.ids[0].tolist(), prompts.lengths[0].tolist())] == expected
    assert codec.decode_prompts(prompts)[0] == "[user]2+2?\n[assistant]"
    # chat_template=False ignores the template: plain text with BOS in front.
    assert TextCodec(tok, chat_template=False).encode_prompts(["2+2?"]).ids.tolist() == [[ids(tok, "<bos>2+2?")]]


def test_codec_errors():
    tok = char_tokenizer()
    tok.pad_token = None
    with pytest.raises(ValueError, match="^the tokenizer has no pad token; set tokenizer.pad_token"):
        TextCodec(tok)
    with pytest.raises(ValueError, match="no chat template"):
        TextCodec(char_tokenizer(), chat_template=True)
    with pytest.raises(ValueError, match="max_prompt_tokens must be an integer >= 1"):
        TextCodec(char_tokenizer(), max_prompt_tokens=0)
    with pytest.raises(ValueError, match="no prompts to encode"):
        CODEC.encode_prompts([])
    with pytest.raises(ValueError, match="no responses to encode"):
        CODEC.encode_responses([])
    with pytest.raises(ValueError, match="prompts must be a list; got str"):
        CODEC.encode_prompts("hello")
    with pytest.raises(ValueError, match="prompt 1: a conversational prompt .* needs a chat template"):
        CODEC.encode_prompts(["a", [{"role": "user", "content": "b"}]])
    with pytest.raises(ValueError, match="prompt 0: a prompt must be a string or a list of .* got int"):
        CODEC.encode_prompts([3])
    with pytest.raises(ValueError, match="response 0: a response must be a string; got list"):
        CODEC.encode_responses([["a"]])
    no_bos = char_tokenizer()
    no_bos.bos_token = None
    with pytest.raises(ValueError, match="prompt 0: the prompt '' encodes to no tokens"):
        TextCodec(no_bos).encode_prompts([""])


# ====================================================================================================== datasets
ROWS = [{"prompt": "2+2=", "chosen": "4", "rejected": "5"},
        {"prompt": "Capital of France?", "chosen": "Paris", "rejected": "Rome"},
        {"prompt": "Say hi.", "chosen": "hi", "rejected": "no"}]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def write_csv(path, rows):
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_load_known_files(tmp_path):
    prompts = [row["prompt"] for row in ROWS]
    jsonl, csv_file = write_jsonl(tmp_path / "d.jsonl", ROWS), write_csv(tmp_path / "d.csv", ROWS)
    (tmp_path / "rows.json").write_text(json.dumps(ROWS))
    (tmp_path / "columns.json").write_text(json.dumps({k: [row[k] for row in ROWS] for k in ROWS[0]}))
    for source in [jsonl, str(csv_file), tmp_path / "rows.json", tmp_path / "columns.json", ROWS]:
        assert load_prompts(source) == prompts
        assert load_preferences(source) == ROWS
    (tmp_path / "gaps.jsonl").write_text("\n" + json.dumps(ROWS[0]) + "\n\n" + json.dumps(ROWS[1]) + "\n")
    assert load_prompts(tmp_path / "gaps.jsonl") == prompts[:2]  # blank lines skipped


def test_conversational_rows():
    talk = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}]
    assert load_prompts([{"prompt": talk}]) == [talk]
    explicit = {"prompt": talk, "chosen": [{"role": "assistant", "content": "4"}],
                "rejected": [{"role": "assistant", "content": "five"}]}
    implicit = {"chosen": talk + explicit["chosen"], "rejected": talk + explicit["rejected"]}
    expected = [{"prompt": talk, "chosen": "4", "rejected": "five"}]
    assert load_preferences([explicit]) == expected and load_preferences([implicit]) == expected


def test_datasets_dataset():
    datasets = pytest.importorskip("datasets")
    assert load_preferences(datasets.Dataset.from_list(ROWS)) == ROWS
    with pytest.raises(ValueError, match="has no 'prompt' column \\(columns found: text\\)"):
        load_prompts(datasets.Dataset.from_list([{"text": "a"}]))


def test_epoch_walk_visits_each_row_once_per_epoch():
    walk, generator = EpochWalk(5), torch.Generator().manual_seed(3)
    drawn = [i for _ in range(7) for i in walk.take(3, generator)]  # 21 indices: four full epochs and one more
    for epoch in range(4):
        assert sorted(drawn[5 * epoch:5 * epoch + 5]) == [0, 1, 2, 3, 4]
    assert (walk.epoch, walk.position) == (4, 1)
    # The permutations are the generator's randperm draws, in order.
    expected = torch.Generator().manual_seed(3)
    assert drawn[:10] == torch.randperm(5, generator=expected).tolist() + torch.randperm(5, generator=expected).tolist()
    assert len(EpochWalk(2).take(5, torch.Generator().manual_seed(0))) == 5  # a batch larger than the data


def test_prompt_dataset_known_batches(tmp_path):
    codec = TextCodec(char_tokenizer())
    data = PromptDataset(write_jsonl(tmp_path / "d.jsonl", ROWS), codec)
    assert len(data) == 3 and data.prompts == [row["prompt"] for row in ROWS]
    generator = torch.Generator().manual_seed(0)
    order = torch.randperm(3, generator=torch.Generator().manual_seed(0)).tolist()
    batch = data.sample(2, generator)
    assert batch.shape[:2] == (1, 2)
    assert batch.ids.tolist() == codec.encode_prompts([ROWS[i]["prompt"] for i in order[:2]]).ids.tolist()
    seen = codec.decode_prompts(batch) + codec.decode_prompts(data.sample(1, generator))
    assert sorted(seen) == sorted(data.prompts) and (data.epoch, data.position) == (0, 3)


def test_state_dict_resumes_identically():
    codec = TextCodec(char_tokenizer())
    prompts = [f"prompt {i}" for i in range(7)]
    data, generator = PromptDataset(prompts, codec), torch.Generator().manual_seed(1)
    data.sample(5, generator)
    data.sample(4, generator)  # into the second epoch
    state, generator_state = json.loads(json.dumps(data.state_dict())), generator.get_state()
    assert state["epoch"] == 1 and state["position"] == 2 and sorted(state["permutation"]) == list(range(7))
    ahead = [codec.decode_prompts(data.sample(3, generator)) for _ in range(4)]
    resumed, generator2 = PromptDataset(prompts, codec), torch.Generator()
    resumed.load_state_dict(state)
    generator2.set_state(generator_state)
    assert [codec.decode_prompts(resumed.sample(3, generator2)) for _ in range(4)] == ahead
    with pytest.raises(ValueError, match="the state is for a dataset of 7 rows; this one has 6"):
        PromptDataset(prompts[:6], codec).load_state_dict(state)
    with pytest.raises(ValueError, match="not a permutation"):
        PromptDataset(prompts, codec).load_state_dict({**state, "permutation": [0] * 7})
    with pytest.raises(ValueError, match="position"):
        PromptDataset(prompts, codec).load_state_dict({**state, "position": 8})


def test_preference_dataset_rows_stay_together(tmp_path):
    codec = TextCodec(char_tokenizer())
    data = PreferenceDataset(write_csv(tmp_path / "d.csv", ROWS), codec)
    generator = torch.Generator().manual_seed(0)
    prompts, chosen, rejected = data.sample(3, generator)
    assert prompts.shape[:2] == chosen.shape[:2] == rejected.shape[:2] == (1, 3)
    triples = list(zip(codec.decode_prompts(prompts), codec.decode_responses(chosen), codec.decode_responses(rejected)))
    assert sorted(triples) == sorted((r["prompt"], r["chosen"], r["rejected"]) for r in ROWS)
    assert int(chosen.ids[0, 0, chosen.lengths[0, 0] - 1]) == codec.eos_id  # responses end with EOS
    state = data.state_dict()
    again = PreferenceDataset(ROWS, codec)
    again.load_state_dict(state)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    for a, b in zip(data.sample(4, g1), again.sample(4, g2)):
        assert torch.equal(a.ids, b.ids) and torch.equal(a.lengths, b.lengths)


def test_datasets_with_a_chat_template():
    tok = chat_tokenizer()
    talk = [{"role": "user", "content": "2+2?"}]
    data = PromptDataset([{"prompt": talk}, {"prompt": "Hi"}], TextCodec(tok))
    batch = data.sample(2, torch.Generator().manual_seed(0))
    texts = sorted(data.codec.decode_prompts(batch))
    assert texts == ["[user]2+2?\n[assistant]", "[user]Hi\n[assistant]"]
    with pytest.raises(ValueError, match="prompt 0: a conversational prompt .* needs a chat template"):
        PromptDataset([talk], TextCodec(char_tokenizer()))


def test_data_errors(tmp_path):
    with pytest.raises(ValueError, match="^no such file: .*missing.jsonl$"):
        load_prompts(tmp_path / "missing.jsonl")
    (tmp_path / "d.txt").write_text("hi")
    with pytest.raises(ValueError, match="unknown extension '.txt'; use one of .jsonl, .json, .csv"):
        load_prompts(tmp_path / "d.txt")
    with pytest.raises(ValueError, match=r"has no 'prompt' column \(columns found: text, label\)"):
        load_prompts(write_jsonl(tmp_path / "t.jsonl", [{"text": "a", "label": 1}]))
    with pytest.raises(ValueError, match=r"has no 'rejected' column \(columns found: prompt, chosen\)"):
        load_preferences([{"prompt": "a", "chosen": "b"}])
    (tmp_path / "empty.jsonl").write_text("\n")
    (tmp_path / "empty.csv").write_text("")
    for empty in [tmp_path / "empty.jsonl", tmp_path / "empty.csv", []]:
        with pytest.raises(ValueError, match="is empty"):
            load_prompts(empty)
    (tmp_path / "bad.jsonl").write_text(json.dumps(ROWS[0]) + "\n{oops\n")
    with pytest.raises(ValueError, match="bad.jsonl line 2: malformed JSON"):
        load_prompts(tmp_path / "bad.jsonl")
    (tmp_path / "bad.json").write_text('[{"prompt": "a"},\n {"prompt": }]')
    with pytest.raises(ValueError, match="bad.json line 2: malformed JSON"):
        load_prompts(tmp_path / "bad.json")
    (tmp_path / "list.jsonl").write_text("[1, 2]\n")
    with pytest.raises(ValueError, match="line 1: expected a JSON object, got list"):
        load_prompts(tmp_path / "list.jsonl")
    with pytest.raises(ValueError, match="row 1: a prompt must be a string or a list of .* got int"):
        load_prompts([{"prompt": "a"}, {"prompt": 3}])
    with pytest.raises(ValueError, match="row 1: no 'prompt' value"):
        load_prompts([{"prompt": "a"}, {"text": "b"}])
    with pytest.raises(ValueError, match="row 0: a prompt must be .* got list"):
        load_prompts([{"prompt": [{"role": "user"}]}])  # a message without content
    with pytest.raises(ValueError, match="row 0: expected an object"):
        load_prompts(["just a string"])
    with pytest.raises(ValueError, match="a data source is a path .* got int"):
        load_prompts(3)
    with pytest.raises(ValueError, match="row 0: chosen must be a string or one assistant message; got 2 message"):
        load_preferences([{"prompt": "a", "chosen": [{"role": "user", "content": "b"}] * 2, "rejected": "c"}])
    with pytest.raises(ValueError, match="row 0: without a 'prompt' column, .* plain strings need a 'prompt'"):
        load_preferences([{"chosen": "a", "rejected": "b"}])
    no_bos = char_tokenizer()
    no_bos.bos_token = None
    with pytest.raises(ValueError, match="prompt 1: the prompt '' encodes to no tokens"):
        PromptDataset(["a", ""], TextCodec(no_bos))
    with pytest.raises(ValueError, match="batch must be an integer >= 1"):
        PromptDataset(["a"], TextCodec(char_tokenizer())).sample(0, None)
    with pytest.raises(ValueError, match="codec must be a TextCodec"):
        PromptDataset(["a"], char_tokenizer())
