"""Write synthetic episodes, read them back: every scalar exact, images within codec tolerance, frames aligned."""

from __future__ import annotations

import numpy as np
import pytest

from policy.data.reader import LeRobotDatasetReader
from policy.data.writer import DatasetError
from policy.normalize import NormStats
from tests.policy.data.synthetic import CAMERAS, FPS, SyntheticEpisode, make_writer, write_episode

EPISODES = [
    SyntheticEpisode(
        "put the cup in the sink",
        37,
        0,
        subtasks=[(0, "go to the table", "policy"), (12, "pick up the cup", "coach"), (25, "place it", "expert")],
        events=[
            (12, "interjection", "Policy: go to the sink → Relabeled: pick up the cup"),
            (20, "pause", "operator"),
            (22, "resume", "operator"),
        ],
    ),
    SyntheticEpisode("wipe the table", 23, 1, subtasks=[(0, "grab the sponge", "api")], events=[(22, "estop", "test")]),
]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("roundtrip")
    with make_writer(root) as writer:
        assert write_episode(writer, EPISODES[0], "succeeded", True) == 0
        assert write_episode(writer, EPISODES[1], "stopped-by-e-stop", None) == 1
    return root


def test_scalars_are_exact_and_indices_contiguous(dataset) -> None:
    reader = LeRobotDatasetReader(dataset)
    assert [e.index for e in reader.episodes] == [0, 1]
    start = 0
    for episode, info in zip(EPISODES, reader.episodes, strict=True):
        arrays = reader.episode_arrays(info.index)
        n = episode.length
        assert info.length == n and info.task == episode.task
        np.testing.assert_array_equal(arrays["state"], np.stack([episode.state(i) for i in range(n)]))
        np.testing.assert_array_equal(arrays["action"], np.stack([episode.action(i) for i in range(n)]))
        np.testing.assert_array_equal(arrays["chunk_id"], [episode.chunk(i)[0] for i in range(n)])
        np.testing.assert_array_equal(arrays["chunk_index"], [episode.chunk(i)[1] for i in range(n)])
        np.testing.assert_array_equal(arrays["frame_index"], np.arange(n))
        np.testing.assert_array_equal(arrays["index"], start + np.arange(n))
        np.testing.assert_array_equal(arrays["timestamp"], (np.arange(n) / FPS).astype(np.float32))
        assert (info.from_index, info.to_index) == (start, start + n)
        start += n
    assert reader.episodes[0].outcome == "succeeded" and reader.episodes[0].success is True
    assert reader.episodes[1].outcome == "stopped-by-e-stop" and reader.episodes[1].success is None
    assert reader.tasks == ["put the cup in the sink", "wipe the table"]


def test_images_decode_within_codec_tolerance_and_aligned(dataset) -> None:
    reader = LeRobotDatasetReader(dataset)
    for episode, info in zip(EPISODES, reader.episodes, strict=True):
        frames = list(reader.episode_frames(info.index))
        assert len(frames) == episode.length
        for frame in frames:
            for camera in CAMERAS:
                decoded = frame.images[camera].astype(np.int16)
                assert decoded.shape == (*CAMERAS[camera], 3)
                error = np.abs(decoded - episode.images(frame.frame_index)[camera]).mean()
                assert error < 6.0, f"{camera} frame {frame.frame_index}: mean abs error {error}"
                if 0 < frame.frame_index < episode.length - 1:  # the moving square pins the frame to its row
                    for other in (frame.frame_index - 1, frame.frame_index + 1):
                        assert error < np.abs(decoded - episode.images(other)[camera]).mean()


def test_subtasks_and_events_timeline(dataset) -> None:
    reader = LeRobotDatasetReader(dataset)
    info = reader.episode(0)
    assert [(s["frame_index"], s["text"], s["source"]) for s in info.subtasks] == EPISODES[0].subtasks
    assert [(e["frame_index"], e["kind"], e["text"]) for e in info.events] == EPISODES[0].events
    assert info.subtasks[1]["timestamp"] == pytest.approx(12 / FPS)
    frames = {f.frame_index: f for f in reader.episode_frames(0, cameras=["head"])}
    assert (frames[11].subtask, frames[11].subtask_source) == ("go to the table", "policy")
    assert (frames[12].subtask, frames[12].subtask_source) == ("pick up the cup", "coach")
    assert [e["kind"] for e in frames[12].events] == ["interjection"]
    assert frames[36].subtask == "place it" and frames[36].images.keys() == {"head"}
    assert [(e["kind"], e["frame_index"]) for e in reader.episode(1).events] == [("estop", 22)]


def test_reopening_appends_and_reuses_task_indices(dataset, tmp_path) -> None:
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(dataset, root)
    with make_writer(root) as writer:
        assert writer.num_episodes == 2
        assert write_episode(writer, SyntheticEpisode("wipe the table", 5, 2)) == 2
    reader = LeRobotDatasetReader(root)
    assert [e.length for e in reader.episodes] == [37, 23, 5]
    assert reader.tasks == ["put the cup in the sink", "wipe the table"]
    assert reader.episode_arrays(2)["task_index"].tolist() == [1] * 5
    assert reader.episode_arrays(2)["index"].tolist() == list(range(60, 65))


def test_norm_stats_are_exact_quantiles_of_all_frames(dataset) -> None:
    reader = LeRobotDatasetReader(dataset)
    stats = reader.norm_stats()
    assert isinstance(stats, NormStats)
    states = np.concatenate([np.stack([e.state(i) for i in range(e.length)]) for e in EPISODES])
    actions = np.concatenate([np.stack([e.action(i) for i in range(e.length)]) for e in EPISODES])
    expected = NormStats.from_arrays({"state": states, "actions": actions})
    for key in ("state", "actions"):
        for name in ("mean", "std", "q01", "q99"):
            np.testing.assert_allclose(getattr(stats[key], name), getattr(expected[key], name), rtol=1e-6)


def test_bad_frames_are_rejected_clearly_and_lose_nothing(tmp_path) -> None:
    episode = SyntheticEpisode("t", 4)
    with make_writer(tmp_path / "d") as writer:
        writer.begin_episode("t")
        writer.add_frame(episode.images(0), episode.state(0), episode.action(0))
        with pytest.raises(ValueError, match="lacks camera 'wrist'"):
            writer.add_frame({"head": episode.images(1)["head"]}, episode.state(1), episode.action(1))
        with pytest.raises(ValueError, match="'head' must be uint8"):
            writer.add_frame(
                {**episode.images(1), "head": np.zeros((10, 10, 3), np.uint8)}, episode.state(1), episode.action(1)
            )
        with pytest.raises(ValueError, match="state must have shape"):
            writer.add_frame(episode.images(1), np.zeros(5), episode.action(1))
        with pytest.raises(ValueError, match="finite"):
            writer.add_frame(episode.images(1), np.array([np.nan, 0, 0]), episode.action(1))
        with pytest.raises(ValueError, match="subtask source"):
            writer.set_subtask("x", "robot")
        writer.add_frame(episode.images(1), episode.state(1), episode.action(1))
        with pytest.raises(DatasetError, match="still recording"):
            writer.begin_episode("other")
        writer.end_episode("succeeded")
    assert LeRobotDatasetReader(tmp_path / "d").episode(0).length == 2


def test_empty_episode_is_not_saved_and_second_writer_is_refused(tmp_path) -> None:
    with make_writer(tmp_path / "d") as writer:
        with pytest.raises(DatasetError, match="another writer"):
            make_writer(tmp_path / "d")
        writer.begin_episode("t")
        assert writer.end_episode("aborted") is None
        assert writer.num_episodes == 0
        assert write_episode(writer, SyntheticEpisode("t", 3)) == 0


def test_the_robot_interface_version_is_recorded_kept_and_enforced(tmp_path) -> None:
    import json

    from policy.data.layout import INTERFACE_VERSION_KEY
    from policy.data.merge import merge_datasets
    from policy.data.writer import LeRobotDatasetWriter
    from tests.policy.data.synthetic import ACTION_NAMES, STATE_NAMES

    def writer(root, version):
        return LeRobotDatasetWriter(
            root, FPS, "synthetic", CAMERAS, STATE_NAMES, ACTION_NAMES, robot_interface_version=version
        )

    def recorded(root):
        return json.loads((root / "meta" / "info.json").read_text()).get(INTERFACE_VERSION_KEY)

    with writer(tmp_path / "v2", 2) as w:
        write_episode(w, SyntheticEpisode("t", 3))
    assert recorded(tmp_path / "v2") == 2
    with writer(tmp_path / "v2", None) as w:  # a writer that does not know the version keeps the dataset's
        write_episode(w, SyntheticEpisode("t", 3))
    assert recorded(tmp_path / "v2") == 2
    with pytest.raises(DatasetError, match="robot interface version 2 != 3"):
        writer(tmp_path / "v2", 3)
    with make_writer(tmp_path / "old") as w:  # recorded before datasets stored the version: v1
        write_episode(w, SyntheticEpisode("t", 3))
    assert recorded(tmp_path / "old") is None
    with pytest.raises(DatasetError, match="robot interface version 1 != 2"):
        writer(tmp_path / "old", 2)
    assert merge_datasets(tmp_path / "merged", [tmp_path / "v2"]) == 2
    assert recorded(tmp_path / "merged") == 2


def test_incompatible_features_are_refused(tmp_path) -> None:
    from policy.data.writer import LeRobotDatasetWriter

    with make_writer(tmp_path / "d") as writer:
        write_episode(writer, SyntheticEpisode("t", 3))
    with pytest.raises(DatasetError, match="different features"):
        LeRobotDatasetWriter(tmp_path / "d", FPS, "synthetic", CAMERAS, ["a"], ["b"])
    with pytest.raises(ValueError, match="integer frame rate"):
        LeRobotDatasetWriter(tmp_path / "e", 12.5, "synthetic", CAMERAS, ["a"], ["b"])
    with pytest.raises(ValueError, match="even"):
        LeRobotDatasetWriter(tmp_path / "f", FPS, "synthetic", {"odd": (31, 32)}, ["a"], ["b"])
