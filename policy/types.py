"""Data model of the policy side: the action chunk it produces and the observation shape it accepts.

`ObservationLike` is a Protocol so the policy package never imports robots: anything with `images`
and `state` (robots.types.Observation included) is accepted.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


@runtime_checkable
class ObservationLike(Protocol):
    images: dict[str, np.ndarray]
    state: np.ndarray


class ActionChunk(BaseModel):
    """H x D actions in robot units, produced for one subtask at one moment."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    actions: np.ndarray
    action_names: list[str] = Field(default_factory=list)
    control_hz: float = Field(default=20.0, gt=0)
    subtask: str = ""
    chunk_id: int = Field(default=0, ge=0)

    @field_validator("actions", mode="before")
    @classmethod
    def _check_actions(cls, actions: object) -> np.ndarray:
        array = np.asarray(actions)
        if array.ndim != 2:
            raise ValueError(f"actions must have shape (H, D), got shape {array.shape}")
        if not np.issubdtype(array.dtype, np.number):
            raise ValueError(f"actions must be numeric with shape (H, D), got dtype {array.dtype}")
        array = array.astype(np.float32)
        if not np.all(np.isfinite(array)):
            raise ValueError("actions contain NaN or inf; expected finite values of shape (H, D)")
        return array

    @model_validator(mode="after")
    def _names_match(self) -> ActionChunk:
        if self.action_names and len(self.action_names) != self.actions.shape[1]:
            raise ValueError(
                f"action_names has {len(self.action_names)} names but actions has shape {self.actions.shape}; "
                "expected D names"
            )
        return self

    @property
    def horizon(self) -> int:
        return int(self.actions.shape[0])

    @property
    def action_dim(self) -> int:
        return int(self.actions.shape[1])


class PolicyInputError(ValueError):
    """Bad input to a policy (missing camera, wrong shape, NaN state, prompt too long), phrased for the caller.

    The worker turns it into an error frame for that client only; it never becomes a silent zero chunk.
    """
