"""Child process for the crash test: finishes `finished` synthetic episodes, then records a third one frame by frame
(printing each frame index once it has returned from add_frame) until it is killed."""

from __future__ import annotations

import sys
import time

from tests.policy.data.synthetic import SyntheticEpisode, make_writer, write_episode


def main(root: str, finished: int) -> None:
    writer = make_writer(root)
    for i in range(finished):
        write_episode(writer, SyntheticEpisode(f"task {i}", 12, i))
    print("finished", finished, flush=True)
    episode = SyntheticEpisode("interrupted task", 10_000, finished)
    writer.begin_episode(episode.task)
    writer.set_subtask("reach", "policy")
    for i in range(episode.length):
        if i == 3:
            writer.add_event("pause", "operator")
        writer.add_frame(episode.images(i), episode.state(i), episode.action(i), *episode.chunk(i))
        print("frame", i, flush=True)
        time.sleep(0.01)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
