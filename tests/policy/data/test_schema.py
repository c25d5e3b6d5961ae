"""The files on disk follow LeRobotDataset v3.0 (huggingface/lerobot src/lerobot/datasets/utils.py) closely enough for LeRobot's own loader:
info.json fields, column names and Arrow types, tasks.parquet's pandas index, stats.json, and video timestamps
within the loader's 1e-4 s tolerance. The data files are also loaded through HF `datasets` with the features LeRobot
declares, which is exactly how LeRobot reads them."""

from __future__ import annotations

import json

import av
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from policy.data import layout
from policy.data.reader import LeRobotDatasetReader
from tests.policy.data.synthetic import (
    ACTION_NAMES,
    CAMERAS,
    FPS,
    STATE_NAMES,
    SyntheticEpisode,
    make_writer,
    write_episode,
)

LENGTHS = (17, 9)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("schema")
    with make_writer(root) as writer:
        write_episode(
            writer,
            SyntheticEpisode(
                "put the cup in the sink",
                LENGTHS[0],
                0,
                subtasks=[(0, "go", "policy"), (5, "grab", "coach")],
                events=[(5, "interjection", "Policy: go → Relabeled: grab")],
            ),
        )
        write_episode(writer, SyntheticEpisode("wipe the table", LENGTHS[1], 1))
    return root


def test_info_json_fields(root) -> None:
    info = json.loads((root / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0"
    assert info["fps"] == FPS and isinstance(info["fps"], int)
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (2, sum(LENGTHS), 2)
    assert (
        info["chunks_size"] == 1000 and info["data_files_size_in_mb"] == 100 and info["video_files_size_in_mb"] == 200
    )
    assert info["splits"] == {"train": "0:2"}
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] == "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    assert info["robot_type"] == "synthetic"
    features = info["features"]
    for camera, (h, w) in CAMERAS.items():
        f = features[f"observation.images.{camera}"]
        assert f["dtype"] == "video" and f["shape"] == [h, w, 3] and f["names"] == ["height", "width", "channels"]
        assert f["info"]["video.codec"] in ("av1", "h264") and f["info"]["video.pix_fmt"] == "yuv420p"
        assert f["info"]["video.fps"] == FPS and f["info"]["has_audio"] is False and f["info"]["is_depth_map"] is False
        assert (f["info"]["video.height"], f["info"]["video.width"], f["info"]["video.channels"]) == (h, w, 3)
    assert features["observation.state"] == {"dtype": "float32", "shape": [3], "names": STATE_NAMES}
    assert features["action"] == {"dtype": "float32", "shape": [4], "names": ACTION_NAMES}
    for name in ("frame_index", "episode_index", "index", "task_index", "hearth.chunk_id", "hearth.chunk_index"):
        assert features[name] == {"dtype": "int64", "shape": [1], "names": None}
    assert features["timestamp"] == {"dtype": "float32", "shape": [1], "names": None}
    for name in ("language_persistent", "language_events"):
        assert features[name] == {"dtype": "language", "shape": [1], "names": None}


def test_data_parquet_columns_and_types(root) -> None:
    table = pq.read_table(root / "data/chunk-000/file-001.parquet")
    schema = table.schema
    assert schema.field("observation.state").type == pa.list_(pa.float32(), 3)
    assert schema.field("action").type == pa.list_(pa.float32(), 4)
    assert schema.field("timestamp").type == pa.float32()
    for name in ("frame_index", "episode_index", "index", "task_index", "hearth.chunk_id", "hearth.chunk_index"):
        assert schema.field(name).type == pa.int64()
    row = schema.field("language_persistent").type.value_type
    assert [row.field(i).name for i in range(row.num_fields)] == [
        "role",
        "content",
        "style",
        "timestamp",
        "camera",
        "tool_calls",
    ]
    assert row.field("timestamp").type == pa.float32()
    event = schema.field("language_events").type.value_type
    assert [event.field(i).name for i in range(event.num_fields)] == [
        "role",
        "content",
        "style",
        "camera",
        "tool_calls",
    ]
    assert not any(name.startswith("observation.images") for name in schema.names)  # frames live in the MP4 only
    assert table.column("index").to_pylist() == list(range(LENGTHS[0], sum(LENGTHS)))  # global, contiguous
    assert (
        pq.ParquetFile(root / "data/chunk-000/file-000.parquet").metadata.row_group(0).column(0).compression == "SNAPPY"
    )


def test_language_columns_carry_subtasks_and_coaching(root) -> None:
    table = pq.read_table(root / "data/chunk-000/file-000.parquet")
    persistent = table.column("language_persistent").to_pylist()
    assert all(rows == persistent[0] for rows in persistent)  # broadcast on every frame
    assert [(r["content"], r["style"], r["role"]) for r in persistent[0]] == [
        ("go", "subtask", "assistant"),
        ("grab", "subtask", "user"),
    ]
    assert persistent[0][1]["timestamp"] == pytest.approx(5 / FPS)
    events = table.column("language_events").to_pylist()
    assert events[5] == [
        {
            "role": "user",
            "content": "Policy: go → Relabeled: grab",
            "style": "interjection",
            "camera": None,
            "tool_calls": None,
        }
    ]
    assert all(not e for i, e in enumerate(events) if i != 5)


def test_tasks_parquet_has_the_pandas_task_index(root) -> None:
    tasks = pd.read_parquet(root / "meta/tasks.parquet")
    assert tasks.index.name == "task" and list(tasks.columns) == ["task_index"]
    assert tasks.iloc[1].name == "wipe the table"  # how LeRobot recovers the task string
    assert tasks.loc["put the cup in the sink", "task_index"] == 0


def test_episodes_metadata_columns(root) -> None:
    rows = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    first, second = rows
    assert (
        first["episode_index"] == 0 and first["tasks"] == ["put the cup in the sink"] and first["length"] == LENGTHS[0]
    )
    assert (second["dataset_from_index"], second["dataset_to_index"]) == (LENGTHS[0], sum(LENGTHS))
    assert (second["data/chunk_index"], second["data/file_index"]) == (0, 1)
    for camera in CAMERAS:
        key = f"videos/observation.images.{camera}"
        assert second[f"{key}/from_timestamp"] == 0.0
        assert second[f"{key}/to_timestamp"] == pytest.approx(LENGTHS[1] / FPS)
        assert (second[f"{key}/chunk_index"], second[f"{key}/file_index"]) == (0, 1)
    assert first["meta/episodes/chunk_index"] == 0 and first["stats/action/q99"] is not None


def test_stats_json_has_every_statistic(root) -> None:
    stats = json.loads((root / "meta/stats.json").read_text())
    names = {"min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99"}
    for feature in ("observation.state", "action", "timestamp", "frame_index", "index", "observation.images.head"):
        assert set(stats[feature]) == names, feature
    assert stats["action"]["count"] == [sum(LENGTHS)]
    assert np.array(stats["observation.images.head"]["mean"]).shape == (3, 1, 1)
    assert (
        np.min(stats["observation.images.wrist"]["min"]) >= 0.0
        and np.max(stats["observation.images.wrist"]["max"]) <= 1.0
    )
    reader = LeRobotDatasetReader(root)
    actions = np.concatenate([reader.episode_arrays(i)["action"] for i in (0, 1)])
    np.testing.assert_allclose(stats["action"]["mean"], actions.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(stats["action"]["std"], actions.std(axis=0), rtol=1e-4)
    np.testing.assert_allclose(stats["action"]["min"], actions.min(axis=0))
    per_episode = [reader.episode_arrays(i)["action"] for i in (0, 1)]
    # LeRobot's conservative envelope: the lowest episode q01, the highest episode q99
    np.testing.assert_allclose(
        stats["action"]["q01"], np.min([np.quantile(a, 0.01, axis=0) for a in per_episode], axis=0), rtol=1e-6
    )
    np.testing.assert_allclose(
        stats["action"]["q99"], np.max([np.quantile(a, 0.99, axis=0) for a in per_episode], axis=0), rtol=1e-6
    )


def test_video_timestamps_within_lerobot_tolerance(root) -> None:
    reader = LeRobotDatasetReader(root)
    for info in reader.episodes:
        for camera in CAMERAS:
            path = reader.video_path(info.index, camera)
            assert path == root / layout.video_path(camera, info.index)
            with av.open(str(path)) as container:
                stream = container.streams.video[0]
                assert stream.average_rate == FPS
                stamps = [float(frame.pts * frame.time_base) for frame in container.decode(stream)]
            assert len(stamps) == info.length  # one video frame per data row
            np.testing.assert_array_less(np.abs(np.array(stamps) - np.arange(info.length) / FPS), 1e-4)


def test_data_loads_through_hf_datasets_with_lerobot_features(root) -> None:
    datasets = pytest.importorskip("datasets")
    json_feature = datasets.Json() if hasattr(datasets, "Json") else datasets.Value("string")
    text = datasets.Value("string")
    features = datasets.Features(
        {
            "observation.state": datasets.List(datasets.Value("float32"), length=3),
            "action": datasets.List(datasets.Value("float32"), length=4),
            "hearth.chunk_id": datasets.Value("int64"),
            "hearth.chunk_index": datasets.Value("int64"),
            "timestamp": datasets.Value("float32"),
            "frame_index": datasets.Value("int64"),
            "episode_index": datasets.Value("int64"),
            "index": datasets.Value("int64"),
            "task_index": datasets.Value("int64"),
            "language_persistent": datasets.List(
                {
                    "role": text,
                    "content": text,
                    "style": text,
                    "timestamp": datasets.Value("float32"),
                    "camera": text,
                    "tool_calls": datasets.List(json_feature),
                }
            ),
            "language_events": datasets.List(
                {
                    "role": text,
                    "content": text,
                    "style": text,
                    "camera": text,
                    "tool_calls": datasets.List(json_feature),
                }
            ),
        }
    )
    files = sorted(str(p) for p in (root / "data").glob("chunk-*/file-*.parquet"))
    hf = datasets.Dataset.from_parquet(files, features=features, cache_dir=str(root.parent / "hf-cache"))
    assert len(hf) == sum(LENGTHS)
    assert hf[3]["observation.state"] == pytest.approx(SyntheticEpisode("", 1, 0).state(3).tolist())
    assert hf[LENGTHS[0]]["episode_index"] == 1 and hf[LENGTHS[0]]["frame_index"] == 0
    assert hf[5]["language_events"][0]["style"] == "interjection"
    episodes = datasets.Dataset.from_parquet(
        str(root / "meta/episodes/chunk-000/file-000.parquet"), cache_dir=str(root.parent / "hf-cache")
    )
    assert episodes["length"] == list(LENGTHS)


def summary_rows(summary: str) -> dict[str, int]:
    """entity path -> rows of its non-static chunks, from a Rerun store summary."""
    rows: dict[str, int] = {}
    for line in summary.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1].startswith("rows=") and "static=False" in line and "frame_index" in line:
            rows[parts[0]] = max(rows.get(parts[0], 0), int(parts[1][5:]))
    return rows


def test_rerun_lerobot_reader_reads_every_episode(root) -> None:
    """Rerun ships its own LeRobot v2/v3 loader: an independent implementation of the format reads our files."""
    experimental = pytest.importorskip("rerun.experimental")
    reader = experimental.LeRobotReader(str(root))
    assert list(reader.episodes()) == [0, 1]
    for episode, length in enumerate(LENGTHS):
        rows = summary_rows(str(reader.stream(episode).collect().summary()))
        assert rows["/action"] == length and rows["/observation.state"] == length
        for camera in CAMERAS:
            assert rows[f"/observation.images.{camera}"] == length  # one video sample per data row
    rows = summary_rows(str(reader.stream(0).collect().summary()))
    assert rows["/language_persistent/subtask/assistant"] == 1 and rows["/language_events/interjection/user"] == 1
