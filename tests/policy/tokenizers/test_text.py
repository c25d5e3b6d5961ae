"""TextTokenizer over the shipped household BPE and over a real SentencePiece model trained here."""

from __future__ import annotations

import io
import json
import random

import numpy as np
import pytest

from policy.tokenizers import household
from policy.tokenizers.prompt import action_prompt, subtask_prompt
from policy.tokenizers.text import (
    HOUSEHOLD_ASSET,
    TextTokenizer,
    TokenizerLoadError,
    copy_tokenizer_file,
    household_tokenizer,
)


@pytest.fixture(scope="module")
def tok() -> TextTokenizer:
    return household_tokenizer()


@pytest.fixture(scope="module")
def sentencepiece_model(tmp_path_factory) -> bytes:
    """A tiny SentencePiece BPE with Gemma's settings: pad 0, eos 1, bos 2, unk 3, identity normalization."""
    import sentencepiece as spm

    words = ["put", "the", "cup", "in", "sink", "clear", "table", "go", "to", "pick", "up", "place", "open"]
    words += ["gripper", "done", "Task", "State", "Action"]
    rng = random.Random(0)
    sentences = [
        " ".join(rng.choice(words) for _ in range(6))
        + ", State: "
        + " ".join(str(rng.randrange(256)) for _ in range(4))
        for _ in range(200)
    ]
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=buf,
        vocab_size=330,
        model_type="bpe",
        pad_id=0,
        eos_id=1,
        bos_id=2,
        unk_id=3,
        byte_fallback=True,
        split_digits=True,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        minloglevel=2,
    )
    return buf.getvalue()


def test_household_layout(tok):
    assert (tok.pad_id, tok.eos_id, tok.bos_id) == (0, 1, 2)
    assert tok.kind == "tokenizers"
    reserved = tok.reserved_action_ids
    assert len(reserved) == household.RESERVED_ACTION_TOKENS and reserved.stop == tok.vocab_size
    assert tok.id_to_piece(reserved.start - 1) != "<act_1023>"  # the block is exactly at the end
    assert tok.vocab_size == household.BPE_VOCAB_SIZE + household.RESERVED_ACTION_TOKENS  # fixed layout
    assert HOUSEHOLD_ASSET.stat().st_size < 300_000


def test_sim_suite_texts_are_one_token_per_word(tok):
    """Every sim-kitchen task and subtask is in the household vocabulary (short prompts, learnable labels)."""
    from robots.sim.tasks import TASK_SPECS

    texts = [spec.text for spec in TASK_SPECS] + [s for spec in TASK_SPECS for s in spec.subtasks]
    for text in texts:
        ids = tok.encode(text)
        assert tok.decode(ids) == text
        assert len(ids) == len(text.split()), (
            f"{text!r} -> {[tok.id_to_piece(i) for i in ids]}: add its words to "
            "policy/tokenizers/vocabulary/*.txt and run `python -m policy.tokenizers.household`"
        )


def test_every_state_bin_is_one_token_and_round_trips(tok):
    for b in range(256):
        assert len(tok.encode(f" {b}")) == 1, b
    state = np.concatenate([np.linspace(-1.2, 1.2, 200), [-np.inf, np.inf]])
    prompt = action_prompt("put the cup in the sink", state)
    ids = tok.encode(prompt, add_bos=True)
    assert tok.decode(ids) == prompt
    bins_text = tok.decode(ids).split("State: ")[1].split(";")[0]
    assert [int(b) for b in bins_text.split()] == [int(b) for b in prompt.split("State: ")[1].split(";")[0].split()]


def test_household_words_and_scaffolding_are_compact(tok):
    sections = household.read_word_sections()
    words = {w for name, entries in sections.items() if name != "coaching" for w in entries}
    multi = sorted(w for w in words if len(tok.encode(" " + w)) != 1)
    assert not multi, multi
    for scaffold in ("Task", " State", "Action", "Subtask", "Policy", " Relabeled"):  # as they occur in prompts
        assert len(tok.encode(scaffold)) == 1, scaffold
    # a 7-dim System-1 prompt: BOS + 1 per word / bin + a handful of scaffold pieces
    prompt = action_prompt("put the cup in the sink", np.linspace(-0.9, 0.9, 7))
    assert len(tok.encode(prompt, add_bos=True)) <= 6 + 7 + 12


@pytest.mark.parametrize(
    "text",
    [
        "go to the table",
        "Pick up the mug, please!",
        "Policy: pick up the cup → Relabeled: pick up the bowl",
        "Mets la tasse dans l'évier 🍵",
        "  two  spaces\tand\ttabs\n",
        "",
    ],
)
def test_any_text_round_trips(tok, text):
    assert tok.decode(tok.encode(text)) == text
    ids = tok.encode(text, add_bos=True, add_eos=True)
    assert ids[0] == tok.bos_id and ids[-1] == tok.eos_id
    assert tok.decode(ids) == text


def test_decode_skips_specials_and_reserved_ids(tok):
    ids = [tok.bos_id, *tok.encode("open the gripper"), tok.reserved_action_ids[5], tok.eos_id, tok.pad_id]
    assert tok.decode(ids) == "open the gripper"
    assert tok.decode_until_eos([*tok.encode("done"), tok.eos_id, *tok.encode(" junk")]) == "done"


def test_decode_rejects_out_of_range_ids(tok):
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.decode([5, tok.vocab_size])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.decode([-1])


def test_encode_rejects_non_text(tok):
    with pytest.raises(TypeError):
        tok.encode(None)  # type: ignore[arg-type]


def test_save_and_load_folder(tok, tmp_path):
    written = tok.save(tmp_path / "ckpt")
    assert written.name == "tokenizer.json"
    again = TextTokenizer.load(tmp_path / "ckpt")
    prompt = subtask_prompt("clear the table", np.zeros(14))
    assert again.encode(prompt) == tok.encode(prompt)
    assert (again.vocab_size, again.bos_id, again.eos_id, again.pad_id) == (
        tok.vocab_size,
        tok.bos_id,
        tok.eos_id,
        tok.pad_id,
    )


def test_sentencepiece_model_loads(tmp_path, sentencepiece_model):
    import sentencepiece as spm

    path = tmp_path / "tokenizer.model"
    path.write_bytes(sentencepiece_model)
    sp_tok = TextTokenizer.load(path)
    reference = spm.SentencePieceProcessor(model_proto=sentencepiece_model)
    assert sp_tok.kind == "sentencepiece"
    assert (sp_tok.pad_id, sp_tok.eos_id, sp_tok.bos_id, sp_tok.vocab_size) == (0, 1, 2, 330)
    prompt = action_prompt("put the cup in the sink", np.array([0.0, -1.0, 0.5]))
    ids = sp_tok.encode(prompt, add_bos=True)
    assert ids == [2, *reference.encode(prompt)]  # what openpi's sp.encode(prompt, add_bos=True) gives
    assert sp_tok.decode([*ids, sp_tok.eos_id, sp_tok.pad_id]) == prompt
    # the folder form, as a checkpoint holds it, and save() writing the same proto back
    copy_tokenizer_file(path, tmp_path / "ckpt")
    from_folder = TextTokenizer.load(tmp_path / "ckpt")
    assert from_folder.kind == "sentencepiece" and from_folder.encode(prompt) == ids[1:]
    saved = from_folder.save(tmp_path / "out")
    assert saved.name == "tokenizer.model" and saved.read_bytes() == sentencepiece_model


def test_folder_prefers_tokenizer_json(tmp_path, tok, sentencepiece_model):
    (tmp_path / "tokenizer.model").write_bytes(sentencepiece_model)
    tok.save(tmp_path)
    assert TextTokenizer.load(tmp_path).kind == "tokenizers"


def test_load_errors_are_clear(tmp_path):
    with pytest.raises(TokenizerLoadError, match="no such tokenizer file"):
        TextTokenizer.load(tmp_path / "missing.json")
    with pytest.raises(TokenizerLoadError, match=r"neither tokenizer\.json nor tokenizer\.model"):
        TextTokenizer.load(tmp_path)
    (tmp_path / "vocab.txt").write_text("a\n")
    with pytest.raises(TokenizerLoadError, match="unknown tokenizer file type"):
        TextTokenizer.load(tmp_path / "vocab.txt")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(TokenizerLoadError, match="not a tokenizers JSON"):
        TextTokenizer.load(tmp_path / "bad.json")
    (tmp_path / "bad.model").write_bytes(b"\x00garbage")
    with pytest.raises(TokenizerLoadError, match="not a SentencePiece model"):
        TextTokenizer.load(tmp_path / "bad.model")


def test_json_without_bos_is_refused(tmp_path):
    from tokenizers import Tokenizer, models

    bare = Tokenizer(models.WordLevel({"a": 0, "<unk>": 1}, unk_token="<unk>"))
    bare.save(str(tmp_path / "tokenizer.json"))
    with pytest.raises(TokenizerLoadError, match="no BOS token"):
        TextTokenizer.load(tmp_path)


def test_shipped_asset_is_reproducible_from_vocabulary(tmp_path):
    """The asset must be what `python -m policy.tokenizers.household` builds from vocabulary/*.txt today."""
    household.train_household_tokenizer(tmp_path / "retrained.json")
    shipped = json.loads(HOUSEHOLD_ASSET.read_text())
    retrained = json.loads((tmp_path / "retrained.json").read_text())
    assert retrained["model"]["vocab"] == shipped["model"]["vocab"]
    assert retrained["model"]["merges"] == shipped["model"]["merges"]
    assert retrained["added_tokens"] == shipped["added_tokens"]


def test_post_processor_bos_is_not_doubled(tmp_path):
    """PaliGemma's tokenizer.json adds <bos> in its post-processor; we add BOS ourselves, exactly once."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    vocab = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "go": 4, "▁to": 5}
    hf = Tokenizer(models.WordPiece(vocab, unk_token="<unk>"))
    hf.pre_tokenizer = pre_tokenizers.Metaspace()
    hf.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 2)])
    hf.save(str(tmp_path / "tokenizer.json"))
    assert hf.encode("go").ids[0] == 2  # the file's own behaviour
    tok = TextTokenizer.load(tmp_path)
    assert tok.encode("go", add_bos=True).count(tok.bos_id) == 1
    assert tok.encode("go")[0] != tok.bos_id


def test_tokenizers_pickle_for_dataloader_workers(tmp_path, tok, sentencepiece_model):
    import pickle

    (tmp_path / "tokenizer.model").write_bytes(sentencepiece_model)
    for original in (tok, TextTokenizer.load(tmp_path / "tokenizer.model")):
        clone = pickle.loads(pickle.dumps(original))
        text = "Task: put the cup in the sink, State: 1 2 255;\nAction: "
        assert clone.encode(text, add_bos=True) == original.encode(text, add_bos=True)
        assert (clone.bos_id, clone.eos_id, clone.pad_id, clone.vocab_size) == (
            original.bos_id,
            original.eos_id,
            original.pad_id,
            original.vocab_size,
        )


def test_retrain_command_writes_a_loadable_tokenizer(tmp_path):
    out = tmp_path / "hh.json"
    household.main(["--out", str(out), "--bpe-vocab-size", "600", "--reserved-action-tokens", "16"])
    small = TextTokenizer.load(out)
    assert len(small.reserved_action_ids) == 16 and small.vocab_size <= 600 + 16
    assert small.decode(small.encode("put the fruit in the bowl")) == "put the fruit in the bowl"


def test_paligemma_image_placeholder_is_not_a_text_id(tmp_path):
    """PaliGemma's tokenizer.json ends with <image> = 257152, one past the LM head; it must not count."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "go": 4, "▁to": 5}
    hf = Tokenizer(models.WordPiece(vocab, unk_token="<unk>"))
    hf.pre_tokenizer = pre_tokenizers.Metaspace()
    hf.add_special_tokens(["<image>"])
    hf.save(str(tmp_path / "tokenizer.json"))
    tok = TextTokenizer.load(tmp_path)
    assert hf.token_to_id("<image>") == 6 and tok.vocab_size == 6
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.decode([6])
