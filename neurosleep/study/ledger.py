"""The study ledger: one SQLite row per run, in the study folder (``ledger.sqlite``, WAL).

Only the driver writes it; workers return what happened and the driver records it, so there is
one writer and any number of readers (``neurosleep study status`` while a study runs).

States: ``queued`` → ``running`` (worker, pid, host, start) → ``complete`` | ``failed``
(one-line reason, path of the traceback file). ``attempts`` counts starts; ``aside`` lists the
partial or stale files a re-run moved out of the way (never deleted).

Two times per run: ``attempt_s``, the worker's whole attempt that executed it (for a failed run,
the failed attempt), and ``phases_s``, what its complete run file records for the phases (the same
for a run made here and for one found complete in the folder). A ledger written before these
columns (one ``wall_s`` with either meaning) stays readable: its ``wall_s`` is not read, its
``attempt_s`` is NULL, and ``phases_s`` of a complete run is read from the run file.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

from neurosleep.errors import StudyError
from neurosleep.study.spec import LEDGER_FILE, Run

STATES = ("queued", "running", "complete", "failed")
RERUN = "attempts > 1 OR aside != '[]'"  # SQL condition of a re-run run

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    key TEXT PRIMARY KEY,      -- hash of the fully resolved protocol (seed included)
    label TEXT NOT NULL,       -- configuration label (also the run's protocol name)
    condition INTEGER NOT NULL,
    params TEXT NOT NULL,      -- JSON: axis -> value
    seed INTEGER NOT NULL,
    split TEXT NOT NULL,       -- validation | test
    stage TEXT NOT NULL,       -- search | confirm
    trial INTEGER,             -- Optuna trial number (tpe)
    protocol TEXT NOT NULL,    -- protocol file of the condition
    overrides TEXT NOT NULL,   -- JSON list of --set overrides that make this run
    path TEXT NOT NULL,        -- run file
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'complete', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,  -- executions (a start that found it complete: not one)
    aside TEXT NOT NULL DEFAULT '[]',  -- JSON list of files moved aside before a re-run
    worker TEXT, pid INTEGER, host TEXT, started REAL,
    attempt_s REAL,            -- seconds of the last attempt that executed the run (start-up,
                               -- run, checks); NULL for a run found complete in its folder
    phases_s REAL,             -- wall seconds of the phases, as the complete run file records
    reason TEXT, traceback TEXT,
    metrics TEXT,              -- JSON: "metric quantity" -> final value
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class Row:
    """One ledger row, decoded."""

    key: str
    label: str
    condition: int
    params: dict[str, Any]
    seed: int
    split: str
    stage: str
    trial: int | None
    protocol: str
    overrides: list[str]
    path: str
    state: str
    attempts: int
    aside: list[str]
    worker: str | None
    pid: int | None
    host: str | None
    started: float | None
    attempt_s: float | None
    phases_s: float | None
    reason: str | None
    traceback: str | None
    metrics: dict[str, float]

    @property
    def rerun(self) -> bool:
        """Executed more than once, or a partial file was moved aside for it."""
        return self.attempts > 1 or bool(self.aside)


class Ledger:
    """The ledger of a study folder; ``Ledger(folder)`` creates it if missing."""

    FILE = LEDGER_FILE

    def __init__(self, folder: str | Path, readonly: bool = False) -> None:
        self.path = Path(folder) / self.FILE
        if readonly:
            if not self.path.is_file():
                raise StudyError(f"{folder}: not a study folder (no {self.FILE} in it)")
            self.db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30)
            if not self._columns():
                self.db.close()
                raise StudyError(f"{self.path}: not a study ledger (it has no runs table)")
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self.path.exists():
                self._create()
            self.db = sqlite3.connect(self.path, timeout=30)
            self.db.execute("PRAGMA journal_mode=WAL")  # kept by the file; also an empty one's
            self.db.executescript(SCHEMA)
            with self.db:  # a ledger from before the two times: add their columns
                for name in ("attempt_s", "phases_s"):
                    if name not in self._columns():
                        self.db.execute(f"ALTER TABLE runs ADD COLUMN {name} REAL")
        self.db.row_factory = sqlite3.Row

    def _create(self) -> None:
        """Write an empty ledger under a temporary name and link it into place, so that a reader
        (``study status``, a test polling the folder) never finds the file without its tables.
        If another process linked its ledger first, that one is kept."""
        tmp = self.path.with_name(f".{self.FILE}.{os.getpid()}.tmp")
        db = sqlite3.connect(tmp)
        try:
            db.execute("PRAGMA journal_mode=WAL")  # persistent: stored in the file
            db.executescript(SCHEMA)
        finally:
            db.close()
        try:
            os.link(tmp, self.path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()

    def _columns(self) -> set[str]:
        return {r[1] for r in self.db.execute("PRAGMA table_info(runs)")}

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------------ writing (driver only)
    def set_meta(self, key: str, value: str) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def add(self, runs: Iterable[Run], path_of) -> None:
        """Insert planned runs as ``queued``; a key already in the ledger is left as it is."""
        now = time.time()
        with self.db:
            self.db.executemany(
                "INSERT OR IGNORE INTO runs (key, label, condition, params, seed, split, stage, "
                "trial, protocol, overrides, path, state, updated) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?)",
                [
                    (
                        r.key,
                        r.config.label,
                        r.config.condition,
                        json.dumps(r.config.params),
                        r.seed,
                        r.split,
                        r.stage,
                        r.trial,
                        str(r.protocol),
                        json.dumps(list(r.overrides)),
                        str(path_of(r.key)),
                        now,
                    )
                    for r in runs
                ],
            )

    def update(self, key: str, **values: Any) -> None:
        """Set columns of one row (``aside`` and ``metrics`` given as Python objects)."""
        for name in ("aside", "metrics"):
            if name in values:
                values[name] = json.dumps(values[name])
        if "state" in values and values["state"] not in STATES:
            raise ValueError(f"unknown run state {values['state']!r}")
        values["updated"] = time.time()
        columns = ", ".join(f"{name} = ?" for name in values)
        with self.db:
            self.db.execute(f"UPDATE runs SET {columns} WHERE key = ?", (*values.values(), key))

    def started(self, key: str, worker: str, pid: int, host: str, start: float) -> None:
        with self.db:
            self.db.execute(
                "UPDATE runs SET state = 'running', attempts = attempts + 1, worker = ?, pid = ?, "
                "host = ?, started = ?, reason = NULL, updated = ? WHERE key = ?",
                (worker, pid, host, start, time.time(), key),
            )

    # ------------------------------------------------------------------ reading
    def rows(self, where: str = "", args: tuple = ()) -> list[Row]:
        """Rows in the order they were planned; each ``path`` is the run file in this ledger's
        folder (``runs/<key>.h5``), wherever the study was run from or the folder moved."""
        query = "SELECT * FROM runs" + (f" WHERE {where}" if where else "") + " ORDER BY rowid"
        return [_row(r, self.path.parent) for r in self.db.execute(query, args)]

    def get(self, key: str) -> Row | None:
        rows = self.rows("key = ?", (key,))
        return rows[0] if rows else None

    def meta(self, key: str) -> str | None:
        found = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return found[0] if found else None

    def counts(self) -> dict[str, int]:
        """Runs per state, plus ``rerun``: runs executed more than once (a worker died, an
        attempt failed, the driver was killed mid-run) or whose partial file was moved aside."""
        out = dict.fromkeys(STATES, 0)
        for state, n in self.db.execute("SELECT state, COUNT(*) FROM runs GROUP BY state"):
            out[state] = n
        out["rerun"] = self.db.execute(f"SELECT COUNT(*) FROM runs WHERE {RERUN}").fetchone()[0]
        return out


def _row(r: sqlite3.Row, folder: Path) -> Row:
    d = dict(r)
    d.pop("updated")
    d.pop("wall_s", None)  # a ledger from before attempt_s / phases_s: either of the two
    d["path"] = str(folder / "runs" / PurePath(d["path"]).name)
    d.setdefault("attempt_s", None)
    if d.get("phases_s") is None:
        d["phases_s"] = _phases_s(d["path"]) if d["state"] == "complete" else None
    d["params"] = json.loads(d["params"])
    d["overrides"] = json.loads(d["overrides"])
    d["aside"] = json.loads(d["aside"])
    d["metrics"] = json.loads(d["metrics"]) if d["metrics"] else {}
    return Row(**d)


def _phases_s(path: str) -> float | None:
    """The phases' wall seconds a run file records (None when it cannot be read)."""
    from neurosleep.errors import RunFileError
    from neurosleep.io.runfile import open_run

    try:
        with open_run(path) as run:
            return run.wall_seconds()
    except (RunFileError, OSError):
        return None
