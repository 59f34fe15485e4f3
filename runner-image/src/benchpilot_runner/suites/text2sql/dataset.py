"""Where questions and databases come from: the built-in data, or a Spider/BIRD-layout folder.

Bring your own (``spec.suiteConfig.dataset``, a folder or any fsspec URI)::

    <dataset>/dev.json                       a JSON list: db_id, question, SQL (BIRD) or query (Spider),
                                             optional evidence, difficulty, question_id
    <dataset>/database/<db_id>/<db_id>.sqlite    (also accepted: dev_databases/, databases/)
    <dataset>/database/<db_id>/database_description/<table>.csv   optional (BIRD): column descriptions

A question's task type is the shape of its gold SQL (:func:`classify`); its difficulty is its
``difficulty`` (or ``hardness``) field when that is one of the suite's (BIRD's) levels or one of
Spider's (easy -> simple, medium -> moderate, hard and extra -> challenging); a question without
one (Spider's own files have none) is rated by Spider's official hardness rule from its gold SQL
(:func:`.hardness.spider_hardness`), and keeps that level (``hardness`` in the row's details).
A cell (task type, difficulty) holds the file's questions of that kind in file order, and
instance ``i`` is the ``i``-th; positions past a cell's size are not cases. Everything is checked
before any case runs: a missing file, a question without a field, a database that is not there or not SQLite is an
error naming the file (and the question's index).
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import random
import re
import shutil
import sqlite3
import threading
from collections import Counter
from pathlib import Path

from ..base import SuiteError
from . import builtin, builtin_db
from .hardness import levels
from .hints import generic_hints
from .introspect import _descriptions, introspect  # noqa: F401 - re-exported
from .items import Column, Item, Schema, classify, ordered, strip_strings  # noqa: F401 - re-exported
from .sqlexec import connect_readonly
from .vocab import DIFFICULTIES, TASK_TYPES

log = logging.getLogger("benchpilot.text2sql")
QUESTION_FILES = ("dev.json", "questions.json", "test.json", "train.json")
DATABASE_DIRS = ("database", "dev_databases", "databases")
MAX_QUESTIONS_BYTES = 256 * 2**20
QUESTION_CACHE = 4096
_DB_ID = re.compile(r"[A-Za-z0-9_.-]{1,128}")  # a db_id names a folder of the dataset: no path, no dot-file


# ----------------------------------------------------------------------------- datasets


class Dataset:
    """The questions and databases a run uses; shared by every case of a process."""

    def __init__(self) -> None:
        self.db_paths: dict[str, Path] = {}
        self._schemas: dict[str, Schema] = {}
        self._lock = threading.Lock()

    def schema(self, db_id: str) -> Schema:
        with self._lock:
            s = self._schemas.get(db_id)
            if s is None:
                s = self._schemas[db_id] = self._introspect(db_id)
            return s

    def loaded_schema(self, db_id: str) -> Schema | None:
        """The schema if it was read already (reading one may take a moment: callers do it in a thread)."""
        return self._schemas.get(db_id)

    def _introspect(self, db_id: str) -> Schema:
        return introspect(db_id, self.db_paths[db_id])

    def question(self, task_type: str, difficulty: str, instance: int) -> Item | None: ...

    def has(self, task_type: str, difficulty: str, instance: int) -> bool:
        return True

    def examples(self, item: Item, k: int) -> list[Item]: ...

    def all_questions(self, instances: int) -> list[Item]: ...


class BuiltinDataset(Dataset):
    """Five seeded databases; questions made from templates, as many per cell as asked for."""

    def __init__(self, root: Path | None = None):
        super().__init__()
        self.db_paths = builtin_db.ensure_databases(root)
        self._conns = {k: connect_readonly(v) for k, v in self.db_paths.items()}
        self._questions: dict[tuple, Item] = {}
        self._values: dict = {}  # db -> (table, column) -> distinct values, read once

    def _introspect(self, db_id: str) -> Schema:
        s = introspect(db_id, self.db_paths[db_id])
        d = builtin_db.BY_ID[db_id]
        meta = {(t.name, c.name): c for t in d.tables for c in t.cols}
        cols = []
        for c in s.columns:
            m = meta.get((c.table, c.name))
            cols.append(Column(c.table, c.name, c.type, m.desc if m else "",
                               c.values if m is not None and m.role in ("cat", "label") else ()))
        cols = tuple(cols)
        return Schema(s.db_id, s.tables, cols, s.foreign_keys)

    def question(self, task_type: str, difficulty: str, instance: int) -> Item:
        key = (task_type, difficulty, instance)
        with self._lock:
            item = self._questions.get(key)
            if item is None:
                if len(self._questions) >= QUESTION_CACHE:
                    self._questions.pop(next(iter(self._questions)))
                item = self._questions[key] = builtin.make_question(task_type, difficulty, instance, self._conns,
                                                                            self._values)
            return item

    def examples(self, item: Item, k: int) -> list[Item]:
        """Solved questions of the same database and difficulty, of other shapes (never the question itself)."""
        instance = int(item.question_id.rsplit("-", 1)[1])
        shapes = [t for t in TASK_TYPES if t != item.task_type]
        n = len(builtin_db.DATABASES)
        return [self.question(shapes[j % len(shapes)], item.difficulty, instance + n * (j + 1)) for j in range(k)]

    def all_questions(self, instances: int) -> list[Item]:
        return [self.question(t, d, i) for t in TASK_TYPES for d in DIFFICULTIES for i in range(instances)]


class FolderDataset(Dataset):
    """A Spider/BIRD-layout dataset, local or at any fsspec URI (copied to a local folder once: SQLite
    needs local files)."""

    def __init__(self, uri: str, *, questions: str | None = None, databases: str | None = None,
                 local_root: Path | None = None):
        super().__init__()
        self.root = _localize(uri, questions, databases, local_root)
        qfile = self._questions_file(questions)
        self.items, self.cells = self._load(qfile)
        self.db_dir = self._database_dir(databases)
        self.db_paths = self._check_databases(qfile)
        self._by_db: dict[str, list[Item]] = {}
        for it in self.items:
            self._by_db.setdefault(it.db_id, []).append(it)

    def _questions_file(self, name: str | None) -> Path:
        if name:
            f = self.root / name
            if not f.is_file():
                raise SuiteError(f"{f}: the questions file (spec.suiteConfig.questions) does not exist")
            return f
        for n in QUESTION_FILES:
            if (self.root / n).is_file():
                return self.root / n
        if not self.root.is_dir():
            raise SuiteError(f"{self.root}: the dataset (spec.suiteConfig.dataset) is not a folder")
        raise SuiteError(_no_questions(self.root))

    def _database_dir(self, name: str | None) -> Path:
        for n in ((name,) if name else DATABASE_DIRS):
            if (self.root / n).is_dir():
                return self.root / n
        raise SuiteError(_no_databases(self.root, name))

    def _load(self, qfile: Path) -> tuple[list[Item], dict[tuple[str, str], list[int]]]:
        if qfile.stat().st_size > MAX_QUESTIONS_BYTES:
            raise SuiteError(f"{qfile}: {qfile.stat().st_size} bytes; at most {MAX_QUESTIONS_BYTES} are read")
        try:
            data = json.loads(qfile.read_bytes().decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise SuiteError(f"{qfile}: not a JSON document: {str(exc)[:200]}") from None
        if not isinstance(data, list) or not data:
            raise SuiteError(f"{qfile}: expected a non-empty JSON list of questions, got {type(data).__name__}")
        items, cells = [], {}
        for i, q in enumerate(data):
            where = f"{qfile}: question [{i}]"
            if not isinstance(q, dict):
                raise SuiteError(f"{where} is not an object")
            db_id, text = q.get("db_id"), q.get("question")
            sql = q.get("SQL", q.get("query"))
            for key, value in (("db_id", db_id), ("question", text), ("SQL or query", sql)):
                if not isinstance(value, str) or not value.strip():
                    raise SuiteError(f"{where} has no {key} (a non-empty string)")
            if not _is_db_id(db_id):
                raise SuiteError(f"{where}: db_id {db_id[:60]!r} is not a database folder name")
            evidence = q.get("evidence") or ""
            if not isinstance(evidence, str):
                raise SuiteError(f"{where}: evidence is not a string")
            difficulty, hardness = levels(q.get("difficulty", q.get("hardness")), sql)
            task_type = classify(sql)
            qid = str(q.get("question_id", i))[:64]
            items.append(Item(db_id, text.strip(), sql.strip(), task_type, difficulty, qid, evidence.strip(),
                              hardness))
            cells.setdefault((task_type, difficulty), []).append(i)
        return items, cells

    def _check_databases(self, qfile: Path) -> dict[str, Path]:
        paths = {}
        for i, it in enumerate(self.items):
            if it.db_id in paths:
                continue
            p = self.db_dir / it.db_id / f"{it.db_id}.sqlite"
            if not p.is_file():
                raise SuiteError(f"{p}: the database of {qfile.name} question [{i}] (db_id {it.db_id!r}) does not exist")
            with open(p, "rb") as fh:
                if fh.read(16) != b"SQLite format 3\x00":
                    raise SuiteError(f"{p}: not a SQLite database")
            try:
                conn = connect_readonly(p)
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
                conn.close()
            except sqlite3.Error as exc:
                raise SuiteError(f"{p}: cannot be read as SQLite: {exc}") from None
            paths[it.db_id] = p
        return paths

    def _introspect(self, db_id: str) -> Schema:
        path = self.db_paths[db_id]
        return introspect(db_id, path, _descriptions(path.parent))

    def question(self, task_type: str, difficulty: str, instance: int) -> Item | None:
        cell = self.cells.get((task_type, difficulty), ())
        if instance >= len(cell):
            return None
        index = cell[instance]
        it = self.items[index]
        if not it.hints:  # made once per question, on first use (it needs the database's schema)
            it = self.items[index] = Item(**{**it.__dict__, "hints": generic_hints(it, self.schema(it.db_id))})
        return it

    def has(self, task_type: str, difficulty: str, instance: int) -> bool:
        return instance < len(self.cells.get((task_type, difficulty), ()))

    def examples(self, item: Item, k: int) -> list[Item]:
        pool = [x for x in self._by_db.get(item.db_id, ()) if x.question_id != item.question_id]
        rng = random.Random(int(hashlib.sha256(f"{item.db_id}|{item.question_id}".encode()).hexdigest()[:12], 16))
        return rng.sample(pool, min(k, len(pool)))

    def all_questions(self, instances: int) -> list[Item]:
        return list(self.items)

    def sizes(self) -> Counter:
        return Counter({k: len(v) for k, v in self.cells.items()})


def _localize(uri: str, questions: str | None, databases: str | None, local_root: Path | None) -> Path:
    """A local folder holding the dataset: the folder itself, or a copy of a remote one (once per URI
    and version of its questions file).

    Only the questions file and the databases its questions name are copied (Spider's ``database/``
    holds far more databases than its dev set uses), into a temporary folder renamed into place when
    complete: a copy cut short is never taken for the dataset, and concurrent copies do not mix."""
    if "://" not in uri or uri.startswith("file://"):
        return Path(uri.removeprefix("file://")).expanduser()
    import fsspec

    base = (local_root or builtin_db.data_dir()) / "datasets"
    part: Path | None = None
    try:
        fs, root = fsspec.core.url_to_fs(uri)
        root = root.rstrip("/")
        if not fs.isdir(root):
            raise SuiteError(f"{uri}: the dataset (spec.suiteConfig.dataset) is not a folder")
        qname = questions or next((n for n in QUESTION_FILES if fs.exists(f"{root}/{n}")), None)
        if qname is None or not fs.isfile(f"{root}/{qname}"):
            raise SuiteError(f"{uri}/{qname}: the questions file (spec.suiteConfig.questions) does not exist"
                             if questions else _no_questions(uri))
        dbname = databases or next((n for n in DATABASE_DIRS if fs.isdir(f"{root}/{n}")), None)
        if dbname is None or not fs.isdir(f"{root}/{dbname}"):
            raise SuiteError(_no_databases(uri, databases))
        # one copy per URI and version of its questions file (an edited dataset is copied again)
        info = fs.info(f"{root}/{qname}")
        version = [uri, qname, dbname] + [str(info.get(k)) for k in ("size", "ETag", "etag", "mtime", "LastModified")]
        dest = base / hashlib.sha256("\0".join(version).encode()).hexdigest()[:16]
        if (dest / ".complete").exists():
            return dest
        part = base / f".{dest.name}.{os.getpid()}.{threading.get_ident()}.part"
        copied = _copy_into(fs, uri, root, qname, dbname, part, dest)
        log.info("dataset copied", extra={"uri": uri, "bytes": copied, "to": str(dest)})
    except SuiteError:
        raise
    except Exception as exc:  # noqa: BLE001 - any storage failure names the URI
        raise SuiteError(f"{uri}: cannot copy the dataset to {base}: {type(exc).__name__}: {str(exc)[:200]}"
                         + ("; on a cluster, raise spec.resources.scratch" if isinstance(exc, OSError)
                            and exc.errno == errno.ENOSPC else "")) from None
    finally:
        if part is not None:
            shutil.rmtree(part, ignore_errors=True)
    return dest


def _copy_into(fs, uri: str, root: str, qname: str, dbname: str, part: Path, dest: Path) -> int:
    """Copy the questions file and the databases it names into ``part``, then rename it to ``dest``;
    returns the bytes copied. The caller removes ``part`` whatever happens."""
    shutil.rmtree(part, ignore_errors=True)
    part.mkdir(parents=True)
    fs.get(f"{root}/{qname}", str(part / qname))
    copied = (part / qname).stat().st_size
    for db_id in _named_databases(part / qname):
        src = f"{root}/{dbname}/{db_id}"
        if not fs.isfile(f"{src}/{db_id}.sqlite"):
            raise SuiteError(f"{uri}/{dbname}/{db_id}/{db_id}.sqlite: the database of questions with "
                             f"db_id {db_id!r} in {qname} does not exist")
        fs.get(src, str(part / dbname / db_id), recursive=True)
        copied += sum(f.stat().st_size for f in (part / dbname / db_id).rglob("*") if f.is_file())
    (part / ".complete").write_text(uri)
    try:
        os.rename(part, dest)
    except OSError:  # another process finished first (use its copy), or a stale incomplete folder
        if not (dest / ".complete").exists():
            shutil.rmtree(dest, ignore_errors=True)
            os.rename(part, dest)
    return copied


def _is_db_id(db_id: str) -> bool:
    return bool(_DB_ID.fullmatch(db_id)) and not db_id.startswith(".")


def _no_questions(where) -> str:
    return (f"{where}: no questions file in the dataset; expected one of {', '.join(QUESTION_FILES)} "
            "(or name it in spec.suiteConfig.questions)")


def _no_databases(where, name: str | None) -> str:
    return (f"{where}: no database folder in the dataset; expected "
            f"{name or ' or '.join(DATABASE_DIRS)}/<db_id>/<db_id>.sqlite")


def _named_databases(qfile: Path) -> list[str]:
    """The db_ids a questions file names, in order (the file is checked properly once it is local)."""
    try:
        if qfile.stat().st_size > MAX_QUESTIONS_BYTES:
            return []
        data = json.loads(qfile.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return []
    seen: dict[str, None] = {}
    for q in data if isinstance(data, list) else []:
        db_id = q.get("db_id") if isinstance(q, dict) else None
        if isinstance(db_id, str) and _is_db_id(db_id):
            seen[db_id] = None
    return list(seen)


def open_dataset(config: dict) -> Dataset:
    """The dataset ``spec.suiteConfig`` names (checked: ``SuiteError`` names the file)."""
    uri = config.get("dataset")
    ds = BuiltinDataset() if not uri else FolderDataset(uri, questions=config.get("questions"),
                                                         databases=config.get("databases"))
    for db_id in ds.db_paths:  # every schema read now, before any case: never on the event loop
        try:
            ds.schema(db_id)
        except sqlite3.Error as exc:
            raise SuiteError(f"{ds.db_paths[db_id]}: cannot read its schema: {exc}") from None
    return ds
