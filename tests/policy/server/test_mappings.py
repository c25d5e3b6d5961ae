"""Request mappings for DROID, LIBERO, ALOHA and hearth robots: what they accept, and the errors they give."""

from __future__ import annotations

import numpy as np
import pytest

from policy.mappings import PolicySpec, get_mapping
from policy.types import PolicyInputError

SPEC2 = PolicySpec(camera_names=["head", "wrist"], state_dim=8, action_dim=7, action_horizon=10)
DROID_SPEC = PolicySpec(camera_names=["head", "wrist"], state_dim=8, action_dim=8, action_horizon=10)


def _img(h: int = 24, w: int = 24, chw: bool = False, dtype: type = np.uint8) -> np.ndarray:
    rng = np.random.default_rng(h * 1000 + w)
    image = rng.integers(0, 256, size=(h, w, 3)).astype(dtype)
    return np.transpose(image, (2, 0, 1)).copy() if chw else image


def test_droid_keys_fill_policy_cameras_in_slot_order_and_concatenate_state() -> None:
    exterior, wrist = _img(), _img(30, 40)
    request = get_mapping("droid", DROID_SPEC).parse(
        {
            "observation/exterior_image_1_left": exterior,
            "observation/wrist_image_left": wrist,
            "observation/joint_position": np.arange(7, dtype=np.float64),
            "observation/gripper_position": np.float64(0.5),  # scalar is fine, as in openpi
            "prompt": "pick up the cup",
        },
        DROID_SPEC,
    )
    assert request.kind == "act"
    np.testing.assert_array_equal(request.observation.images["head"], exterior)
    np.testing.assert_array_equal(request.observation.images["wrist"], wrist)
    np.testing.assert_array_equal(request.observation.state, [0, 1, 2, 3, 4, 5, 6, 0.5])
    assert request.observation.state.dtype == np.float32


def test_libero_float_images_are_scaled_like_openpi() -> None:
    image = np.full((16, 16, 3), 0.5, dtype=np.float32)
    request = get_mapping("libero", SPEC2).parse(
        {
            "observation/image": image,
            "observation/wrist_image": _img(16, 16),
            "observation/state": np.zeros(8),
            "prompt": "open the drawer",
        },
        SPEC2,
    )
    assert request.observation.images["head"].dtype == np.uint8
    assert int(request.observation.images["head"][0, 0, 0]) == 127


def test_aloha_takes_chw_images_ignores_cam_low_pads_missing_slots_and_has_a_default_prompt() -> None:
    spec = PolicySpec(camera_names=["high", "left", "right"], state_dim=14, action_dim=14, action_horizon=50)
    high = _img(20, 20)
    mapping = get_mapping("aloha", spec, default_prompt="fold the towel")
    request = mapping.parse(
        {
            "images": {"cam_high": np.transpose(high, (2, 0, 1)).copy(), "cam_low": _img(chw=True)},
            "state": np.zeros(14, dtype=np.float32),
        },
        spec,
    )
    np.testing.assert_array_equal(request.observation.images["high"], high)
    assert not request.observation.images["left"].any() and request.observation.images["left"].shape == (20, 20, 3)
    assert request.prompt == "fold the towel"
    assert mapping.metadata["reset_pose"] == [0.0, -1.5, 1.5, 0.0, 0.0, 0.0]


def test_hearth_extensions_subtask_rtc_and_episode_id() -> None:
    mapping = get_mapping("hearth", SPEC2)
    base = {"images": {"head": _img(), "wrist": _img()}, "state": np.zeros(8, np.float32), "prompt": "tidy up"}
    subtask = mapping.parse({**base, "hearth/subtask": True, "hearth/episode_id": "ep-7"}, SPEC2)
    assert subtask.kind == "subtask" and subtask.episode_id == "ep-7"
    prev = np.ones((6, 7), np.float32)
    act = mapping.parse({**base, "hearth/prev_chunk": prev, "hearth/delay": 3}, SPEC2)
    assert act.kind == "act" and act.delay == 3
    np.testing.assert_array_equal(act.prev_chunk, prev)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"extra": 1}, "unknown request keys"),
        ({"images": {"head": _img(), "wrist": _img(), "third": _img()}}, "unknown cameras"),
        ({"images": {"head": _img()}}, "missing images"),
        ({"images": {"head": _img(), "wrist": np.zeros((8, 8, 3), np.int32)}}, "uint8"),
        ({"images": {"head": _img(), "wrist": np.zeros((8, 8), np.uint8)}}, "HxWx3"),
        ({"images": {"head": _img(), "wrist": np.zeros((2000, 8, 3), np.uint8)}}, "largest side"),
        ({"images": "nope"}, "map of camera"),
        ({"state": np.zeros(5, np.float32)}, "8 values"),
        ({"state": np.array([np.nan] * 8, np.float32)}, "NaN"),
        ({"state": np.array(["a"] * 8)}, "numeric"),
        ({"state": "zeros"}, "numpy array"),
        ({"prompt": ""}, "empty"),
        ({"prompt": 7}, "str"),
        ({"prompt": "x" * 5000}, "at most"),
        ({"hearth/subtask": "yes"}, "bool"),
        ({"hearth/prev_chunk": np.ones((4, 3), np.float32), "hearth/delay": 1}, r"\[k, 7\]"),
        ({"hearth/prev_chunk": np.ones((11, 7), np.float32)}, "1..10 rows"),
        ({"hearth/prev_chunk": np.ones((4, 7), np.float32), "hearth/delay": 5}, "only 4 actions"),
        ({"hearth/delay": 2}, "needs 'hearth/prev_chunk'"),
        ({"hearth/delay": -1}, "non-negative"),
        ({"hearth/episode_id": 5}, "episode_id"),
    ],
)
def test_bad_requests_get_a_clear_error(change: dict, match: str) -> None:
    base = {"images": {"head": _img(), "wrist": _img()}, "state": np.zeros(8, np.float32), "prompt": "tidy up"}
    with pytest.raises(PolicyInputError, match=match):
        get_mapping("hearth", SPEC2).parse({**base, **change}, SPEC2)


def test_non_map_requests_and_missing_prompt_are_rejected() -> None:
    mapping = get_mapping("hearth", SPEC2)
    with pytest.raises(PolicyInputError, match="msgpack map"):
        mapping.parse([1, 2], SPEC2)
    with pytest.raises(PolicyInputError, match="missing 'prompt'"):
        mapping.parse({"images": {"head": _img(), "wrist": _img()}, "state": np.zeros(8, np.float32)}, SPEC2)


def test_unknown_mapping_and_incompatible_policy_fail_at_start() -> None:
    with pytest.raises(ValueError, match="unknown mapping"):
        get_mapping("franka")
    with pytest.raises(ValueError, match="at least 2 cameras"):
        get_mapping("droid", PolicySpec(camera_names=["head"], state_dim=8, action_dim=8, action_horizon=10))
