"""The run store: every run's config, status, curves, interference and results in SQLite.

The store is the only channel between a training process and whoever watches it (the
dashboard, the CLI, a notebook). One process writes a run; any number read it. SQLite
in WAL mode gives exactly that: readers never block the writer and see only committed
transactions, and a writer killed mid-step loses at most its uncommitted transaction.

Timestamps in `runs` and `baselines` are ISO-8601 UTC strings (`2026-11-24T23:59:59.123+00:00`);
`metrics.wall_time` is unix seconds (float), cheap to subtract for curves against time.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import secrets
import sqlite3
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import pandas as pd

from mtl_core.errors import DiskFullError, StoreError
from mtl_core.sink import Sink

log = logging.getLogger(__name__)

STATUSES = ("queued", "running", "finished", "failed", "cancelled", "interrupted")
ACTIVE_STATUSES = ("queued", "running")
TERMINAL_STATUSES = ("finished", "failed", "cancelled", "interrupted")

METRIC_COLUMNS = ["phase", "step", "task", "split", "metric", "value", "wall_time"]
MetricRow = tuple[str, int, str, str, str, float, float]

BUSY_TIMEOUT_S = 10.0
DB_FILENAME = "mtl_lab.db"
# A run left `queued` without a process this long after it was created will never start:
# whatever queued it (dashboard, `mtl-lab run --background`) died before `Popen`.
QUEUED_GRACE_S = 30.0
# Kept free inside the store file: on a full disk, deleting it gives back enough pages to
# record how a run ended (`record_end`). The freed pages stay in the file, so the write
# that follows needs no new disk space.
RESERVE_BYTES = 64 * 1024


def default_store_path() -> Path:
    """`$MTL_LAB_HOME/mtl_lab.db` if MTL_LAB_HOME is set, else `./runs/mtl_lab.db`.

    The folder is created if needed: nothing a user makes is written inside the package.
    Raises StoreError naming MTL_LAB_HOME when the folder cannot be used.
    """
    home = os.environ.get("MTL_LAB_HOME")
    folder = Path(home).expanduser() if home else Path.cwd() / "runs"
    where = f"MTL_LAB_HOME={home}" if home else f"the default run folder {folder} (MTL_LAB_HOME is not set)"
    fix = "point MTL_LAB_HOME at a folder you can write to, e.g. `export MTL_LAB_HOME=~/mtl-lab`"
    if folder.exists() and not folder.is_dir():
        raise StoreError(f"{where} is a file, not a folder; {fix}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = "the disk is full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
        raise StoreError(f"cannot create the folder of {where}: {reason}; {fix}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise StoreError(f"{where} is a read-only folder; {fix}")
    return folder / DB_FILENAME


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _new_run_id() -> str:
    # Readable and sortable by creation time; 24 random bits keep two runs started in the
    # same second apart.
    return f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def _to_jsonable(obj: Any) -> Any:
    """json.dumps fallback for numpy scalars/arrays, torch tensors and paths."""
    if hasattr(obj, "tolist"):  # numpy arrays and scalars, torch tensors
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _dumps(obj: Any) -> str:
    return json.dumps(obj, default=_to_jsonable)


# SQLite's primary result codes (https://sqlite.org/rescode.html) for the errors a user
# can meet; the low byte of an extended code is its primary code.
_SQLITE_PERM, _SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_READONLY = 3, 5, 6, 8
_SQLITE_IOERR, _SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_CANTOPEN, _SQLITE_NOTADB = 10, 11, 13, 14, 26


def _sqlite_code(exc: BaseException) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF
    text = str(exc)  # a Python without sqlite_errorcode (< 3.11)
    for needle, primary in (("disk is full", _SQLITE_FULL), ("malformed", _SQLITE_CORRUPT),
                            ("not a database", _SQLITE_NOTADB), ("readonly", _SQLITE_READONLY),
                            ("locked", _SQLITE_BUSY), ("disk I/O", _SQLITE_IOERR)):
        if needle in text:
            return primary
    return None


# ---- process liveness -----------------------------------------------------------------
# A pid alone does not name a process: once a worker dies, the kernel hands its pid to the
# next process that starts. A pid together with the process's start time (clock ticks since
# boot, field 22 of /proc/<pid>/stat) does, for as long as the machine is up.
def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) of process `pid`, or None without /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None  # no /proc (macOS), or it vanished just now
    # The command name (field 2) is in parentheses and may hold spaces and `)`: the fixed
    # fields start after the last `)`, with field 3 (state) first, so field 22 is at 19.
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        return fields[0], int(fields[19])
    except (IndexError, ValueError):
        return None


def process_start_time(pid: int) -> int | None:
    """When process `pid` started (clock ticks since boot), or None if unknown."""
    stat = _proc_stat(pid) if pid > 0 else None
    return stat[1] if stat else None


def pid_alive(pid: int, start_time: int | None = None) -> bool:
    """True if process `pid` exists, is not a zombie (exited, waiting to be reaped) and,
    when `start_time` is given, is the process that started then (not a later process
    that was given the same pid)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
        owned = True
    except ProcessLookupError:
        return False
    except PermissionError:
        owned = False  # exists, but belongs to another user
    stat = _proc_stat(pid)
    if stat is None:
        # No /proc: trust kill() for our own processes. Another user's process is never
        # one of our workers unless its start time proves it, which needs /proc.
        return owned
    state, started = stat
    if state in ("Z", "X"):  # a child that exited but was not reaped still answers kill(pid, 0)
        return False
    if start_time is not None:
        return started == int(start_time)
    return owned


def run_process_alive(run: dict[str, Any]) -> bool:
    """True while the process recorded for `run` (a `RunStore.get_run` row) is that very
    process and still running; False once it ended or its pid belongs to another process."""
    pid = run.get("pid")
    return pid is not None and pid_alive(int(pid), run.get("pid_start"))


# ---- schema and migrations ------------------------------------------------------------
def _execute_script(conn: sqlite3.Connection, script: str) -> None:
    """Run `;`-separated statements inside the caller's transaction.

    (`Connection.executescript` would COMMIT first and break the migration's atomicity.)
    """
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


def _migrate_to_1(conn: sqlite3.Connection) -> None:
    """Version 1: runs, metric curves, interference snapshots, results, baseline cache."""
    _execute_script(
        conn,
        """
        CREATE TABLE IF NOT EXISTS runs (
            id TEXT PRIMARY KEY,
            name TEXT,
            config TEXT NOT NULL,
            status TEXT NOT NULL,
            error TEXT,
            device TEXT,
            pid INTEGER,
            created_at TEXT NOT NULL,
            started_at TEXT,
            finished_at TEXT,
            code_version TEXT,
            step INTEGER NOT NULL DEFAULT 0,
            total_steps INTEGER,
            samples_per_s REAL,
            phase TEXT,
            cancel_requested INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX IF NOT EXISTS runs_status ON runs(status);
        CREATE TABLE IF NOT EXISTS metrics (
            run_id TEXT NOT NULL,
            phase TEXT NOT NULL,
            step INTEGER NOT NULL,
            task TEXT NOT NULL,
            split TEXT NOT NULL,
            metric TEXT NOT NULL,
            value REAL,
            wall_time REAL NOT NULL
        );
        -- (run_id, step): every read is one run's curves ordered by step, served from
        -- the index without a sort.
        CREATE INDEX IF NOT EXISTS metrics_run ON metrics(run_id, step);
        CREATE TABLE IF NOT EXISTS interference (
            run_id TEXT NOT NULL,
            phase TEXT NOT NULL,
            step INTEGER NOT NULL,
            payload TEXT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS interference_run ON interference(run_id, step);
        -- delta_m is copied out of the payload so that listing runs needs no JSON parse
        -- (and a NaN somewhere in a result, which Python's json writes but SQLite's
        -- json_extract rejects, cannot break the listing).
        CREATE TABLE IF NOT EXISTS results (
            run_id TEXT PRIMARY KEY,
            payload TEXT NOT NULL,
            delta_m REAL
        );
        CREATE TABLE IF NOT EXISTS baselines (
            key TEXT PRIMARY KEY,
            payload TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        """
    )


def _migrate_to_2(conn: sqlite3.Connection) -> None:
    """Version 2: the worker's process identity (pid + start time) and the disk-full reserve."""
    _execute_script(
        conn,
        """
        -- Clock ticks since boot when the process `pid` started (/proc/<pid>/stat field 22);
        -- NULL where unknown (no /proc, or a row written by version 1).
        ALTER TABLE runs ADD COLUMN pid_start INTEGER;
        CREATE TABLE IF NOT EXISTS reserve (
            id INTEGER PRIMARY KEY,
            pad BLOB NOT NULL
        )
        """
    )


def _migrate_to_3(conn: sqlite3.Connection) -> None:
    """Version 3: sweeps (issue 14): a set of runs from one base config and axes."""
    _execute_script(
        conn,
        """
        CREATE TABLE IF NOT EXISTS sweeps (
            id TEXT PRIMARY KEY,
            name TEXT,
            config TEXT NOT NULL,
            executor TEXT NOT NULL,
            created_at TEXT NOT NULL,
            cancel_requested INTEGER NOT NULL DEFAULT 0,
            -- the driver process that schedules the points (the CLI, or the background driver):
            -- its runs waiting in `queued` stay queued while it lives (see mark_interrupted)
            driver_pid INTEGER,
            driver_pid_start INTEGER
        );
        -- A run of a sweep: its sweep and its point (JSON: index, label, axis values)
        ALTER TABLE runs ADD COLUMN sweep_id TEXT;
        ALTER TABLE runs ADD COLUMN sweep_point TEXT;
        CREATE INDEX IF NOT EXISTS runs_sweep ON runs(sweep_id)
        """
    )


def _migrate_to_4(conn: sqlite3.Connection) -> None:
    """Version 4: pause / resume / step a run (issue 15: a teacher stops a run mid-way,
    explains, steps it on). Flags its process polls between steps, like cancel_requested."""
    _execute_script(
        conn,
        """
        ALTER TABLE runs ADD COLUMN paused INTEGER NOT NULL DEFAULT 0;
        -- steps a paused run may still take: each Step adds one, the worker takes them one by one
        ALTER TABLE runs ADD COLUMN step_grants INTEGER NOT NULL DEFAULT 0
        """
    )


# MIGRATIONS[v] upgrades a store from version v-1 to v. A schema change is one new
# function and one new entry here; never edit a migration that has shipped.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    1: _migrate_to_1,
    2: _migrate_to_2,
    3: _migrate_to_3,
    4: _migrate_to_4,
}
SCHEMA_VERSION = max(MIGRATIONS)


# ---- the store ------------------------------------------------------------------------
class RunStore:
    """SQLite store of runs. One connection per object; safe across processes.

    Writes go through `_transaction()` (BEGIN IMMEDIATE: the write lock is taken up front,
    so two writers queue on the busy timeout instead of failing on a lock upgrade).
    Reads are single statements, each seeing one committed snapshot. `_transaction` is the
    store's own: callers write through its public methods, and a run ends through
    `finish_run`, `cancel_run` or `fail_run` (each one transaction, even on a full disk).

    Opening a store marks runs whose process died as `interrupted` (`mark_interrupted`).
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path).expanduser().resolve() if path is not None else default_store_path()
        if self.path.is_dir():
            raise StoreError(f"the run store path {self.path} is a folder; give the path of a .db file")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the folder {self.path.parent} for the run store ({exc.strerror or exc}); "
                "choose another path or set MTL_LAB_HOME to a folder you can write to"
            ) from None
        self._lock = threading.RLock()
        self._depth = 0
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves (see _transaction).
            self._conn = sqlite3.connect(
                str(self.path), timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise StoreError(
                f"cannot open the run store {self.path}: {exc}; check that the folder is writable "
                "or set MTL_LAB_HOME to another folder"
            ) from None
        try:
            self._conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            self._set_wal()
            # NORMAL in WAL mode: a commit survives a process crash; only a power cut can
            # lose the last commits, never corrupt the file.
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._migrate()
            self._keep_reserve()
            self.mark_interrupted()
        except sqlite3.DatabaseError as exc:
            self.close()
            known = self._store_error(exc)
            if known is not None and _sqlite_code(exc) not in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
                raise known from None
            raise StoreError(
                f"{self.path} cannot be used as a run store ({exc}); move it away "
                f"(e.g. `mv {self.path} {self.path}.damaged`) or set MTL_LAB_HOME to another folder"
            ) from None
        except BaseException:
            self.close()
            raise

    def _set_wal(self) -> None:
        # Switching a fresh file to WAL needs an exclusive lock, which SQLite may refuse
        # without waiting when several processes create the store at the same moment.
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    known = self._store_error(exc)
                    raise known or StoreError(f"cannot open the run store {self.path}: {exc}") from None
                time.sleep(0.05)
        if str(mode).lower() != "wal":
            log.warning("run store %s is in %s mode, not WAL (network file system?)", self.path, mode)

    # ---- connection plumbing -----------------------------------------------------------
    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None  # type: ignore[assignment]

    def __enter__(self) -> "RunStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RunStore({str(self.path)!r})"

    # ---- errors ------------------------------------------------------------------------
    def _store_error(self, exc: sqlite3.Error, *, run_id: str | None = None) -> StoreError | None:
        """Our message for an SQLite error a user can meet (full disk, damaged or read-only
        file, lock held too long); None for anything else (a bug: let it surface)."""
        code = _sqlite_code(exc)
        folder = self.path.parent
        if code == _SQLITE_FULL:
            return DiskFullError(
                f"disk full: the run store folder {folder} has no space left ({exc}); free some "
                "space there, or set MTL_LAB_HOME to a folder on another disk"
            )
        if code in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
            about = f" while reading run {run_id!r}" if run_id else ""
            fix = f"delete that run (`mtl-lab delete {run_id}`) or " if run_id else ""
            return StoreError(
                f"the run store {self.path} is damaged{about} ({exc}); {fix}move the file away "
                f"(e.g. `mv {self.path} {self.path}.damaged`) to start a new store"
            )
        if code in (_SQLITE_READONLY, _SQLITE_CANTOPEN, _SQLITE_PERM):
            return StoreError(
                f"cannot write the run store {self.path} ({exc}); make {folder} and the files in it "
                "writable, or set MTL_LAB_HOME to a folder you can write to"
            )
        if code == _SQLITE_IOERR:
            return StoreError(
                f"reading or writing the run store {self.path} failed ({exc}); check the disk "
                f"holding {folder}, or set MTL_LAB_HOME to a folder on another disk"
            )
        if code in (_SQLITE_BUSY, _SQLITE_LOCKED):
            return StoreError(
                f"the run store {self.path} stayed locked by another process for "
                f"{BUSY_TIMEOUT_S:.0f} s; try again, or look for a stuck process using it"
            )
        return None

    def _damaged(self, run_id: str, what: str, exc: BaseException) -> StoreError:
        return StoreError(
            f"run {run_id!r} is damaged in the run store {self.path}: {what} ({exc}); the other "
            f"runs are fine. Delete this run (`mtl-lab delete {run_id}` or the Runs page) to be rid of it"
        )

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; nested uses join the outermost one."""
        with self._lock:
            if self._conn is None:
                raise StoreError(f"the run store {self.path} is closed; open a new RunStore")
            if self._depth:
                self._depth += 1
                try:
                    yield self._conn
                finally:
                    self._depth -= 1
                return
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                known = self._store_error(exc)
                if known is not None:
                    raise known from None
                raise
            self._depth = 1
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                known = self._store_error(exc)
                if known is not None:
                    raise known from None
                raise
            except BaseException:
                self._rollback()
                raise
            finally:
                self._depth = 0

    def _rollback(self) -> None:
        # SQLite may have rolled back by itself (a full disk, say); a failing ROLLBACK must
        # not hide the error that caused it.
        try:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
        except sqlite3.Error:
            log.warning("rollback failed in run store %s", self.path, exc_info=True)

    def _read(self, sql: str, params: Sequence[Any] = (), *, run_id: str | None = None) -> list[tuple]:
        with self._lock:
            if self._conn is None:
                raise StoreError(f"the run store {self.path} is closed; open a new RunStore")
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                known = self._store_error(exc, run_id=run_id)
                if known is not None:
                    raise known from None
                raise

    # ---- schema ------------------------------------------------------------------------
    def schema_version(self) -> int:
        """The schema version recorded in the file (0 for an empty file)."""
        has_meta = self._read("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'")
        if not has_meta:
            return 0
        row = self._read("SELECT value FROM meta WHERE key='schema_version'")
        if not row:
            return 0
        try:
            return int(row[0][0])
        except (TypeError, ValueError):
            raise StoreError(
                f"the run store {self.path} records schema_version {row[0][0]!r} in its meta table, "
                "which is not a whole number: the file was edited or damaged; move it away "
                f"(e.g. `mv {self.path} {self.path}.damaged`) to start a new store, or restore a backup"
            ) from None

    def _migrate(self) -> None:
        """Bring the file up to SCHEMA_VERSION, one migration step at a time."""
        current = self.schema_version()
        if current == SCHEMA_VERSION:
            return  # the common case: no write lock taken just to open the store
        self._refuse_newer(current)
        with self._transaction() as conn:
            current = self.schema_version()  # another process may have migrated meanwhile
            self._refuse_newer(current)
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            for version in range(current + 1, SCHEMA_VERSION + 1):
                log.info("migrating run store %s to schema version %d", self.path, version)
                MIGRATIONS[version](conn)
                conn.execute(
                    "INSERT INTO meta(key, value) VALUES('schema_version', ?) "
                    "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                    (str(version),),
                )

    def _refuse_newer(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the run store {self.path} has schema version {version}, but this MTL Lab "
                f"knows versions up to {SCHEMA_VERSION}; upgrade MTL Lab (pip install -U mtl-lab) "
                "to open it, or set MTL_LAB_HOME to another folder"
            )

    # ---- runs --------------------------------------------------------------------------
    def create_run(self, config: dict[str, Any], *, name: str | None = None) -> str:
        """Record a new run (status `queued`) and return its id, e.g. `20261124-235959-ab12cd`."""
        try:
            from mtl_core import __version__ as code_version  # type: ignore[attr-defined]
        except ImportError:
            code_version = "0"
        if name is None and isinstance(config.get("name"), str):
            name = config["name"]
        payload = _dumps(config)
        for _ in range(5):
            run_id = _new_run_id()
            try:
                with self._transaction() as conn:
                    conn.execute(
                        "INSERT INTO runs(id, name, config, status, created_at, code_version) "
                        "VALUES(?, ?, ?, 'queued', ?, ?)",
                        (run_id, name, payload, _now_iso(), str(code_version)),
                    )
                return run_id
            except sqlite3.IntegrityError:
                continue  # same second and same 24 random bits: draw again
        raise StoreError("could not draw a free run id after 5 tries; try again")

    def get_run(self, run_id: str) -> dict[str, Any]:
        """The run's row as a dict; `config` parsed back to a dict, `cancel_requested` a bool."""
        with self._lock:
            if self._conn is None:
                raise StoreError(f"the run store {self.path} is closed; open a new RunStore")
            try:
                cur = self._conn.execute("SELECT * FROM runs WHERE id=?", (run_id,))
                row = cur.fetchone()
            except sqlite3.Error as exc:
                known = self._store_error(exc, run_id=run_id)
                if known is not None:
                    raise known from None
                raise
            names = [d[0] for d in cur.description]
        if row is None:
            raise StoreError(f"no run {run_id!r}; `mtl-lab runs` lists the stored runs")
        run = dict(zip(names, row))
        try:
            config = json.loads(run["config"])
        except (TypeError, ValueError) as exc:
            raise self._damaged(run_id, "its config is not valid JSON", exc) from None
        if not isinstance(config, dict):
            raise self._damaged(run_id, "its config is not a mapping", TypeError(type(config).__name__))
        run["config"] = config
        run["cancel_requested"] = bool(run["cancel_requested"])
        run["paused"] = bool(run["paused"])
        return run

    def _require(self, conn: sqlite3.Connection, run_id: str) -> tuple[str, int | None, int | None]:
        """(status, pid, pid_start) of a run that must exist."""
        row = conn.execute("SELECT status, pid, pid_start FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is None:
            raise StoreError(f"no run {run_id!r}; `mtl-lab runs` lists the stored runs")
        return row[0], row[1], row[2]

    def runs(self, *, status: str | Iterable[str] | None = None) -> pd.DataFrame:
        """One row per run, newest first.

        Columns: id, name, status, created_at, started_at, finished_at (pandas UTC
        timestamps), dataset, sharing, weighting, tasks (comma-joined; "all" when the config
        takes every task of the dataset), phase, step, total_steps, samples_per_s, device,
        pid, error, code_version, cancel_requested, delta_m and delta_m_verdict (from the
        result; NaN / None if none).
        """
        where, params = "", []
        if status is not None:
            wanted = [status] if isinstance(status, str) else list(status)
            for s in wanted:
                _check_status(s)
            where = f"WHERE r.status IN ({','.join('?' * len(wanted))})"
            params = wanted
        rows = self._read(
            f"""
            SELECT r.id, r.name, r.status, r.created_at, r.started_at, r.finished_at,
                   CASE WHEN json_valid(r.config) THEN json_extract(r.config, '$.dataset.name') END,
                   CASE WHEN json_valid(r.config) THEN json_extract(r.config, '$.sharing.name') END,
                   CASE WHEN json_valid(r.config) THEN json_extract(r.config, '$.weighting.name') END,
                   CASE WHEN json_valid(r.config) THEN json_extract(r.config, '$.tasks') END,
                   r.phase, r.step, r.total_steps, r.samples_per_s, r.device, r.pid, r.error,
                   r.code_version, r.cancel_requested,
                   res.delta_m,
                   CASE WHEN json_valid(res.payload) THEN json_extract(res.payload, '$.delta_m_verdict') END
            FROM runs r LEFT JOIN results res ON res.run_id = r.id
            {where}
            ORDER BY r.created_at DESC, r.rowid DESC
            """,
            params,
        )
        # (json_valid guards the listing: one run with a damaged config must not hide the others.)
        columns = [
            "id", "name", "status", "created_at", "started_at", "finished_at",
            "dataset", "sharing", "weighting", "tasks",
            "phase", "step", "total_steps", "samples_per_s", "device", "pid", "error",
            "code_version", "cancel_requested", "delta_m", "delta_m_verdict",
        ]
        tasks_at = columns.index("tasks")
        rows = [(*r[:tasks_at], _tasks_label(r[tasks_at]), *r[tasks_at + 1 :]) for r in rows]
        df = pd.DataFrame(rows, columns=columns)
        # errors="coerce": a damaged cell of one run reads as missing instead of hiding every run.
        for col in ("created_at", "started_at", "finished_at"):
            df[col] = pd.to_datetime(df[col], utc=True, format="ISO8601", errors="coerce").astype(
                "datetime64[ms, UTC]"
            )
        df["step"] = pd.to_numeric(df["step"], errors="coerce").fillna(0).astype("int64")
        for col in ("total_steps", "pid"):
            df[col] = pd.to_numeric(df[col], errors="coerce").astype("Int64")
        df["samples_per_s"] = pd.to_numeric(df["samples_per_s"], errors="coerce").astype("float64")
        df["delta_m"] = pd.to_numeric(df["delta_m"], errors="coerce").astype("float64")
        df["cancel_requested"] = df["cancel_requested"].astype(bool)
        return df

    def count_runs(self, *, status: str | Iterable[str], exclude: str | None = None) -> int:
        """How many runs have `status` (one or several), not counting run `exclude`: one
        indexed count, where `runs()` would build the whole listing."""
        wanted = [status] if isinstance(status, str) else list(status)
        for s in wanted:
            _check_status(s)
        rows = self._read(
            f"SELECT COUNT(*) FROM runs WHERE status IN ({','.join('?' * len(wanted))}) AND id IS NOT ?",
            [*wanted, exclude],
        )
        return int(rows[0][0])

    def set_status(
        self,
        run_id: str,
        status: str,
        *,
        error: str | None = None,
        device: str | None = None,
        pid: int | None = None,
        pid_start: int | None = None,
    ) -> None:
        """Move a run to `status`; stamps started_at on `running`, finished_at on an end state.

        `error` replaces the stored error (None clears it); `device` and `pid` are kept
        when not given. A new `pid` is stored with its process's start time (`pid_start`,
        read from /proc when not given), which tells it apart from a later process that
        reuses the pid.
        """
        _check_status(status)
        now = _now_iso()
        if pid is not None and pid_start is None:
            pid_start = process_start_time(pid)
        with self._transaction() as conn:
            self._require(conn, run_id)
            conn.execute(
                """
                UPDATE runs SET status=?, error=?, device=COALESCE(?, device), pid=COALESCE(?, pid),
                       pid_start=CASE WHEN ? IS NOT NULL THEN ? ELSE pid_start END,
                       started_at=CASE WHEN ?='running' THEN ? ELSE started_at END,
                       finished_at=CASE WHEN ? IN ('finished','failed','cancelled','interrupted')
                                        THEN ? ELSE finished_at END
                WHERE id=?
                """,
                (status, error, device, pid, pid, pid_start, status, now, status, now, run_id),
            )

    def set_pid(self, run_id: str, pid: int, *, pid_start: int | None = None) -> None:
        """Record the pid (and start time, see `set_status`) of the process that will run
        `run_id`, only if none is recorded yet: the worker may already have written its own."""
        if pid_start is None:
            pid_start = process_start_time(pid)
        with self._transaction() as conn:
            self._require(conn, run_id)
            conn.execute(
                "UPDATE runs SET pid=?, pid_start=? WHERE id=? AND pid IS NULL", (pid, pid_start, run_id)
            )

    def update_progress(
        self,
        run_id: str,
        *,
        phase: str,
        step: int,
        total_steps: int | None,
        samples_per_s: float | None,
        device: str | None = None,
    ) -> None:
        """What is training now (`phase`), how far it is, and how fast."""
        with self._transaction() as conn:
            conn.execute(
                "UPDATE runs SET phase=?, step=?, total_steps=?, samples_per_s=?, "
                "device=COALESCE(?, device) WHERE id=?",
                (phase, int(step), total_steps, samples_per_s, device, run_id),
            )

    def delete_run(self, run_id: str) -> None:
        """Delete a run and all its rows. A running run must be cancelled first."""
        self.mark_interrupted()  # a run whose process died is no longer running
        with self._transaction() as conn:
            status, pid, pid_start = self._require(conn, run_id)
            if status == "running" or (status == "queued" and pid is not None and pid_alive(pid, pid_start)):
                raise StoreError(
                    f"run {run_id!r} is {status}; cancel it first (`mtl-lab cancel {run_id}` or the "
                    "Cancel button), then delete it"
                )
            for table, column in (
                ("metrics", "run_id"), ("interference", "run_id"), ("results", "run_id"), ("runs", "id"),
            ):
                conn.execute(f"DELETE FROM {table} WHERE {column}=?", (run_id,))

    def request_cancel(self, run_id: str) -> None:
        """Ask the run's process to stop at its next step (it polls `cancel_requested`)."""
        with self._transaction() as conn:
            self._require(conn, run_id)
            conn.execute("UPDATE runs SET cancel_requested=1 WHERE id=?", (run_id,))

    def cancel_requested(self, run_id: str) -> bool:
        """True once someone asked this run to stop."""
        row = self._read("SELECT cancel_requested FROM runs WHERE id=?", (run_id,))
        return bool(row and row[0][0])

    def set_paused(self, run_id: str, paused: bool) -> bool:
        """Pause a queued or running run before its next step, or let it go on (dropping any
        steps granted meanwhile); False when the run has already ended."""
        with self._transaction() as conn:
            status, _, _ = self._require(conn, run_id)
            if status in TERMINAL_STATUSES:
                return False
            conn.execute("UPDATE runs SET paused=?, step_grants=0 WHERE id=?", (int(bool(paused)), run_id))
        return True

    def grant_steps(self, run_id: str, n: int = 1) -> bool:
        """Let a paused run take `n` more steps, then wait again; False when it is not paused
        (or has ended): a running run needs no permission."""
        if n < 1:
            raise StoreError(f"steps to take must be at least 1, got {n}")
        with self._transaction() as conn:
            status, _, _ = self._require(conn, run_id)
            if status in TERMINAL_STATUSES:
                return False
            cur = conn.execute("UPDATE runs SET step_grants=step_grants+? WHERE id=? AND paused=1", (int(n), run_id))
        return cur.rowcount == 1

    def run_controls(self, run_id: str) -> tuple[bool, bool, int]:
        """(cancel requested, paused, steps granted) in one read: what a worker polls."""
        row = self._read("SELECT cancel_requested, paused, step_grants FROM runs WHERE id=?", (run_id,))
        if not row:
            return False, False, 0
        cancel, paused, grants = row[0]
        return bool(cancel), bool(paused), int(grants or 0)

    def take_step_grant(self, run_id: str) -> bool:
        """Use one granted step of a paused run; False when none is left."""
        with self._transaction() as conn:
            cur = conn.execute("UPDATE runs SET step_grants=step_grants-1 WHERE id=? AND step_grants>0", (run_id,))
        return cur.rowcount == 1

    def mark_interrupted(self) -> list[str]:
        """Mark queued/running runs whose recorded process is gone as `interrupted`.

        A process killed by SIGKILL, an OOM kill or a power cut cannot write its own end;
        whoever opens the store next does. "Gone" includes a pid now held by another
        process (the recorded start time differs). A run whose cancel had been requested is
        marked `cancelled` instead: the user's wish was fulfilled, if abruptly. A run still
        `queued` without any process QUEUED_GRACE_S after it was created never will start.
        Returns the ids.
        """
        candidates = self._read(
            "SELECT r.id, r.pid, r.pid_start, r.step, r.cancel_requested, r.created_at, "
            "s.id, s.driver_pid, s.driver_pid_start FROM runs r LEFT JOIN sweeps s ON s.id = r.sweep_id "
            "WHERE r.status IN ('queued','running') AND (r.pid IS NOT NULL OR r.status='queued')"
        )
        now_dt = datetime.now(timezone.utc)
        dead, never_started = [], []
        for rid, pid, pid_start, step, cancel, created_at, sweep, driver, driver_start in candidates:
            if pid is not None:
                if not pid_alive(int(pid), pid_start):
                    dead.append((rid, pid, step, cancel))
            elif sweep is not None and driver is not None:
                # A sweep's point waits its turn as long as its driver lives.
                if not pid_alive(int(driver), driver_start):
                    never_started.append((rid, cancel, (
                        f"its sweep {sweep}'s driver (pid {driver}) ended before starting it; run the "
                        "remaining points again with a new sweep"
                    )))
            elif _age_s(created_at, now_dt) > QUEUED_GRACE_S:
                never_started.append((rid, cancel, (
                    f"its training process never started: whatever queued it stopped within "
                    f"{QUEUED_GRACE_S:.0f} s, before starting it; start the run again"
                )))
        if not dead and not never_started:
            return []
        now = _now_iso()
        marked = []
        with self._transaction() as conn:
            for rid, pid, step, cancel in dead:
                if cancel:
                    status, error = "cancelled", None
                else:
                    status = "interrupted"
                    log_file = self.path.parent / "logs" / f"{rid}.log"
                    error = (
                        f"the training process (pid {pid}) ended without recording why (killed, out "
                        f"of memory, or the disk was full); its curves up to step {step} are kept"
                        + (f"; its log is {log_file}" if log_file.exists() else "")
                    )
                # Re-check the status inside the transaction: the run may have ended cleanly
                # between our read and now.
                cur = conn.execute(
                    "UPDATE runs SET status=?, error=?, finished_at=? "
                    "WHERE id=? AND status IN ('queued','running') AND pid=?",
                    (status, error, now, rid, pid),
                )
                if cur.rowcount:
                    marked.append(rid)
            for rid, cancel, why in never_started:
                error = None if cancel else why
                cur = conn.execute(
                    "UPDATE runs SET status=?, error=?, finished_at=? "
                    "WHERE id=? AND status='queued' AND pid IS NULL",
                    ("cancelled" if cancel else "interrupted", error, now, rid),
                )
                if cur.rowcount:
                    marked.append(rid)
        return marked

    # ---- the end of a run, even on a full disk ---------------------------------------------
    def _keep_reserve(self) -> None:
        """Keep RESERVE_BYTES of pages in the file for `record_end` (refilled after use)."""
        if self._read("SELECT 1 FROM reserve LIMIT 1"):
            return
        try:
            with self._transaction() as conn:
                conn.execute("INSERT OR IGNORE INTO reserve(id, pad) VALUES(1, zeroblob(?))", (RESERVE_BYTES,))
        except StoreError as exc:  # full or read-only: the store still works without it
            log.warning("could not set aside the run store's reserve: %s", exc)

    def record_end(
        self, run_id: str, status: str, *, error: str | None = None, result: dict[str, Any] | None = None
    ) -> None:
        """Record how a run ended (and its result) in one transaction of its own.

        On a full disk, the reserve set aside in the file is given back first, so that the
        end can still be written. Raises DiskFullError when even that is not enough.
        """

        def write() -> None:
            with self._transaction():
                if result is not None:
                    self.save_result(run_id, result)
                self.set_status(run_id, status, error=error)

        try:
            write()
            return
        except DiskFullError:
            if not self._read("SELECT 1 FROM reserve LIMIT 1"):
                raise
        log.warning("run store %s is full: using its reserve to record how run %s ended", self.path, run_id)
        with self._transaction() as conn:
            conn.execute("DELETE FROM reserve")
        write()

    # ---- how a run ends: the one lifecycle every trainer uses (`worker.execute`) ----------------
    def finish_run(self, run_id: str, result: dict[str, Any]) -> str:
        """Record that run `run_id` trained to the end, with its `result`, in one transaction:
        a reader never sees `finished` without its result.

        Returns the status now recorded: `finished`, or `failed` when even the store's
        reserve cannot hold the result (a run `finished` without a result would break every
        view of it; its error then says the disk is full). Raises StoreError (DiskFullError)
        when nothing at all can be written.
        """
        return self._end(run_id, "finished", result=result)

    def cancel_run(self, run_id: str, *, result: dict[str, Any] | None = None) -> str:
        """Record that run `run_id` stopped on request, keeping `result`, what it finished
        (a transfer run's finished cells), where there is one. Returns `cancelled`; raises
        StoreError when nothing can be written (see `finish_run`)."""
        return self._end(run_id, "cancelled", result=result)

    def fail_run(self, run_id: str, error: str) -> str:
        """Record that run `run_id` failed with `error` (one line a user reads). Returns
        `failed`; raises StoreError when nothing can be written (see `finish_run`)."""
        return self._end(run_id, "failed", error=error)

    def _end(self, run_id: str, status: str, *, error: str | None = None,
             result: dict[str, Any] | None = None) -> str:
        try:
            self.record_end(run_id, status, error=error, result=result)
            return status
        except DiskFullError as exc:
            if result is None:
                raise
            lost = (
                f"the run trained to the end, but its result could not be stored: {exc}"
                if status == "finished" else f"its partial result could not be stored: {exc}"
            )
        # A result too big for what is left of a full disk is dropped; the end is still written.
        status = "failed" if status == "finished" else status
        self.record_end(run_id, status, error=lost)
        return status

    # ---- curves --------------------------------------------------------------------------
    def log_metrics(self, run_id: str, rows: Sequence[MetricRow]) -> None:
        """Append metric rows (phase, step, task, split, metric, value, wall_time) in one transaction."""
        if not rows:
            return
        with self._transaction() as conn:
            conn.executemany(
                "INSERT INTO metrics(run_id, phase, step, task, split, metric, value, wall_time) "
                "VALUES(?, ?, ?, ?, ?, ?, ?, ?)",
                [(run_id, *row) for row in rows],
            )

    def has_metrics(self, run_id: str) -> bool:
        """Whether the run has logged anything yet (one indexed lookup: a live view polls it
        quickly until the first point arrives)."""
        return bool(self._read("SELECT 1 FROM metrics WHERE run_id=? LIMIT 1", (run_id,), run_id=run_id))

    def metrics(
        self,
        run_id: str,
        *,
        phase: str | None = None,
        split: str | None = None,
        metric: str | None = None,
        after_step: int | None = None,
    ) -> pd.DataFrame:
        """A run's curves in long form: phase, step, task, split, metric, value, wall_time,
        sorted by step (rows of one step in the order they were logged).

        `after_step` keeps only rows with step > after_step (of every phase: steps restart
        at each phase, so a live view reads what is new with `metrics_since` instead).
        """
        sql = "SELECT phase, step, task, split, metric, value, wall_time FROM metrics WHERE run_id=?"
        params: list[Any] = [run_id]
        if after_step is not None:
            sql += " AND step > ?"
            params.append(int(after_step))
        for column, value in (("phase", phase), ("split", split), ("metric", metric)):
            if value is not None:
                sql += f" AND {column}=?"
                params.append(value)
        rows = self._read(sql + " ORDER BY step, rowid", params, run_id=run_id)
        return self._metric_frame(run_id, rows)

    def metrics_since(
        self, run_id: str, after_rowid: int = 0, *, metric: str | None = None
    ) -> tuple[pd.DataFrame, int]:
        """(rows logged after `after_rowid`, the last row id read) — a live view keeps the
        rows it has and reads only the new ones at each poll (pass back the id it got).

        Rows come in the order they were logged (a run logs its phases one after another,
        each by step); row ids only grow, so none is missed or read twice.
        """
        sql = "SELECT rowid, phase, step, task, split, metric, value, wall_time FROM metrics WHERE run_id=? AND rowid > ?"
        params: list[Any] = [run_id, int(after_rowid)]
        if metric is not None:
            sql += " AND metric=?"
            params.append(metric)
        rows = self._read(sql + " ORDER BY rowid", params, run_id=run_id)
        last = int(rows[-1][0]) if rows else int(after_rowid)
        return self._metric_frame(run_id, [r[1:] for r in rows]), last

    def _metric_frame(self, run_id: str, rows: list[tuple]) -> pd.DataFrame:
        df = pd.DataFrame(rows, columns=METRIC_COLUMNS)
        # SQLite stores NaN as NULL; fixed dtypes keep an empty or all-NaN frame usable.
        try:
            return df.astype(
                {"phase": str, "step": "int64", "task": str, "split": str, "metric": str,
                 "value": "float64", "wall_time": "float64"}
            )
        except (TypeError, ValueError) as exc:
            raise self._damaged(run_id, "a stored curve value is not a number", exc) from None

    def log_interference(self, run_id: str, phase: str, step: int, snapshot: dict[str, Any]) -> None:
        """Store one interference snapshot ({"tasks", "grad_cosine", "grad_norm", ...})."""
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO interference(run_id, phase, step, payload) VALUES(?, ?, ?, ?)",
                (run_id, phase, int(step), _dumps(snapshot)),
            )

    def interference(self, run_id: str) -> list[dict[str, Any]]:
        """All snapshots of a run by step, each {"phase", "step", **snapshot}."""
        rows = self._read(
            "SELECT phase, step, payload FROM interference WHERE run_id=? ORDER BY step, rowid", (run_id,),
            run_id=run_id,
        )
        try:
            return [{"phase": phase, "step": step, **json.loads(payload)} for phase, step, payload in rows]
        except (TypeError, ValueError) as exc:
            raise self._damaged(run_id, "an interference snapshot is not valid JSON", exc) from None

    # ---- sweeps (issue 14) ---------------------------------------------------------------------
    def create_sweep(
        self, config: dict[str, Any], points: Sequence[tuple[dict[str, Any], dict[str, Any]]], *,
        name: str | None = None, executor: str = "local",
    ) -> str:
        """Record a sweep and one `queued` run per point ((config, point meta) pairs) in one
        transaction; return the sweep id, e.g. `sweep-20261124-235959-ab12cd`."""
        if not points:
            raise StoreError("a sweep needs at least one point; add values to its axes")
        try:
            from mtl_core import __version__ as code_version  # type: ignore[attr-defined]
        except ImportError:
            code_version = "0"
        for _ in range(5):
            sweep_id = f"sweep-{_new_run_id()}"
            now = _now_iso()
            try:
                with self._transaction() as conn:
                    conn.execute(
                        "INSERT INTO sweeps(id, name, config, executor, created_at) VALUES(?, ?, ?, ?, ?)",
                        (sweep_id, name, _dumps(config), executor, now),
                    )
                    self._insert_sweep_runs(conn, sweep_id, points, now, str(code_version))
                return sweep_id
            except sqlite3.IntegrityError:
                continue  # an id drawn twice: draw them all again
        raise StoreError("could not draw free run ids for the sweep after 5 tries; try again")

    def add_sweep_runs(self, sweep_id: str, points: Sequence[tuple[dict[str, Any], dict[str, Any]]]) -> list[str]:
        """Record more `queued` runs of sweep `sweep_id` ((config, point meta) pairs, e.g. a
        study's next round, `mtl_core.tune`) in one transaction; their ids."""
        try:
            from mtl_core import __version__ as code_version  # type: ignore[attr-defined]
        except ImportError:
            code_version = "0"
        for _ in range(5):
            try:
                with self._transaction() as conn:
                    self._require_sweep(conn, sweep_id)
                    return self._insert_sweep_runs(conn, sweep_id, points, _now_iso(), str(code_version))
            except sqlite3.IntegrityError:
                continue  # an id drawn twice: draw them all again
        raise StoreError("could not draw free run ids for the sweep's new points after 5 tries; try again")

    @staticmethod
    def _insert_sweep_runs(conn: sqlite3.Connection, sweep_id: str,
                           points: Sequence[tuple[dict[str, Any], dict[str, Any]]], now: str, code_version: str) -> list[str]:
        ids = []
        for run_config, meta in points:
            run_id = f"{_new_run_id()}-{meta.get('index', 0)}"
            run_name = run_config.get("name") if isinstance(run_config.get("name"), str) else None
            conn.execute(
                "INSERT INTO runs(id, name, config, status, created_at, code_version, sweep_id, "
                "sweep_point) VALUES(?, ?, ?, 'queued', ?, ?, ?, ?)",
                (run_id, run_name, _dumps(run_config), now, code_version, sweep_id, _dumps(meta)),
            )
            ids.append(run_id)
        return ids

    def set_sweep_driver(self, sweep_id: str, pid: int, *, pid_start: int | None = None) -> None:
        """Record the process that schedules the sweep's points (its queued runs wait while it lives)."""
        if pid_start is None:
            pid_start = process_start_time(pid)
        with self._transaction() as conn:
            self._require_sweep(conn, sweep_id)
            conn.execute("UPDATE sweeps SET driver_pid=?, driver_pid_start=? WHERE id=?", (pid, pid_start, sweep_id))

    def _require_sweep(self, conn: sqlite3.Connection, sweep_id: str) -> None:
        if conn.execute("SELECT 1 FROM sweeps WHERE id=?", (sweep_id,)).fetchone() is None:
            raise StoreError(f"no sweep {sweep_id!r}; `mtl-lab sweeps` lists the stored sweeps")

    def get_sweep(self, sweep_id: str) -> dict[str, Any]:
        """The sweep's row: id, name, config (dict), executor, created_at, cancel_requested,
        driver_pid, driver_alive, counts ({status: runs}), points, and its derived status
        (`sweep_status`)."""
        row = self._read(
            "SELECT id, name, config, executor, created_at, cancel_requested, driver_pid, driver_pid_start "
            "FROM sweeps WHERE id=?", (sweep_id,),
        )
        if not row:
            raise StoreError(f"no sweep {sweep_id!r}; `mtl-lab sweeps` lists the stored sweeps")
        sid, name, config, executor, created_at, cancel, driver, driver_start = row[0]
        try:
            config = json.loads(config)
        except (TypeError, ValueError):
            config = {}
        counts = dict(self._read("SELECT status, COUNT(*) FROM runs WHERE sweep_id=? GROUP BY status", (sweep_id,)))
        alive = driver is not None and pid_alive(int(driver), driver_start)
        asking = study_asking(config, sum(counts.values()), cancel_requested=bool(cancel), driver_alive=alive)
        return {
            "id": sid, "name": name, "config": config, "executor": executor, "created_at": created_at,
            "cancel_requested": bool(cancel), "driver_pid": driver, "driver_alive": alive,
            "counts": counts, "points": sum(counts.values()),
            "status": sweep_status(counts, cancel_requested=bool(cancel), asking=asking),
        }

    def sweeps(self) -> pd.DataFrame:
        """One row per sweep, newest first: id, name, executor, created_at, status, points and
        the number of its runs in each status."""
        rows = self._read("SELECT id, name, executor, created_at, cancel_requested, config, driver_pid, "
                          "driver_pid_start FROM sweeps ORDER BY created_at DESC, rowid DESC")
        counts: dict[str, dict[str, int]] = {}
        for sid, status, n in self._read(
            "SELECT sweep_id, status, COUNT(*) FROM runs WHERE sweep_id IS NOT NULL GROUP BY sweep_id, status"
        ):
            counts.setdefault(sid, {})[status] = n
        out = []
        for sid, name, executor, created_at, cancel, config, driver, driver_start in rows:
            c = counts.get(sid, {})
            try:
                config = json.loads(config)
            except (TypeError, ValueError):
                config = {}
            alive = driver is not None and pid_alive(int(driver), driver_start)
            asking = study_asking(config, sum(c.values()), cancel_requested=bool(cancel), driver_alive=alive)
            out.append({"id": sid, "name": name, "executor": executor, "created_at": created_at,
                        "status": sweep_status(c, cancel_requested=bool(cancel), asking=asking),
                        "points": sum(c.values()),
                        **{s: int(c.get(s, 0)) for s in STATUSES}})
        df = pd.DataFrame(out, columns=["id", "name", "executor", "created_at", "status", "points", *STATUSES])
        df["created_at"] = pd.to_datetime(df["created_at"], utc=True, format="ISO8601", errors="coerce")
        return df

    def sweep_runs(self, sweep_id: str) -> pd.DataFrame:
        """The sweep's runs in point order: id, status, error, config (dict), point (dict:
        index, label, values), phase, step, total_steps, pid, started_at, finished_at."""
        if not self._read("SELECT 1 FROM sweeps WHERE id=?", (sweep_id,)):
            raise StoreError(f"no sweep {sweep_id!r}; `mtl-lab sweeps` lists the stored sweeps")
        rows = self._read(
            "SELECT id, status, error, config, sweep_point, phase, step, total_steps, pid, started_at, finished_at "
            "FROM runs WHERE sweep_id=? ORDER BY rowid", (sweep_id,),
        )

        def parsed(text: Any) -> dict[str, Any]:
            try:
                value = json.loads(text)
            except (TypeError, ValueError):
                return {}
            return value if isinstance(value, dict) else {}

        columns = ["id", "status", "error", "config", "point", "phase", "step", "total_steps", "pid",
                   "started_at", "finished_at"]
        return pd.DataFrame([(r[0], r[1], r[2], parsed(r[3]), parsed(r[4]), *r[5:]) for r in rows], columns=columns)

    def request_cancel_sweep(self, sweep_id: str) -> list[str]:
        """Ask the sweep to stop: its driver launches nothing more, and each of its queued or
        running runs is asked to stop (as `request_cancel`). Returns those runs' ids."""
        with self._transaction() as conn:
            self._require_sweep(conn, sweep_id)
            conn.execute("UPDATE sweeps SET cancel_requested=1 WHERE id=?", (sweep_id,))
            ids = [r[0] for r in conn.execute(
                "SELECT id FROM runs WHERE sweep_id=? AND status IN ('queued','running')", (sweep_id,)
            ).fetchall()]
            conn.execute("UPDATE runs SET cancel_requested=1 WHERE sweep_id=? AND status IN ('queued','running')",
                         (sweep_id,))
        return ids

    def interrupt_run(self, run_id: str, error: str) -> bool:
        """Record that a queued or running run lost its process without an end of its own (a
        sweep's driver saw its Ray worker die); False if the run had already ended."""
        with self._transaction() as conn:
            self._require(conn, run_id)
            cur = conn.execute(
                "UPDATE runs SET status='interrupted', error=?, finished_at=? "
                "WHERE id=? AND status IN ('queued','running')", (error, _now_iso(), run_id),
            )
            return bool(cur.rowcount)

    def sweep_cancel_requested(self, sweep_id: str) -> bool:
        row = self._read("SELECT cancel_requested FROM sweeps WHERE id=?", (sweep_id,))
        return bool(row and row[0][0])

    def delete_sweep(self, sweep_id: str) -> int:
        """Delete a sweep and all its runs; refused while one of them is active (cancel the
        sweep first). Returns the number of runs deleted. Cached baselines are kept."""
        self.mark_interrupted()
        with self._transaction() as conn:
            self._require_sweep(conn, sweep_id)
            active = conn.execute(
                "SELECT id, status, pid, pid_start FROM runs WHERE sweep_id=? AND status IN ('queued','running')",
                (sweep_id,),
            ).fetchall()
            if active:
                raise StoreError(
                    f"sweep {sweep_id!r} still has {len(active)} queued or running run(s) (e.g. {active[0][0]}); "
                    f"cancel it first (`mtl-lab cancel {sweep_id}`), then delete it"
                )
            ids = [r[0] for r in conn.execute("SELECT id FROM runs WHERE sweep_id=?", (sweep_id,)).fetchall()]
            for table, column in (("metrics", "run_id"), ("interference", "run_id"), ("results", "run_id")):
                conn.execute(
                    f"DELETE FROM {table} WHERE {column} IN (SELECT id FROM runs WHERE sweep_id=?)", (sweep_id,)
                )
            conn.execute("DELETE FROM runs WHERE sweep_id=?", (sweep_id,))
            conn.execute("DELETE FROM sweeps WHERE id=?", (sweep_id,))
        return len(ids)

    # ---- results and baselines ---------------------------------------------------------------
    def save_result(self, run_id: str, result: dict[str, Any]) -> None:
        """Store (or replace) the run's result dict."""
        with self._transaction() as conn:
            self._require(conn, run_id)
            conn.execute(
                "INSERT INTO results(run_id, payload, delta_m) VALUES(?, ?, ?) "
                "ON CONFLICT(run_id) DO UPDATE SET payload=excluded.payload, delta_m=excluded.delta_m",
                (run_id, _dumps(result), _delta_m_of(result)),
            )

    def result(self, run_id: str) -> dict[str, Any] | None:
        """The run's result dict, or None while it has none."""
        row = self._read("SELECT payload FROM results WHERE run_id=?", (run_id,), run_id=run_id)
        if not row:
            return None
        try:
            result = json.loads(row[0][0])
        except (TypeError, ValueError) as exc:
            raise self._damaged(run_id, "its result is not valid JSON", exc) from None
        if not isinstance(result, dict):
            raise self._damaged(run_id, "its result is not a mapping", TypeError(type(result).__name__))
        return result

    def get_baseline(self, key: str) -> dict[str, Any] | None:
        """A cached single-task baseline by key, or None."""
        row = self._read("SELECT payload FROM baselines WHERE key=?", (key,))
        try:
            return json.loads(row[0][0]) if row else None
        except (TypeError, ValueError):
            log.warning("cached baseline %s in %s is damaged; it will be trained again", key, self.path)
            return None  # a cache: training the baseline again repairs it

    def put_baseline(self, key: str, value: dict[str, Any]) -> None:
        """Cache a single-task baseline under `key` (replaces an older one)."""
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO baselines(key, payload, created_at) VALUES(?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET payload=excluded.payload, created_at=excluded.created_at",
                (key, _dumps(value), _now_iso()),
            )


def _age_s(created_at: Any, now: datetime) -> float:
    """Seconds since an ISO timestamp; 0 when it cannot be read (never expire on doubt)."""
    try:
        return (now - datetime.fromisoformat(str(created_at))).total_seconds()
    except (TypeError, ValueError):
        return 0.0


def _tasks_label(tasks_json: Any) -> str:
    """`y1, y2` from the config's task list; "all" when it names none."""
    if not tasks_json:
        return "all"
    try:
        tasks = json.loads(tasks_json)
    except (TypeError, ValueError):
        return str(tasks_json)
    return ", ".join(map(str, tasks)) if isinstance(tasks, list) else str(tasks)


def _delta_m_of(result: dict[str, Any]) -> float | None:
    """The run's Δm% (Maninis et al., 2019) if its result has one."""
    value = result.get("delta_m")
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def sweep_status(counts: dict[str, int], *, cancel_requested: bool = False, asking: bool = False) -> str:
    """A sweep's status, derived from its runs' (`counts`: status -> number of runs):
    running while any run is queued or running, or while its study is `asking` for the next
    round (`study_asking`); then cancelled if a cancel was asked; finished when every run
    finished, partial when some did, failed when none did."""
    total = sum(counts.values())
    if asking or any(counts.get(s, 0) for s in ACTIVE_STATUSES):
        return "running"
    if cancel_requested:
        return "cancelled"
    done = counts.get("finished", 0)
    if total and done == total:
        return "finished"
    return "partial" if done else "failed"


def study_asking(config: Any, points: int, *, cancel_requested: bool, driver_alive: bool) -> bool:
    """Whether a sweep's study (`search:`, mtl_core.tune) is between two rounds: its driver
    lives, no cancel was asked and it has stored fewer points than its trials."""
    search = config.get("search") if isinstance(config, dict) else None
    trials = search.get("trials") if isinstance(search, dict) else None
    return (isinstance(trials, int) and points < trials and driver_alive and not cancel_requested)


def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise StoreError(f"unknown run status {status!r}; use one of: {', '.join(STATUSES)}")


# ---- the sink that writes a run into the store ------------------------------------------
# Set by the worker's SIGTERM handler (`request_stop`). A plain module flag: a signal
# handler may run between any two bytecodes, so it must not take locks.
_STOP_REQUESTED = False
PAUSE_POLL_S = 0.1  # how often a paused run looks for resume / step / cancel


def request_stop() -> None:
    """Ask every StoreSink in this process to stop the run (called from a signal handler)."""
    global _STOP_REQUESTED
    _STOP_REQUESTED = True


def stop_requested() -> bool:
    return _STOP_REQUESTED


def reset_stop() -> None:
    """Clear the stop flag (tests, or a process that runs several runs in turn)."""
    global _STOP_REQUESTED
    _STOP_REQUESTED = False


class StoreSink(Sink):
    """Writes a run's events into a RunStore, one transaction per logging step.

    Rows are buffered and committed together with the run's progress, so a reader sees
    a logging step either whole or not at all, and the writer pays one commit per step
    it logs rather than one per number.
    """

    def __init__(self, store: RunStore, run_id: str, *, poll_interval_s: float = 0.5) -> None:
        self.store = store
        self.run_id = run_id
        self.poll_interval_s = poll_interval_s
        self._rows: list[MetricRow] = []
        self._total_steps: int | None = None
        self._samples_per_s: float | None = None
        self._progress: tuple[str, int] | None = None
        self._progress_dirty = False
        self._device: str | None = None
        self._last_poll = float("-inf")
        self._cancelled = False
        self._paused = False

    def on_start(self, phase: str, info: dict[str, Any]) -> None:
        total = info.get("total_steps")
        self._total_steps = int(total) if total is not None else None
        self._samples_per_s = None
        if info.get("device") is not None:
            self._device = str(info["device"])
        self._set_progress(phase, 0)
        self.flush()  # the UI learns at once which model is training now

    def on_train(
        self,
        phase: str,
        step: int,
        losses: dict[str, float],
        total: float,
        weights: dict[str, float],
        extra: dict[str, float],
    ) -> None:
        now = time.time()
        rows = self._rows
        for task, loss in losses.items():
            rows.append((phase, step, task, "train", "loss", float(loss), now))
        for task, weight in weights.items():
            rows.append((phase, step, task, "train", "weight", float(weight), now))
        rows.append((phase, step, "total", "train", "loss", float(total), now))
        for key, value in extra.items():
            rows.append((phase, step, "total", "train", key, float(value), now))
        self._set_progress(phase, step)
        self.flush()

    def on_eval(self, phase: str, step: int, split: str, metrics: dict[str, dict[str, float]]) -> None:
        now = time.time()
        for task, values in metrics.items():
            for metric, value in values.items():
                self._rows.append((phase, step, task, split, metric, float(value), now))
        self.flush()

    def on_interference(self, phase: str, step: int, snapshot: dict[str, Any]) -> None:
        self.store.log_interference(self.run_id, phase, step, snapshot)

    def on_progress(self, phase: str, step: int, total_steps: int, samples_per_s: float) -> None:
        # Written with the next flush: a progress bar need not cost a commit of its own.
        self._total_steps = int(total_steps) if total_steps is not None else None
        self._samples_per_s = float(samples_per_s) if samples_per_s is not None else None
        self._set_progress(phase, step)

    def on_end(self, phase: str, status: str, error: str | None = None) -> None:
        self.flush()

    def _set_progress(self, phase: str, step: int) -> None:
        if self._progress is None or self._progress[0] != phase or step >= self._progress[1]:
            self._progress = (phase, int(step))
        self._progress_dirty = True

    def flush(self) -> None:
        """Commit buffered rows and the latest progress in one transaction."""
        if not self._rows and not self._progress_dirty:
            return
        rows, self._rows = self._rows, []
        try:
            with self.store._transaction():
                self.store.log_metrics(self.run_id, rows)
                if self._progress_dirty and self._progress is not None:
                    phase, step = self._progress
                    self.store.update_progress(
                        self.run_id, phase=phase, step=step, total_steps=self._total_steps,
                        samples_per_s=self._samples_per_s, device=self._device,
                    )
        except BaseException:
            self._rows = rows + self._rows  # rolled back: keep them for the next flush
            raise
        self._progress_dirty = False

    def should_stop(self) -> bool:
        """True after SIGTERM or once a cancel was requested in the store; while the run is
        paused (`RunStore.set_paused`), it waits here, before the next step.

        The store is polled at most every `poll_interval_s`, so the training loop does not
        query SQLite at every step (at every step while paused or stepping, so that a Step
        lets exactly one step through).
        """
        if _STOP_REQUESTED or self._cancelled:
            return True
        now = time.monotonic()
        if self._paused or now - self._last_poll >= self.poll_interval_s:
            self._last_poll = now
            self._cancelled, self._paused, _ = self.store.run_controls(self.run_id)
            if self._paused and not self._cancelled:
                self._cancelled = self._wait_while_paused()
        return self._cancelled

    def _wait_while_paused(self) -> bool:
        """Wait before the next step while the run is paused: the rows so far are committed
        first (the page shows where it stopped). A granted step lets one step through, a
        resume lets the run go on, a cancel or SIGTERM ends the wait; returns whether to stop."""
        self.flush()
        while not _STOP_REQUESTED:
            cancel, paused, grants = self.store.run_controls(self.run_id)
            if cancel:
                return True
            if not paused:
                self._paused = False
                return False
            if grants and self.store.take_step_grant(self.run_id):
                return False  # one step; the next call looks again at once (self._paused)
            time.sleep(PAUSE_POLL_S)
        return True
