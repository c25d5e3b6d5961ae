"""Request/reply key mappings: openpi's example robots (DROID, LIBERO, ALOHA) and our own robots ("hearth").

Why mappings live in the worker: the wire keys are fixed by the clients that already exist (openpi's example
scripts send `observation/exterior_image_1_left`, ALOHA sends CHW images under `images/cam_high`, ...), while
the model wants `images` keyed by *its* camera names, in *its* order, and a flat state vector. A mapping is the
one place that translates, and it validates everything a client can get wrong (unknown keys, dtype, shape,
oversize images, NaN) so that a bad request becomes a clear error for that client, never a crash or a silent
zero chunk.

Camera slots follow openpi (Physical-Intelligence/openpi src/openpi/policies/droid_policy.py, aloha_policy.py): slot 0 = base/exterior camera, slot 1 = (left) wrist,
slot 2 = right wrist; slot i feeds the policy's i-th camera name. A policy camera the robot does not have is
filled with a black image (openpi pads missing slots the same way).

The openpi robot mappings fix the robot's sizes, as openpi's own input/output transforms do: DROID sends 7 joint
positions + 1 gripper and executes 8 actions per step, LIBERO sends an 8-value state and executes 7. A policy
whose state size differs, or whose action size is smaller, cannot serve that robot and is refused when the
worker starts (`check_compatible`), not on every request; a larger action size is cut to the robot's in each
reply, like openpi's `DroidOutputs` (`actions[:, :8]`) and `LiberoOutputs` (`actions[:, :7]`)
(Physical-Intelligence/openpi, src/openpi/policies/droid_policy.py and libero_policy.py). Images may be HxWx3 or
channel-first 3xHxW there, as openpi's `_parse_image` accepts both.

Error messages echo at most a few, short request keys or values (`preview`): a client that sends a 10 MB map
of junk keys gets a one-line reply, and the worker's log stays one line too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from policy.types import PolicyInputError

MAPPING_NAMES = ("hearth", "droid", "libero", "aloha")

SUBTASK_KEY = "hearth/subtask"
PREV_CHUNK_KEY = "hearth/prev_chunk"
DELAY_KEY = "hearth/delay"
EPISODE_KEY = "hearth/episode_id"
EXTENSION_KEYS = (SUBTASK_KEY, PREV_CHUNK_KEY, DELAY_KEY, EPISODE_KEY)

DEFAULT_MAX_IMAGE_SIDE = 1024
MAX_PROMPT_CHARS = 2000
MAX_EPISODE_ID_CHARS = 128
MAX_ECHOED_ITEMS = 8
MAX_ECHOED_CHARS = 64
MAX_ERROR_CHARS = 1000


def preview(value: Any, limit: int = MAX_ECHOED_CHARS) -> str:
    """`repr(value)`, cut to `limit` characters: what an error may echo of something a client sent."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def preview_keys(keys: Sequence[Any]) -> str:
    """The first few keys, each cut short, and how many more there were: `['a', 'b', ... (+9998 more)]`."""
    shown = ", ".join(preview(k) for k in keys[:MAX_ECHOED_ITEMS])
    more = len(keys) - MAX_ECHOED_ITEMS
    return f"[{shown}{f', ... (+{more} more)' if more > 0 else ''}]"


def cap_error(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """Any error text sent to a client or logged, cut to `limit` characters (a last guard behind `preview`)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


CONTROL_KEY = "__ctrl__"
CONTROL_ACKS = ("episode_start", "episode_end")


def control_ack(message: Any) -> dict[str, str] | None:
    """The reply to an openpi episode control message, or None for an ordinary request.

    openpi's newer client sends `{"__ctrl__": "episode_start", ...}` / `"episode_end"` around each rollout (its
    LIBERO example calls `client.episode_start(...)`) and waits for a binary acknowledgement; its server answers
    `{"__ack__": <ctrl>}`, or `{"__ack__": "ignored"}` for one it does not know
    (Physical-Intelligence/openpi, src/openpi/serving/websocket_policy_server.py). The worker does the same, so
    those clients run unmodified; the messages carry nothing the policy needs.
    """
    if not isinstance(message, dict) or CONTROL_KEY not in message:
        return None
    control = message[CONTROL_KEY]
    return {"__ack__": control if control in CONTROL_ACKS else "ignored"}


@dataclass
class WireObservation:
    """What a request carries for the model; satisfies policy.types.ObservationLike."""

    images: dict[str, np.ndarray]
    state: np.ndarray


@dataclass
class PolicyRequest:
    """One decoded, validated request, ready for the inference thread."""

    kind: Literal["act", "subtask"]
    observation: WireObservation
    prompt: str
    prev_chunk: np.ndarray | None = None
    delay: int = 0
    episode_id: str | None = None


@dataclass
class PolicySpec:
    """The parts of Pi05Policy.metadata a mapping needs (names decide shapes; nothing is hard-coded)."""

    camera_names: list[str]
    state_dim: int
    action_dim: int
    action_horizon: int

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> PolicySpec:
        return cls(
            camera_names=list(metadata["camera_names"]),
            state_dim=len(metadata["state_names"]),
            action_dim=int(metadata.get("action_dim") or len(metadata["action_names"])),
            action_horizon=int(metadata["action_horizon"]),
        )


def _require_array(value: Any, key: str) -> np.ndarray:
    if isinstance(value, list | tuple | int | float) and not isinstance(value, bool):
        value = np.asarray(value)
    if isinstance(value, np.generic):
        value = np.asarray(value)
    if not isinstance(value, np.ndarray):
        raise PolicyInputError(f"{key!r} must be a numpy array, got {type(value).__name__}")
    return value


def _as_float_vector(value: Any, key: str, length: int | None = None) -> np.ndarray:
    array = _require_array(value, key)
    if array.dtype.kind not in "fiu":
        raise PolicyInputError(f"{key!r} must be a numeric (float or int) array, got dtype {array.dtype}")
    array = np.atleast_1d(array)
    if array.ndim != 1:
        raise PolicyInputError(f"{key!r} must be a 1-D vector, got shape {list(array.shape)}")
    if length is not None and array.shape[0] != length:
        raise PolicyInputError(f"{key!r} must have {length} values, got {array.shape[0]}")
    result = array.astype(np.float32)
    if not np.all(np.isfinite(result)):
        raise PolicyInputError(f"{key!r} contains NaN or inf")
    return result


def _as_image(
    value: Any, key: str, max_side: int, channels_first: bool = False, either_layout: bool = False
) -> np.ndarray:
    """uint8 HxWx3 (float images in [0, 1] are scaled by 255, as openpi does).

    `either_layout`: a 3xHxW image is transposed, as openpi's `_parse_image` does for DROID and LIBERO
    (Physical-Intelligence/openpi, src/openpi/policies/libero_policy.py: "if image.shape[0] == 3").
    """
    array = _require_array(value, key)
    if either_layout and array.ndim == 3 and array.shape[0] == 3 and array.shape[2] != 3:
        channels_first = True
    layout = "3xHxW" if channels_first else "HxWx3"
    if either_layout:
        layout = "HxWx3 or 3xHxW"
    if array.ndim != 3 or (array.shape[0] if channels_first else array.shape[2]) != 3:
        raise PolicyInputError(f"image {key!r} must have shape {layout}, got {list(array.shape)}")
    if channels_first:
        array = np.transpose(array, (1, 2, 0))
    height, width = int(array.shape[0]), int(array.shape[1])
    if height == 0 or width == 0:
        raise PolicyInputError(f"image {key!r} is empty ({height}x{width})")
    if max(height, width) > max_side:
        raise PolicyInputError(f"image {key!r} is {height}x{width}; the largest side this worker accepts is {max_side}")
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array)):
            raise PolicyInputError(f"image {key!r} contains NaN or inf")
        return np.ascontiguousarray(np.clip(array * 255.0, 0, 255).astype(np.uint8))
    raise PolicyInputError(f"image {key!r} must be uint8 (or float in [0, 1]), got dtype {array.dtype}")


def _as_prompt(value: Any, key: str = "prompt") -> str:
    if isinstance(value, bytes):
        raise PolicyInputError(f"{key!r} must be a str, got bytes")
    if isinstance(value, np.ndarray) and value.dtype.kind == "U" and value.size == 1:
        value = str(value.reshape(()))
    if not isinstance(value, str):
        raise PolicyInputError(f"{key!r} must be a str, got {type(value).__name__}")
    text = value.strip()
    if not text:
        raise PolicyInputError(f"{key!r} is empty")
    if len(text) > MAX_PROMPT_CHARS:
        raise PolicyInputError(f"{key!r} has {len(text)} characters; at most {MAX_PROMPT_CHARS} are accepted")
    return value


@dataclass
class ObservationMapping:
    """Translate one robot family's request keys into a PolicyRequest, and a chunk into reply keys.

    `image_slots` lists request keys in slot order (slot i feeds the policy's i-th camera); `state_keys` are
    concatenated (in order) into the state vector; `optional_keys` are accepted and ignored (e.g. ALOHA's
    `cam_low`, which openpi accepts but does not use).
    """

    name: str
    image_slots: Sequence[str]
    state_keys: Sequence[str]
    images_nested: bool = False  # ALOHA/hearth put images under an "images" dict; DROID/LIBERO use flat keys
    channels_first: bool = False
    either_layout: bool = False  # also accept 3xHxW (openpi's DROID/LIBERO transforms do)
    required_slots: int = 1
    # The robot's own sizes (None: whatever the policy has, as for hearth's robots): the state a request
    # carries, and the actions a reply carries (the policy's are cut to it, like openpi's output transforms).
    robot_state_dim: int | None = None
    robot_action_dim: int | None = None
    optional_keys: Sequence[str] = ()
    prompt_required: bool = True
    default_prompt: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    # Shapes a random policy built for this mapping should have (serve-policy --random-preset).
    default_camera_names: tuple[str, ...] = ("head", "wrist")
    default_state_dim: int = 8
    default_action_dim: int = 8

    def expected_keys(self) -> list[str]:
        keys = ["images/" + k for k in self.image_slots] if self.images_nested else list(self.image_slots)
        return [*keys, *self.state_keys, "prompt", *EXTENSION_KEYS]

    def check_compatible(self, spec: PolicySpec) -> None:
        """Fail at start-up (not per request) when the policy cannot take this mapping's robot."""
        if len(spec.camera_names) < self.required_slots:
            raise ValueError(
                f"mapping {self.name!r} needs a policy with at least {self.required_slots} cameras, "
                f"this one has {spec.camera_names}"
            )
        if self.robot_state_dim is not None and spec.state_dim != self.robot_state_dim:
            raise ValueError(
                f"mapping {self.name!r} sends a {self.robot_state_dim}-value state ({' + '.join(self.state_keys)}), "
                f"but this policy takes {spec.state_dim} state values; use a checkpoint trained on "
                f"{self.robot_state_dim}-value states (hearth convert --state-dim {self.robot_state_dim})"
            )
        if self.robot_action_dim is not None and spec.action_dim < self.robot_action_dim:
            raise ValueError(
                f"mapping {self.name!r} executes {self.robot_action_dim} action values per step, but this policy "
                f"predicts only {spec.action_dim}; use a checkpoint with at least {self.robot_action_dim} action "
                f"dimensions (hearth convert --action-dim {self.robot_action_dim})"
            )

    # ---- request side -------------------------------------------------------------------------------
    def parse(self, message: Any, spec: PolicySpec, max_image_side: int = DEFAULT_MAX_IMAGE_SIDE) -> PolicyRequest:
        if not isinstance(message, dict):
            raise PolicyInputError(f"a request must be a msgpack map, got {type(message).__name__}")
        for key in message:
            if not isinstance(key, str):
                raise PolicyInputError(f"request keys must be str, got {preview(key)}")
        allowed = set(self.state_keys) | {"prompt", *EXTENSION_KEYS, *self.optional_keys}
        allowed |= {"images"} if self.images_nested else set(self.image_slots)
        unknown = sorted(set(message) - allowed)
        if unknown:
            raise PolicyInputError(
                f"unknown request keys {preview_keys(unknown)} for mapping {self.name!r}; "
                f"expected {self.expected_keys()}"
            )
        images = self._parse_images(message, spec, max_image_side)
        state = self._parse_state(message, spec)
        kind: Literal["act", "subtask"] = "act"
        subtask_flag = message.get(SUBTASK_KEY, False)
        if not isinstance(subtask_flag, bool | np.bool_):
            raise PolicyInputError(f"{SUBTASK_KEY!r} must be a bool, got {type(subtask_flag).__name__}")
        if subtask_flag:
            kind = "subtask"
        if "prompt" in message:
            prompt = _as_prompt(message["prompt"])
        elif self.default_prompt is not None and not self.prompt_required:
            prompt = self.default_prompt
        else:
            raise PolicyInputError(
                f"request is missing 'prompt' (the {'task' if kind == 'subtask' else 'subtask'} text)"
            )
        prev_chunk, delay = self._parse_rtc(message, spec)
        if kind == "subtask" and prev_chunk is not None:
            raise PolicyInputError(f"{PREV_CHUNK_KEY!r} only applies to action requests, not to {SUBTASK_KEY!r}")
        episode_id = message.get(EPISODE_KEY)
        if episode_id is not None and (not isinstance(episode_id, str) or len(episode_id) > MAX_EPISODE_ID_CHARS):
            raise PolicyInputError(f"{EPISODE_KEY!r} must be a str of at most {MAX_EPISODE_ID_CHARS} characters")
        return PolicyRequest(kind, WireObservation(images, state), prompt, prev_chunk, delay, episode_id)

    def _parse_images(self, message: dict, spec: PolicySpec, max_side: int) -> dict[str, np.ndarray]:
        if self.images_nested:
            source = message.get("images")
            if not isinstance(source, dict):
                raise PolicyInputError(f"'images' must be a map of camera name -> image, got {type(source).__name__}")
            allowed = set(self.image_slots) | set(self.optional_keys)
            unknown = sorted(str(k)[:MAX_ECHOED_CHARS] for k in source if k not in allowed)
            if unknown:
                raise PolicyInputError(f"unknown cameras {preview_keys(unknown)}; expected {list(self.image_slots)}")
        else:
            source = message
        missing_required = [k for k in self.image_slots[: self.required_slots] if k not in source]
        if missing_required:
            raise PolicyInputError(f"request is missing images {missing_required}; expected {list(self.image_slots)}")
        images: dict[str, np.ndarray] = {}
        shape: tuple[int, ...] | None = None
        for slot, camera in enumerate(spec.camera_names):
            key = self.image_slots[slot] if slot < len(self.image_slots) else None
            if key is not None and key in source:
                images[camera] = _as_image(source[key], key, max_side, self.channels_first, self.either_layout)
                shape = shape or images[camera].shape
        for camera in spec.camera_names:  # a policy camera this robot lacks: black, like openpi's padded slots
            if camera not in images:
                images[camera] = np.zeros(shape or (224, 224, 3), dtype=np.uint8)
        return images

    def _parse_state(self, message: dict, spec: PolicySpec) -> np.ndarray:
        missing = [k for k in self.state_keys if k not in message]
        if missing:
            raise PolicyInputError(f"request is missing {missing}")
        parts = [_as_float_vector(message[k], k) for k in self.state_keys]
        state = np.concatenate(parts) if len(parts) > 1 else parts[0]
        if state.shape[0] != spec.state_dim:
            sizes = " + ".join(f"{k}[{p.shape[0]}]" for k, p in zip(self.state_keys, parts, strict=True))
            raise PolicyInputError(f"state must have {spec.state_dim} values, got {state.shape[0]} ({sizes})")
        return state

    def _parse_rtc(self, message: dict, spec: PolicySpec) -> tuple[np.ndarray | None, int]:
        raw_chunk = message.get(PREV_CHUNK_KEY)
        raw_delay = message.get(DELAY_KEY, 0)
        if isinstance(raw_delay, np.integer):
            raw_delay = int(raw_delay)
        if not isinstance(raw_delay, int) or isinstance(raw_delay, bool) or raw_delay < 0:
            raise PolicyInputError(
                f"{DELAY_KEY!r} must be a non-negative int (control ticks), got {preview(raw_delay)}"
            )
        if raw_chunk is None:
            if DELAY_KEY in message and raw_delay:
                raise PolicyInputError(
                    f"{DELAY_KEY!r} needs {PREV_CHUNK_KEY!r} (the unexecuted rest of the last chunk)"
                )
            return None, 0
        chunk = _require_array(raw_chunk, PREV_CHUNK_KEY)
        if chunk.dtype.kind not in "fiu" or chunk.ndim != 2 or chunk.shape[1] != spec.action_dim:
            raise PolicyInputError(
                f"{PREV_CHUNK_KEY!r} must be a float array [k, {spec.action_dim}], got dtype {chunk.dtype} "
                f"shape {list(chunk.shape)}"
            )
        if not 0 < chunk.shape[0] <= spec.action_horizon:
            raise PolicyInputError(f"{PREV_CHUNK_KEY!r} must have 1..{spec.action_horizon} rows, got {chunk.shape[0]}")
        chunk = chunk.astype(np.float32)
        if not np.all(np.isfinite(chunk)):
            raise PolicyInputError(f"{PREV_CHUNK_KEY!r} contains NaN or inf")
        if raw_delay > chunk.shape[0]:
            raise PolicyInputError(
                f"{DELAY_KEY!r} is {raw_delay} but {PREV_CHUNK_KEY!r} has only {chunk.shape[0]} actions left"
            )
        return chunk, raw_delay

    # ---- reply side ---------------------------------------------------------------------------------
    def reply(self, actions: np.ndarray) -> dict[str, Any]:
        """openpi replies carry `actions` [H, D], D the robot's action size; we send float32 (openpi's dtype is
        not guaranteed either)."""
        if self.robot_action_dim is not None:
            actions = actions[..., : self.robot_action_dim]
        return {"actions": np.ascontiguousarray(actions, dtype=np.float32)}


def _build_mappings(default_prompt: str | None) -> dict[str, ObservationMapping]:
    return {
        "hearth": ObservationMapping(
            name="hearth",
            image_slots=(),  # filled per policy: our robots send the policy's own camera names
            state_keys=("state",),
            images_nested=True,
        ),
        "droid": ObservationMapping(
            name="droid",
            image_slots=("observation/exterior_image_1_left", "observation/wrist_image_left"),
            state_keys=("observation/joint_position", "observation/gripper_position"),
            required_slots=2,
            either_layout=True,
            robot_state_dim=8,  # joint_position[7] + gripper_position[1]
            robot_action_dim=8,  # 7 joint velocities + gripper (openpi DroidOutputs)
            default_camera_names=("exterior", "wrist"),
            default_state_dim=8,
            default_action_dim=8,
        ),
        "libero": ObservationMapping(
            name="libero",
            image_slots=("observation/image", "observation/wrist_image"),
            state_keys=("observation/state",),
            required_slots=2,
            either_layout=True,
            robot_state_dim=8,  # eef pos[3] + axis-angle[3] + gripper qpos[2]
            robot_action_dim=7,  # openpi LiberoOutputs
            default_camera_names=("agentview", "wrist"),
            default_state_dim=8,
            default_action_dim=7,
        ),
        "aloha": ObservationMapping(
            name="aloha",
            image_slots=("cam_high", "cam_left_wrist", "cam_right_wrist"),
            state_keys=("state",),
            images_nested=True,
            channels_first=True,
            optional_keys=("cam_low",),
            prompt_required=False,
            default_prompt=default_prompt,
            metadata={"reset_pose": [0.0, -1.5, 1.5, 0.0, 0.0, 0.0]},
            robot_state_dim=14,
            robot_action_dim=14,  # openpi AlohaOutputs: actions[:, :14]
            default_camera_names=("cam_high", "cam_left_wrist", "cam_right_wrist"),
            default_state_dim=14,
            default_action_dim=14,
        ),
    }


def get_mapping(name: str, spec: PolicySpec | None = None, default_prompt: str | None = None) -> ObservationMapping:
    """The mapping called `name`; for "hearth" the camera keys are the policy's own camera names."""
    mappings = _build_mappings(default_prompt)
    if name not in mappings:
        raise ValueError(f"unknown mapping {name!r}; expected one of {list(MAPPING_NAMES)}")
    mapping = mappings[name]
    if name == "hearth" and spec is not None:
        mapping.image_slots = tuple(spec.camera_names)
        mapping.required_slots = len(spec.camera_names)
        mapping.default_camera_names = tuple(spec.camera_names)
    if spec is not None:
        mapping.check_compatible(spec)
    return mapping


def mapping_defaults(name: str) -> tuple[tuple[str, ...], int, int]:
    """(camera names, state dim, action dim) a random policy for this mapping should have."""
    mapping = get_mapping(name)
    return mapping.default_camera_names, mapping.default_state_dim, mapping.default_action_dim
