"""π₀.₅ prompts, byte-exact with openpi's ``PaligemmaTokenizer.tokenize`` (discrete state input).

Checkpoints trained by openpi/LeRobot saw exactly these strings, so any drift (a different bin edge, a missing
space, lower-casing) silently degrades a real checkpoint.
Facts: Physical-Intelligence/openpi src/openpi/models/tokenizer.py (`PaligemmaTokenizer`), huggingface/lerobot
src/lerobot/policies/pi05/processor_pi05.py.

System 1: ``Task: {subtask}, State: {b_1 … b_n};\\nAction: ``
System 2: ``Task: {task}, State: {b_1 … b_n};\\nSubtask: `` followed (in training) by ``{subtask}<eos>``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from policy.tokenizers.text import TextTokenizer

logger = logging.getLogger(__name__)

STATE_BINS = 256
# openpi: np.digitize(state, np.linspace(-1, 1, 257)[:-1]) - 1. Kept as float64, the dtype openpi compares against.
STATE_BIN_EDGES = np.linspace(-1.0, 1.0, STATE_BINS + 1)[:-1]
ACTION_SUFFIX = ";\nAction: "
SUBTASK_SUFFIX = ";\nSubtask: "


def clean_text(text: str) -> str:
    """openpi's cleaning: strip first, then ``_`` and ``\\n`` become spaces (no lower-casing for π₀.₅)."""
    if not isinstance(text, str):
        raise TypeError(f"prompt text must be str, got {type(text).__name__}")
    return text.strip().replace("_", " ").replace("\n", " ")


def discretize_state(state_normalized: np.ndarray) -> np.ndarray:
    """Quantile-normalized state → int64 bins, exactly as openpi.

    In-range values land in 0…255. Out-of-range values behave as in the reference: below -1 gives -1 (which then
    appears as ``-1`` in the prompt), at or above 0.9921875 (the last edge) gives 255, however large.
    NaN is refused: numpy would put it in bin 255 and the model would read a confident, wrong state.
    """
    state = np.asarray(state_normalized)
    if not np.issubdtype(state.dtype, np.number) or np.issubdtype(state.dtype, np.complexfloating):
        raise ValueError(f"state must be real numbers, got dtype {state.dtype}")
    if np.isnan(state).any():
        raise ValueError(f"state contains NaN at index {np.argwhere(np.isnan(state))[0].tolist()}")
    return (np.digitize(state, bins=STATE_BIN_EDGES) - 1).astype(np.int64)


def state_string(state_normalized: np.ndarray) -> str:
    """The space-separated bins as they appear after ``State: `` (``" ".join(map(str, bins))`` in openpi)."""
    bins = discretize_state(state_normalized)
    if bins.ndim != 1:
        raise ValueError(f"state must be a 1-D vector (unpadded, one robot), got shape {bins.shape}")
    return " ".join(str(int(b)) for b in bins)


def _prompt(text: str, state_normalized: np.ndarray, suffix: str) -> str:
    return f"Task: {clean_text(text)}, State: {state_string(state_normalized)}{suffix}"


def action_prompt(text: str, state_normalized: np.ndarray) -> str:
    """System-1 prompt: ``Task: {text}, State: {bins};\\nAction: `` (text is usually the current subtask)."""
    return _prompt(text, state_normalized, ACTION_SUFFIX)


def subtask_prompt(task: str, state_normalized: np.ndarray) -> str:
    """System-2 prompt: ``Task: {task}, State: {bins};\\nSubtask: ``; the model continues with the subtask + EOS."""
    return _prompt(task, state_normalized, SUBTASK_SUFFIX)


def subtask_target(subtask: str) -> str:
    """Text the model must emit after a System-2 prompt (EOS is appended at tokenization).

    Cleaned like a prompt and stripped again, so a stray edge ``_`` never becomes a leading space in a label.
    """
    return clean_text(subtask).strip()


def prompt_token_count(tokenizer: TextTokenizer, prompt: str) -> int:
    """Length of the prompt with its BOS, so callers can refuse over-long prompts before truncation."""
    return len(tokenizer.encode(prompt, add_bos=True))


def _pad(ids: list[int], max_len: int, pad_id: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    if max_len <= 0:
        raise ValueError(f"max_len must be positive, got {max_len}")
    if len(ids) > max_len:
        logger.warning("%s has %d tokens; truncated to max_len=%d", what, len(ids), max_len)
        ids = ids[:max_len]
    n = len(ids)
    tokens = np.full(max_len, pad_id, dtype=np.int64)
    tokens[:n] = ids
    mask = np.zeros(max_len, dtype=bool)
    mask[:n] = True
    return tokens, mask


def tokenize_prompt(tokenizer: TextTokenizer, prompt: str, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """``[BOS] + prompt`` as int64[max_len] right-padded with ``pad_id``, and the bool mask of real tokens.

    Truncates (keeping the start) and logs a warning when too long, as openpi does.
    """
    ids = tokenizer.encode(prompt, add_bos=True)
    return _pad(ids, max_len, tokenizer.pad_id, "prompt")


def tokenize_prompt_with_target(
    tokenizer: TextTokenizer,
    prompt: str,
    target: str | Sequence[int],
    max_len: int,
    add_eos: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training sequence ``[BOS] prompt target [EOS]``: (ids, mask, loss_mask), each [max_len].

    ``target`` is text (a System-2 subtask) or ready ids (e.g. FAST tokens already mapped into the text vocabulary
    with ``FastTokenizer.to_text_ids``). ``loss_mask`` is True exactly on the target tokens and the EOS, the
    positions the LM head is trained to predict. Over-long sequences are truncated with a warning.
    """
    prompt_ids = tokenizer.encode(prompt, add_bos=True)
    target_ids = tokenizer.encode(target) if isinstance(target, str) else [int(i) for i in target]
    if add_eos:
        target_ids = [*target_ids, tokenizer.eos_id]
    tokens, mask = _pad(prompt_ids + target_ids, max_len, tokenizer.pad_id, "prompt+target")
    loss_mask = np.zeros(max_len, dtype=bool)
    loss_mask[len(prompt_ids) : len(prompt_ids) + len(target_ids)] = True
    loss_mask &= mask
    return tokens, mask, loss_mask
