"""Co-training examples: every frame of the dataset is encoded once as a System-1 AND a System-2 example.

- System 1 (action) example: `Task: {subtask}, State: {bins};\\nAction: ` followed by the chunk's FAST tokens and
  EOS as CE targets (when `fast_ce`), plus the continuous chunk as the flow-matching target and, for models with
  a state token, the continuous normalized state (`normalized_state`). The action expert never attends to the
  FAST tokens (the model hides loss-masked prefix tokens from the suffix), so it cannot copy the answer; with
  knowledge insulation the flow loss does not reach the VLM, which learns actions through the FAST CE instead
  (arXiv 2505.23705).
- System 2 (subtask) example: `Task: {task}, State: {bins};\\nSubtask: ` followed by the subtask text and EOS as
  CE targets; no flow loss (`has_actions` False), because at inference the expert is conditioned on the
  System-1 prompt, never on the System-2 one.

Tokenizing once (not per step) keeps the training step free of Python string work, so a GPU is not starved.
A sample without a subtask label (a plain LeRobot dataset) only ever becomes a System-1 example prompted with
its task text, as openpi trains π₀.₅. Which frames become System-2 examples in a step is drawn from the step's
generator (`TrainingArrays.batch`), so a batch is reproducible on resume.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from policy.normalize import NormStats
from policy.tokenizers.prompt import action_prompt, subtask_prompt, subtask_target, tokenize_prompt_with_target
from policy.training.config import LossSettings


@dataclass
class TrainSample:
    """One frame before tokenization: robot units; images uint8 [S, S, 3] already at the model's size."""

    images: dict[str, np.ndarray]
    state: np.ndarray
    actions: np.ndarray  # [H, d]
    action_is_pad: np.ndarray  # [H] bool
    task: str
    subtask: str


@dataclass
class EncodedExample:
    tokens: np.ndarray  # int64 [L]
    mask: np.ndarray  # bool [L]
    loss_mask: np.ndarray  # bool [L]


@dataclass
class ExampleEncoder:
    """Turns a TrainSample into (System-1 example, System-2 example or None, normalized padded actions)."""

    tokenizer: object  # policy.tokenizers.text.TextTokenizer
    norm_stats: NormStats
    max_len: int
    max_action_dim: int
    loss: LossSettings
    fast: object | None = None  # policy.tokenizers.fast.FastTokenizer
    max_state_dim: int = 32  # the model's; every preset uses 32, and the model rejects a state of another width

    def fast_text_ids(self, actions_norm: np.ndarray) -> list[int]:
        ids = list(self.fast.encode(actions_norm))[: self.loss.max_fast_tokens]
        return list(self.fast.to_text_ids(ids, self.tokenizer.vocab_size))

    def normalized_actions(self, sample: TrainSample) -> tuple[np.ndarray, np.ndarray]:
        actions_norm = self.norm_stats.normalize("actions", sample.actions)
        d = actions_norm.shape[-1]
        if d > self.max_action_dim:
            raise ValueError(f"action dim {d} exceeds the model's max_action_dim {self.max_action_dim}")
        padded = np.zeros((actions_norm.shape[0], self.max_action_dim), np.float32)
        padded[:, :d] = actions_norm
        return padded, actions_norm

    def normalized_state(self, sample: TrainSample) -> np.ndarray:
        """float32 [max_state_dim]: the state the prompt discretizes, zero-padded for the continuous state token."""
        state_norm = self.norm_stats.normalize("state", sample.state)
        d = state_norm.shape[-1]
        if d > self.max_state_dim:
            raise ValueError(f"state dim {d} exceeds the model's max_state_dim {self.max_state_dim}")
        padded = np.zeros(self.max_state_dim, np.float32)
        padded[:d] = state_norm
        return padded

    def encode(self, sample: TrainSample) -> tuple[EncodedExample, EncodedExample | None, np.ndarray]:
        state_norm = self.norm_stats.normalize("state", sample.state)
        padded, actions_norm = self.normalized_actions(sample)
        subtask = (sample.subtask or "").strip()
        prompt = action_prompt(subtask or sample.task, state_norm)
        if self.loss.fast_ce and self.fast is not None:
            s1 = tokenize_prompt_with_target(self.tokenizer, prompt, self.fast_text_ids(actions_norm), self.max_len)
        else:
            s1 = tokenize_prompt_with_target(self.tokenizer, prompt, [], self.max_len, add_eos=False)
        s2 = None
        if subtask and self.loss.subtask_ce:
            s2 = tokenize_prompt_with_target(
                self.tokenizer, subtask_prompt(sample.task, state_norm), subtask_target(subtask), self.max_len
            )
        return EncodedExample(*s1), (EncodedExample(*s2) if s2 is not None else None), padded
