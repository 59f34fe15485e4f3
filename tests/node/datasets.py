"""Data the node tier makes for its runs."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path


def heavy_dataset(root: Path, *, evidence_mib: int, questions: int = 200) -> Path:
    """A Spider-layout text2sql dataset whose questions carry ``evidence_mib`` MiB of evidence text in
    all: a runner parses and keeps every question, so its memory grows by a known amount (what a
    BIRD-sized questions file does to a pod whose footprint was set for the built-in data)."""
    db = root / "database" / "shop" / "shop.sqlite"
    db.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, price REAL)")
        conn.executemany("INSERT INTO items VALUES (?, ?, ?)", [(i, f"item {i}", i * 1.5) for i in range(50)])
    per = evidence_mib * 2**20 // questions
    words = ("price name item shop count total " * (per // 30 + 1))[:per]
    data = [{"db_id": "shop", "question": f"How many items cost more than {i}?", "difficulty": "simple",
             "SQL": f"SELECT count(*) FROM items WHERE price > {i}", "evidence": f"{i} {words}"}
            for i in range(questions)]
    (root / "dev.json").write_text(json.dumps(data))
    return root
