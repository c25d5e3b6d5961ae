"""Prompt strings must equal openpi's, character for character (Physical-Intelligence/openpi src/openpi/models/tokenizer.py)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from policy.tokenizers.prompt import (
    STATE_BIN_EDGES,
    action_prompt,
    clean_text,
    discretize_state,
    prompt_token_count,
    subtask_prompt,
    subtask_target,
    tokenize_prompt,
    tokenize_prompt_with_target,
)
from policy.tokenizers.text import household_tokenizer


@pytest.fixture(scope="module")
def tok():
    return household_tokenizer()


# (text, normalized state, expected System-1 prompt). Bins worked out by hand from edges -1 + k/128:
# x lands in bin k when -1 + k/128 <= x < -1 + (k+1)/128; below -1 -> -1; at/above 0.9921875 -> 255.
PROMPT_CASES = [
    ("put the cup in the sink", [0.0], "Task: put the cup in the sink, State: 128;\nAction: "),
    ("go to the table", [-1.0, 1.0], "Task: go to the table, State: 0 255;\nAction: "),
    ("pick up the cup", [-0.5, 0.5, 0.1], "Task: pick up the cup, State: 64 192 140;\nAction: "),
    ("open the gripper", [0.0078125, 0.0078124, -0.0078125], "Task: open the gripper, State: 129 128 127;\nAction: "),
    ("done", [0.99, 0.9921875, 0.9921874], "Task: done, State: 254 255 254;\nAction: "),
    # out of range, as the reference: < -1 is -1 (printed "-1"), >= last edge saturates at 255
    ("clear the table", [-1.0000001, -3.0, 1.5, 250.0], "Task: clear the table, State: -1 -1 255 255;\nAction: "),
    ("clear the table", [-np.inf, np.inf], "Task: clear the table, State: -1 255;\nAction: "),
    # text cleaning: strip, then "_" and "\n" -> " " (inner double spaces stay, case stays)
    ("  put_the_fruit\nin the Bowl \n", [0.0], "Task: put the fruit in the Bowl, State: 128;\nAction: "),
    ("bring the can to the counter", [], "Task: bring the can to the counter, State: ;\nAction: "),
    ("a  b", [0.25], "Task: a  b, State: 160;\nAction: "),
]


@pytest.mark.parametrize(("text", "state", "expected"), PROMPT_CASES)
def test_action_prompt_matches_reference_strings(text, state, expected):
    assert action_prompt(text, np.asarray(state, dtype=np.float64)) == expected


@pytest.mark.parametrize(("text", "state", "expected"), PROMPT_CASES)
def test_subtask_prompt_differs_only_in_suffix(text, state, expected):
    prompt = subtask_prompt(text, np.asarray(state))
    assert prompt == expected.removesuffix("Action: ") + "Subtask: "


def test_float32_state_bins_like_reference():
    # openpi digitizes the float32 state against float64 edges; float32(0.1) = 0.10000000149 -> bin 140.
    state = np.array([0.1, -0.99999994, 0.9921875], dtype=np.float32)
    assert discretize_state(state).tolist() == [140, 0, 255]


def test_discretize_every_bin_center_and_edge():
    edges = STATE_BIN_EDGES
    assert len(edges) == 256 and edges[0] == -1.0 and edges[128] == 0.0
    assert discretize_state(edges).tolist() == list(range(256))
    centers = edges + 1 / 256
    assert discretize_state(centers).tolist() == list(range(256))
    assert discretize_state(edges[1:] - 1e-12).tolist() == list(range(255))


def test_discretize_keeps_shape_and_dtype():
    bins = discretize_state(np.zeros((3, 5), dtype=np.float32))
    assert bins.shape == (3, 5) and bins.dtype == np.int64 and (bins == 128).all()


def test_discretize_refuses_nan_and_non_numbers():
    with pytest.raises(ValueError, match="NaN at index \\[1\\]"):
        discretize_state(np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match="real numbers"):
        discretize_state(np.array(["0.1"]))


def test_prompt_requires_vector_state():
    with pytest.raises(ValueError, match="1-D"):
        action_prompt("go", np.zeros((2, 3)))


def test_clean_text_and_target():
    # strip happens before the replacements, so edge "_" / "\n" become spaces that stay (as in openpi)
    assert clean_text("\n_pick_up\nthe cup_ ") == " pick up the cup "
    assert subtask_target(" _place the cup in the sink\n") == "place the cup in the sink"
    with pytest.raises(TypeError):
        clean_text(b"bytes")  # type: ignore[arg-type]


def test_tokenize_prompt_bos_padding_and_mask(tok):
    prompt = action_prompt("put the cup in the sink", np.array([0.0, -1.0, 0.5]))
    ids, mask = tokenize_prompt(tok, prompt, max_len=48)
    n = prompt_token_count(tok, prompt)
    assert ids.dtype == np.int64 and mask.dtype == np.bool_ and ids.shape == mask.shape == (48,)
    assert ids[0] == tok.bos_id
    assert mask[:n].all() and not mask[n:].any()
    assert (ids[n:] == tok.pad_id).all()
    assert tok.decode(ids[mask]) == prompt  # BOS/PAD dropped, text byte-exact


def test_tokenize_prompt_truncates_with_warning(tok, caplog):
    prompt = action_prompt("put the cup in the sink", np.linspace(-1, 1, 14))
    full = tok.encode(prompt, add_bos=True)
    with caplog.at_level(logging.WARNING, logger="policy.tokenizers.prompt"):
        ids, mask = tokenize_prompt(tok, prompt, max_len=10)
    assert ids.tolist() == full[:10] and mask.all()
    assert any("truncated to max_len=10" in r.getMessage() for r in caplog.records)


def test_tokenize_prompt_exact_fit_does_not_warn(tok, caplog):
    prompt = subtask_prompt("clear the table", np.zeros(7))
    n = prompt_token_count(tok, prompt)
    with caplog.at_level(logging.WARNING, logger="policy.tokenizers.prompt"):
        _, mask = tokenize_prompt(tok, prompt, max_len=n)
    assert mask.all() and not caplog.records


def test_tokenize_rejects_bad_max_len(tok):
    with pytest.raises(ValueError, match="max_len"):
        tokenize_prompt(tok, "Task: x", 0)


def test_system2_training_sequence(tok):
    prompt = subtask_prompt("put the cup in the sink", np.array([0.2, -0.3]))
    ids, mask, loss = tokenize_prompt_with_target(tok, prompt, subtask_target("pick up the cup"), max_len=64)
    n_prompt = prompt_token_count(tok, prompt)
    target = tok.encode("pick up the cup")
    n = n_prompt + len(target) + 1
    assert ids[:n].tolist() == tok.encode(prompt, add_bos=True) + target + [tok.eos_id]
    assert mask[:n].all() and not mask[n:].any()
    assert loss.tolist() == [False] * n_prompt + [True] * (len(target) + 1) + [False] * (64 - n)
    assert tok.decode_until_eos(ids[n_prompt:]) == "pick up the cup"


def test_training_sequence_with_id_target_and_truncation(tok, caplog):
    prompt = action_prompt("go to the table", np.zeros(3))
    n_prompt = prompt_token_count(tok, prompt)
    action_ids = [tok.vocab_size - 1 - k for k in range(20)]
    with caplog.at_level(logging.WARNING):
        ids, mask, loss = tokenize_prompt_with_target(tok, prompt, action_ids, max_len=n_prompt + 5)
    assert ids[n_prompt:].tolist() == action_ids[:5]
    assert loss.sum() == 5 and mask.all()
    assert caplog.records
