"""How many prompt tokens a task needs, against how many the policy accepts: checked when a task is created.

The task text goes into π₀.₅'s prompts verbatim (System 2: `Task: {task}, State: {bins};\\nSubtask: `, and System 1
follows the task text itself until System 2 has an opinion), each padded to the checkpoint's `max_token_len`.
A task that does not fit can never run: the worker refuses every request for it. Refusing it at creation (422
with both numbers) is kinder than a task that pauses forever and blocks the queue behind it.

The state part depends on the robot's state at run time; the count here assumes the state bin whose text costs the
most tokens in every slot, so a task accepted here fits whatever the state. Prompt format: policy/tokenizers/prompt.py
(byte-exact with openpi `src/openpi/models/tokenizer.py`, PaligemmaTokenizer).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from policy.tokenizers.prompt import ACTION_SUFFIX, STATE_BINS, SUBTASK_SUFFIX, clean_text, prompt_token_count
from policy.tokenizers.text import TextTokenizer

if TYPE_CHECKING:
    from policy.inference import Pi05Policy


@dataclass(frozen=True)
class TokenCount:
    tokens: int  # what the task's longest prompt needs (BOS included)
    limit: int  # what the policy accepts

    @property
    def fits(self) -> bool:
        return self.tokens <= self.limit


class PromptBudget(Protocol):
    """Measures a task's prompt against the policy's token budget."""

    def measure(self, task: str) -> TokenCount: ...


class TokenizerBudget:
    """The budget of one checkpoint: its tokenizer, its `max_token_len` and the robot's state length."""

    def __init__(self, tokenizer: TextTokenizer, max_token_len: int, state_dim: int) -> None:
        if max_token_len < 1 or state_dim < 0:
            raise ValueError(f"need max_token_len >= 1 and state_dim >= 0, got {max_token_len}, {state_dim}")
        self.tokenizer = tokenizer
        self.limit = int(max_token_len)
        # the bin (-1 for values below range, 0..255) whose text costs the most tokens after a space
        costs = {b: len(tokenizer.encode(f" {b}")) for b in range(-1, STATE_BINS)}
        worst = max(costs, key=lambda b: (costs[b], b))
        self._state_text = " ".join([str(worst)] * state_dim)

    @classmethod
    def from_checkpoint(cls, folder: str | Path, state_dim: int | None = None) -> TokenizerBudget:
        """Read only the tokenizer and config.json of a hearth checkpoint (no weights)."""
        folder = Path(folder)
        config = json.loads((folder / "config.json").read_text())
        max_len = int(config["model"]["max_token_len"])
        if state_dim is None:
            state_dim = len(config["state_names"])
        return cls(TextTokenizer.load(folder), max_len, state_dim)

    @classmethod
    def for_policy(cls, policy: Pi05Policy) -> TokenizerBudget:
        """The budget of an in-process policy (tests, `hearth run` with a checkpoint)."""
        return cls(policy.tokenizer, policy.config.max_token_len, len(policy.metadata["state_names"]))

    def measure(self, task: str) -> TokenCount:
        head = f"Task: {clean_text(task)}, State: {self._state_text}"
        tokens = max(prompt_token_count(self.tokenizer, head + suffix) for suffix in (SUBTASK_SUFFIX, ACTION_SUFFIX))
        return TokenCount(tokens=tokens, limit=self.limit)
