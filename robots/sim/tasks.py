"""The household task suite: what each task moves where, its subtask texts, its success check and its progress.

A task is a list of "moves" (pick one object from a place, put it somewhere). Each move has four subtasks in the
paper's lowercase imperative style — "go to the table", "pick up the can", "go to the counter",
"place the can in the sink" — so the scripted expert, the success check and the progress score share one
definition and cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Where the robot drives to work at a destination (the bowl stands on the table, the sink is in the counter).
FURNITURE_OF = {"table": "table", "counter": "counter", "sink": "counter", "shelf": "shelf", "bowl": "table"}
PREPOSITION = {"table": "on", "counter": "on", "sink": "in", "shelf": "on", "bowl": "in"}


@dataclass(frozen=True)
class Move:
    """Carry ``obj`` from ``source`` (a surface) to ``target`` (a surface or the bowl)."""

    obj: str
    source: str
    target: str
    label: str = ""  # how subtasks name the object (defaults to obj)

    @property
    def name(self) -> str:
        return self.label or self.obj

    def subtasks(self) -> list[str]:
        return [
            f"go to the {FURNITURE_OF[self.source]}",
            f"pick up the {self.name}",
            f"go to the {FURNITURE_OF[self.target]}",
            f"place the {self.name} {PREPOSITION[self.target]} the {self.target}",
        ]


@dataclass(frozen=True)
class TaskSpec:
    """One household task: its text (the prompt a user gives) and the moves that achieve it."""

    text: str
    moves: tuple[Move, ...]
    # Objects that may be placed as distractors, and surfaces they may go on (never a target of this task).
    distractor_surfaces: tuple[str, ...] = field(default=("table", "counter", "shelf"))

    @property
    def subtasks(self) -> list[str]:
        return [s for move in self.moves for s in move.subtasks()]

    @property
    def objects(self) -> list[str]:
        return [m.obj for m in self.moves]


TASK_SPECS: tuple[TaskSpec, ...] = (
    TaskSpec("put the can in the sink", (Move("can", "table", "sink"),), ("table", "counter", "shelf")),
    TaskSpec("put the fruit in the bowl", (Move("lemon", "counter", "bowl"),), ("table", "counter", "shelf")),
    TaskSpec("put the milk on the shelf", (Move("milk", "table", "shelf"),), ("table", "counter")),
    TaskSpec(
        "clear the table",
        (Move("can", "table", "counter"), Move("bottle", "table", "counter")),
        ("shelf",),
    ),
    TaskSpec("bring the bread to the table", (Move("bread", "shelf", "table"),), ("counter",)),
    TaskSpec("put the cup in the sink", (Move("cup", "table", "sink"),), ("table", "counter", "shelf")),
)

TASKS: list[str] = [spec.text for spec in TASK_SPECS]


def task_spec(text: str) -> TaskSpec:
    """Look a task up by its text (case, extra spaces and final punctuation ignored); unknown -> ValueError."""
    if not isinstance(text, str):
        raise ValueError(f"task must be a string, got {type(text).__name__}")
    wanted = " ".join(text.strip().lower().rstrip(".!?").split())
    for spec in TASK_SPECS:
        if spec.text == wanted:
            return spec
    raise ValueError(f"unknown sim-kitchen task {text!r}; known tasks: {', '.join(repr(t) for t in TASKS)}")
