"""ChunkSampleDataset: each frame's sample carries the following action chunk, padded correctly at episode ends."""

from __future__ import annotations

import numpy as np
import pytest
import torch.utils.data

from policy.data.samples import ChunkSampleDataset
from tests.policy.data.synthetic import CAMERAS, SyntheticEpisode, make_writer, write_episode

EPISODES = [
    SyntheticEpisode("put the cup in the sink", 14, 0, subtasks=[(4, "pick up the cup", "expert")]),
    SyntheticEpisode("wipe the table", 6, 1),
]
HORIZON = 8


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("samples")
    with make_writer(root) as writer:
        for episode in EPISODES:
            write_episode(writer, episode)
    return root


def test_samples_hold_the_following_chunk_with_end_padding(root) -> None:
    dataset = ChunkSampleDataset(root, action_horizon=HORIZON)
    assert len(dataset) == 20
    sample = dataset[10]  # episode 0, frame 10: 4 real steps, then the last action repeated and marked as padding
    episode = EPISODES[0]
    expected = np.stack([episode.action(min(10 + k, 13)) for k in range(HORIZON)])
    np.testing.assert_array_equal(sample["actions"], expected)
    assert sample["action_is_pad"].tolist() == [False] * 4 + [True] * 4
    np.testing.assert_array_equal(sample["state"], episode.state(10))
    assert sample["task"] == "put the cup in the sink" and sample["subtask"] == "pick up the cup"
    assert sample["prompt"] == "pick up the cup" and sample["subtask_source"] == "expert"
    for camera, (h, w) in CAMERAS.items():
        image = sample["images"][camera]
        assert image.shape == (h, w, 3) and image.dtype == np.uint8
        assert np.abs(image.astype(int) - episode.images(10)[camera]).mean() < 6

    early = dataset[2]
    assert early["subtask"] == "" and early["prompt"] == "put the cup in the sink"
    assert not early["action_is_pad"].any()
    last = dataset[19]  # episode 1's last frame: one real step
    assert (last["episode_index"], last["frame_index"]) == (1, 5)
    assert last["action_is_pad"].tolist() == [False] + [True] * (HORIZON - 1)
    np.testing.assert_array_equal(last["actions"], np.stack([EPISODES[1].action(5)] * HORIZON))
    with pytest.raises(IndexError):
        dataset[20]


def test_episode_subset_camera_subset_and_dataloader(root) -> None:
    dataset = ChunkSampleDataset(root, action_horizon=HORIZON, episodes=[1], cameras=["wrist"])
    assert len(dataset) == 6 and set(dataset[0]["images"]) == {"wrist"}
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, shuffle=False)
    batch = next(iter(loader))
    assert batch["actions"].shape == (4, HORIZON, 4) and batch["images"]["wrist"].shape == (4, 32, 32, 3)
    with pytest.raises(ValueError, match="unknown cameras"):
        ChunkSampleDataset(root, cameras=["third"])
