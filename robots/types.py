"""Data model shared by robots and everyone who reads them: observations and robot descriptions.

Validation happens here, once, so every consumer (policy worker, recorder, API) can trust the shapes.
Errors name the field and the expected shape because they surface to operators and integrators.
"""

from __future__ import annotations

import time

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator


class CameraSpec(BaseModel):
    """A camera a robot provides: its name, the image size the policy is given, and the size people see.

    Two sizes because they serve different readers: the policy's input is small (96 px for the bundled model, and
    a checkpoint is trained on exactly that rendering), while an operator watching live or reviewing a recording
    needs a sharp picture. `operator_height`/`operator_width` unset means people see the policy's frames.
    """

    name: str
    height: int = Field(gt=0)
    width: int = Field(gt=0)
    wrist: bool = False
    operator_height: int | None = Field(None, gt=0)
    operator_width: int | None = Field(None, gt=0)

    @property
    def operator_shape(self) -> tuple[int, int]:
        """(height, width) of the frames shown live and recorded."""
        return (self.operator_height or self.height, self.operator_width or self.width)


class JointSpec(BaseModel):
    """One state or action dimension with its unit and limits (limits may be infinite)."""

    name: str
    unit: str = ""
    lower: float = -np.inf
    upper: float = np.inf

    @model_validator(mode="after")
    def _ordered(self) -> JointSpec:
        if self.lower > self.upper:
            raise ValueError(f"joint {self.name!r}: lower limit {self.lower} > upper limit {self.upper}")
        return self


class RobotDescription(BaseModel):
    """What a robot is: cameras, state and action spaces, control rate, and the tasks it knows."""

    name: str
    robot_type: str
    cameras: list[CameraSpec]
    state: list[JointSpec]
    actions: list[JointSpec]
    control_hz: float = Field(gt=0)
    tasks: list[str] = Field(default_factory=list)
    # Which meaning of the state/action vectors this robot speaks; a checkpoint trained on one version must not
    # drive a robot that speaks another (same names, different units is the dangerous case).
    interface_version: int = Field(1, ge=1)

    @property
    def camera_names(self) -> list[str]:
        return [c.name for c in self.cameras]

    @property
    def state_names(self) -> list[str]:
        return [s.name for s in self.state]

    @property
    def action_names(self) -> list[str]:
        return [a.name for a in self.actions]


class Observation(BaseModel):
    """One snapshot of a robot: named uint8 HxWx3 camera images, a float state vector with names, a timestamp.

    `images` are the policy's input (its configured size). `operator_images` are optional sharper renders of the
    same cameras at the same instant for people (live view, recordings); read them with `operator_image`, which
    falls back to the policy frame for a robot that renders only one size.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    images: dict[str, np.ndarray]
    operator_images: dict[str, np.ndarray] = Field(default_factory=dict)
    state: np.ndarray
    state_names: list[str] = Field(default_factory=list)
    timestamp: float = Field(default_factory=time.time)

    @field_validator("images", "operator_images", mode="before")
    @classmethod
    def _check_images(cls, images: object, info: ValidationInfo) -> dict[str, np.ndarray]:
        field = info.field_name
        if not isinstance(images, dict):
            raise ValueError(
                f"{field} must be a mapping of camera name to (H, W, 3) uint8 arrays, got {type(images).__name__}"
            )
        for name, image in images.items():
            if not isinstance(image, np.ndarray):
                raise ValueError(
                    f"{field}[{name!r}] must be a numpy array of shape (H, W, 3) uint8, got {type(image).__name__}"
                )
            if image.ndim != 3 or image.shape[2] != 3:
                raise ValueError(f"{field}[{name!r}] must have shape (H, W, 3), got {image.shape}")
            if image.dtype != np.uint8:
                raise ValueError(f"{field}[{name!r}] must be uint8 (H, W, 3), got dtype {image.dtype}")
        return images

    @field_validator("state", mode="before")
    @classmethod
    def _check_state(cls, state: object) -> np.ndarray:
        array = np.asarray(state)
        if array.ndim != 1:
            raise ValueError(f"state must be a 1-D vector of shape (n,), got shape {array.shape}")
        if not np.issubdtype(array.dtype, np.number):
            raise ValueError(f"state must be numeric of shape (n,), got dtype {array.dtype}")
        return array.astype(np.float32)

    def operator_image(self, camera: str) -> np.ndarray:
        """The frame people see for `camera`: the operator render when the robot made one, else the policy's."""
        image = self.operator_images.get(camera)
        return self.images[camera] if image is None else image

    @model_validator(mode="after")
    def _names_match(self) -> Observation:
        if self.state_names and len(self.state_names) != self.state.shape[0]:
            raise ValueError(
                f"state_names has {len(self.state_names)} names but state has shape {self.state.shape}; expected equal length"
            )
        return self


class SafetyEvent(BaseModel):
    """An intervention of the safety layer (clamp, NaN rejection, e-stop, watchdog), reported upward as an event."""

    kind: str
    message: str
    timestamp: float = Field(default_factory=time.time)
    details: dict[str, object] = Field(default_factory=dict)
