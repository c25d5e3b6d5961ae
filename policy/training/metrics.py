"""A CSV metrics log that survives resume: rows are appended, a header is written once, and new columns
that appear later (a loss term switched on) extend the header by rewriting the file once."""

from __future__ import annotations

import csv
from pathlib import Path


class CsvMetrics:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.columns: list[str] = []
        if self.path.exists() and self.path.stat().st_size > 0:
            with self.path.open(newline="") as handle:
                self.columns = next(csv.reader(handle), [])

    def truncate_after(self, step: int) -> None:
        """Drop rows logged after `step` (a crashed run logged steps whose state was never saved)."""
        if not self.path.exists() or not self.columns:
            return
        with self.path.open(newline="") as handle:
            rows = [row for row in csv.DictReader(handle) if int(float(row.get("step") or 0)) <= step]
        self._rewrite(rows)

    def _rewrite(self, rows: list[dict]) -> None:
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.columns)
            writer.writeheader()
            writer.writerows(rows)
        tmp.replace(self.path)

    def log(self, row: dict[str, float | int | str]) -> None:
        new = [key for key in row if key not in self.columns]
        if new:
            old_rows: list[dict] = []
            if self.path.exists() and self.columns:
                with self.path.open(newline="") as handle:
                    old_rows = list(csv.DictReader(handle))
            self.columns = [*self.columns, *new]
            self._rewrite(old_rows)
        with self.path.open("a", newline="") as handle:
            csv.DictWriter(handle, fieldnames=self.columns).writerow(row)

    def rows(self) -> list[dict[str, str]]:
        if not self.path.exists():
            return []
        with self.path.open(newline="") as handle:
            return list(csv.DictReader(handle))
