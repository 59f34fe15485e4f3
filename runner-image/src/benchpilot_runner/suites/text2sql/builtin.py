"""The built-in text2sql data: seeded SQLite databases of five domains and questions made from templates.

Nothing is downloaded. Every database is generated from a fixed seed (the same bytes of content
on every machine), with foreign keys, descriptive column names and per-column descriptions. A
question is made from (task type, difficulty, instance): the instance picks the database and
seeds the choice of tables, columns and values, so a cell holds hundreds of distinct questions;
its gold SQL is written by the template, and the question reads it in plain words.

The databases are written once per machine (or pod) into a data folder, atomically, and only
read afterwards (through read-only connections).
"""

from __future__ import annotations

import hashlib
import os
import random
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .items import Item, substitute_column
from .vocab import VERSION

# ----------------------------------------------------------------------------- schemas


@dataclass(frozen=True)
class Col:
    name: str
    type: str  # INTEGER | REAL | TEXT
    desc: str  # what the column holds, in words (shown to the model, embedded for retrieval)
    role: str  # pk | fk | label | cat | num | date
    gen: tuple = ()
    ref: str | None = None  # the table a foreign key points to


@dataclass(frozen=True)
class Table:
    name: str
    noun: str  # plural, as a question says it
    desc: str
    rows: int
    cols: tuple[Col, ...]

    def by_role(self, *roles: str) -> list[Col]:
        return [c for c in self.cols if c.role in roles]

    @property
    def label(self) -> Col:
        return self.by_role("label")[0]


@dataclass(frozen=True)
class DbDef:
    db_id: str
    desc: str
    tables: tuple[Table, ...]

    def table(self, name: str) -> Table:
        return next(t for t in self.tables if t.name == name)

    def links(self) -> list[tuple[str, str, str]]:
        """(child, fk column, parent) for every foreign key."""
        return [(t.name, c.name, c.ref) for t in self.tables for c in t.cols if c.role == "fk"]


def pk() -> Col:
    return Col("id", "INTEGER", "unique identifier", "pk")


def fk(name: str, ref: str, desc: str) -> Col:
    return Col(name, "INTEGER", desc, "fk", ref=ref)


def label(name: str, desc: str, kind: str) -> Col:
    return Col(name, "TEXT", desc, "label", (kind,))


def cat(name: str, desc: str, *values: str) -> Col:
    return Col(name, "TEXT", desc, "cat", values)


def num(name: str, desc: str, lo: float, hi: float, integer: bool = True) -> Col:
    return Col(name, "INTEGER" if integer else "REAL", desc, "num", (lo, hi, integer))


def date(name: str, desc: str, y0: int, y1: int) -> Col:
    return Col(name, "TEXT", desc + " (YYYY-MM-DD)", "date", (y0, y1))


CITIES = ("Lisbon", "Porto", "Madrid", "Lyon", "Berlin", "Hamburg", "Turin", "Krakow", "Dublin", "Ghent")
COUNTRIES = ("Portugal", "Spain", "France", "Germany", "Italy", "Poland", "Ireland", "Belgium")

DATABASES: tuple[DbDef, ...] = (
    DbDef("retail", "An online shop: customers, products, suppliers, orders and their lines.", (
        Table("suppliers", "suppliers", "companies that supply products", 12, (
            pk(), label("supplier_name", "the supplier's company name", "company"),
            cat("country", "country the supplier is based in", *COUNTRIES),
            num("rating", "supplier quality rating from 1 to 5", 1, 5))),
        Table("customers", "customers", "people who buy from the shop", 80, (
            pk(), label("full_name", "the customer's full name", "person"),
            cat("city", "city the customer lives in", *CITIES),
            cat("segment", "customer segment", "consumer", "corporate", "small_business"),
            date("signup_date", "date the customer signed up", 2019, 2024))),
        Table("products", "products", "items for sale", 60, (
            pk(), label("product_name", "name of the product", "product"),
            cat("category", "product category", "books", "garden", "kitchen", "toys", "sports", "music"),
            num("unit_price", "price of one unit in euros", 2, 400, False),
            fk("supplier_id", "suppliers", "the supplier of the product"))),
        Table("orders", "orders", "orders placed by customers", 200, (
            pk(), label("order_code", "the order's reference code", "code"),
            fk("customer_id", "customers", "the customer who placed the order"),
            date("order_date", "date the order was placed", 2021, 2024),
            cat("status", "delivery status of the order", "pending", "shipped", "delivered", "returned"),
            num("shipping_cost", "shipping cost in euros", 0, 40, False))),
        Table("order_items", "order lines", "the products of each order", 400, (
            pk(), label("line_ref", "reference of the order line", "code"),
            fk("order_id", "orders", "the order this line belongs to"),
            fk("product_id", "products", "the product ordered"),
            num("quantity", "number of units ordered", 1, 12),
            num("discount_pct", "discount on the line in percent", 0, 30))),
    )),
    DbDef("library", "A city library network: authors, books, branches, copies, members and loans.", (
        Table("authors", "authors", "writers of the books", 40, (
            pk(), label("author_name", "the author's name", "person"),
            cat("nationality", "the author's nationality", *COUNTRIES),
            num("birth_year", "year the author was born", 1920, 1995))),
        Table("books", "books", "titles in the catalogue", 120, (
            pk(), label("title", "title of the book", "title"),
            fk("author_id", "authors", "the author who wrote the book"),
            cat("genre", "literary genre", "fiction", "history", "science", "poetry", "crime", "travel"),
            num("published_year", "year the book was published", 1950, 2024),
            num("page_count", "number of pages", 60, 900))),
        Table("branches", "branches", "library branches", 8, (
            pk(), label("branch_name", "name of the branch", "place"),
            cat("city", "city of the branch", *CITIES[:6]),
            num("opening_year", "year the branch opened", 1950, 2020))),
        Table("copies", "copies", "physical copies of books held by branches", 300, (
            pk(), label("barcode", "barcode of the copy", "code"),
            fk("book_id", "books", "the book this is a copy of"),
            fk("branch_id", "branches", "the branch holding the copy"),
            cat("condition", "physical condition of the copy", "new", "good", "worn", "damaged"))),
        Table("members", "members", "people with a library card", 90, (
            pk(), label("member_name", "the member's name", "person"),
            cat("membership", "membership type", "standard", "student", "senior", "family"),
            date("joined_on", "date the member joined", 2010, 2024))),
        Table("loans", "loans", "copies lent to members", 350, (
            pk(), label("loan_ref", "reference of the loan", "code"),
            fk("copy_id", "copies", "the copy that was lent"),
            fk("member_id", "members", "the member who borrowed it"),
            date("loan_date", "date the copy was lent", 2022, 2024),
            num("days_kept", "days the member kept the copy", 1, 60))),
    )),
    DbDef("hospital", "A hospital: departments, doctors, patients, admissions, medications and prescriptions.", (
        Table("departments", "departments", "hospital departments", 8, (
            pk(), label("department_name", "name of the department", "ward"),
            num("floor", "floor of the building the department is on", 0, 9),
            num("bed_count", "number of beds", 10, 80))),
        Table("doctors", "doctors", "physicians employed by the hospital", 40, (
            pk(), label("doctor_name", "the doctor's name", "person"),
            fk("department_id", "departments", "the department the doctor works in"),
            cat("specialty", "medical specialty", "cardiology", "oncology", "neurology", "pediatrics",
                "orthopedics", "radiology"),
            num("hire_year", "year the doctor was hired", 1995, 2024))),
        Table("patients", "patients", "people treated at the hospital", 120, (
            pk(), label("patient_name", "the patient's name", "person"),
            cat("sex", "the patient's sex", "F", "M"),
            cat("home_city", "city the patient lives in", *CITIES),
            num("birth_year", "year the patient was born", 1930, 2020))),
        Table("admissions", "admissions", "hospital stays", 260, (
            pk(), label("admission_code", "code of the admission", "code"),
            fk("patient_id", "patients", "the admitted patient"),
            fk("doctor_id", "doctors", "the doctor in charge"),
            date("admit_date", "date of admission", 2021, 2024),
            cat("diagnosis", "main diagnosis", "fracture", "pneumonia", "arrhythmia", "migraine", "appendicitis",
                "diabetes"),
            num("stay_days", "length of the stay in days", 1, 30),
            num("total_cost", "total cost of the stay in euros", 300, 40000, False))),
        Table("medications", "medications", "drugs the pharmacy stocks", 30, (
            pk(), label("drug_name", "name of the medication", "drug"),
            cat("form", "form of the medication", "tablet", "injection", "syrup", "inhaler"),
            num("unit_cost", "cost of one unit in euros", 0.2, 120, False))),
        Table("prescriptions", "prescriptions", "medications prescribed during admissions", 420, (
            pk(), label("prescription_ref", "reference of the prescription", "code"),
            fk("admission_id", "admissions", "the admission it was prescribed in"),
            fk("medication_id", "medications", "the prescribed medication"),
            num("dose_mg", "dose in milligrams", 5, 1000),
            num("days", "number of days prescribed", 1, 28))),
    )),
    DbDef("flights", "An airline alliance: airlines, airports, aircraft, flights, passengers and bookings.", (
        Table("airlines", "airlines", "airlines of the alliance", 10, (
            pk(), label("airline_name", "name of the airline", "company"),
            cat("home_country", "country the airline is based in", *COUNTRIES),
            num("founded_year", "year the airline was founded", 1920, 2015))),
        Table("airports", "airports", "airports served", 14, (
            pk(), label("airport_code", "three-letter airport code", "iata"),
            cat("city", "city the airport serves", *CITIES),
            num("runways", "number of runways", 1, 5))),
        Table("aircraft", "aircraft", "planes in service", 40, (
            pk(), label("tail_number", "registration of the plane", "code"),
            fk("airline_id", "airlines", "the airline operating the plane"),
            cat("model", "aircraft model", "A320", "A321", "B737", "B787", "E190", "ATR72"),
            num("seats", "number of passenger seats", 60, 330))),
        Table("flights", "flights", "scheduled flights", 240, (
            pk(), label("flight_number", "the flight number", "flight"),
            fk("aircraft_id", "aircraft", "the plane flying it"),
            fk("origin_airport_id", "airports", "the departure airport"),
            fk("destination_airport_id", "airports", "the arrival airport"),
            date("departure_date", "date of departure", 2023, 2024),
            num("distance_km", "distance flown in kilometres", 200, 3500),
            num("delay_minutes", "delay at departure in minutes", 0, 240))),
        Table("passengers", "passengers", "travellers", 150, (
            pk(), label("passenger_name", "the passenger's name", "person"),
            cat("nationality", "the passenger's nationality", *COUNTRIES),
            cat("loyalty_tier", "frequent-flyer tier", "none", "silver", "gold", "platinum"))),
        Table("bookings", "bookings", "seats booked by passengers", 500, (
            pk(), label("booking_ref", "booking reference", "code"),
            fk("flight_id", "flights", "the booked flight"),
            fk("passenger_id", "passengers", "the passenger who booked"),
            cat("fare_class", "fare class", "economy", "premium", "business"),
            num("price_eur", "price paid in euros", 30, 2500, False))),
    )),
    DbDef("university", "A university: departments, instructors, students, courses, sections and enrollments.", (
        Table("departments", "departments", "academic departments", 9, (
            pk(), label("dept_name", "name of the department", "field"),
            cat("building", "building the department is housed in", "North", "South", "East", "West", "Central"),
            num("budget", "yearly budget in euros", 100000, 2000000))),
        Table("instructors", "instructors", "teaching staff", 45, (
            pk(), label("instructor_name", "the instructor's name", "person"),
            fk("dept_id", "departments", "the instructor's department"),
            cat("rank", "academic rank", "lecturer", "assistant", "associate", "professor"),
            num("salary", "yearly salary in euros", 30000, 140000))),
        Table("students", "students", "enrolled students", 160, (
            pk(), label("student_name", "the student's name", "person"),
            fk("major_dept_id", "departments", "the department of the student's major"),
            num("enroll_year", "year the student enrolled", 2016, 2024),
            num("gpa", "grade point average from 0 to 4", 1.0, 4.0, False))),
        Table("courses", "courses", "courses in the catalogue", 50, (
            pk(), label("course_title", "title of the course", "course"),
            fk("dept_id", "departments", "the department offering the course"),
            num("credits", "credit points of the course", 2, 10),
            cat("level", "course level", "intro", "intermediate", "advanced", "graduate"))),
        Table("sections", "sections", "course sections taught in a term", 120, (
            pk(), label("section_code", "code of the section", "code"),
            fk("course_id", "courses", "the course taught"),
            fk("instructor_id", "instructors", "the instructor teaching it"),
            cat("term", "term of the section", "spring", "summer", "fall"),
            num("year", "year the section is taught", 2020, 2024))),
        Table("enrollments", "enrollments", "students registered in sections", 600, (
            pk(), label("enrollment_ref", "reference of the enrollment", "code"),
            fk("student_id", "students", "the enrolled student"),
            fk("section_id", "sections", "the section"),
            num("grade", "final grade from 0 to 100", 0, 100))),
    )),
)
BY_ID = {d.db_id: d for d in DATABASES}

_FIRST = ("Ana", "Bruno", "Clara", "David", "Eva", "Filipe", "Greta", "Hugo", "Ines", "Jonas", "Katja", "Luis",
          "Marta", "Nils", "Olga", "Pedro", "Rita", "Sven", "Teresa", "Ugo", "Vera", "Witold", "Xana", "Yann")
_LAST = ("Almeida", "Berger", "Costa", "Duarte", "Eriksen", "Fischer", "Garcia", "Horvat", "Ivanova", "Jansen",
         "Kowalski", "Lopes", "Moreau", "Novak", "Oliveira", "Petit", "Quintana", "Rossi", "Schmidt", "Tavares")
_WORDS = {
    "company": (("Alpha", "Blue", "Crest", "Delta", "Evergreen", "Fjord", "Granite", "Harbor", "Iris", "Juniper",
                 "Keystone", "Lumen", "Meridian", "Nordic"), ("Trading", "Supply", "Works", "Group", "Air", "Lines")),
    "product": (("Classic", "Compact", "Deluxe", "Eco", "Family", "Mini", "Pro", "Smart", "Travel", "Vintage"),
                ("Lamp", "Kettle", "Puzzle", "Racket", "Speaker", "Planter", "Notebook", "Ball", "Blender", "Guitar")),
    "title": (("Silent", "Northern", "Hidden", "Last", "Golden", "Broken", "Distant", "Secret", "Winter", "Red"),
              ("River", "Garden", "Empire", "Voyage", "Letters", "Atlas", "Harbour", "Promise", "Frontier", "Song")),
    "place": (("Central", "Riverside", "Old Town", "Harbour", "Hillside", "University", "Market", "Park"), ("Branch",)),
    "ward": (("Cardiac", "Surgical", "Children's", "Emergency", "Maternity", "Neurology", "Oncology", "Orthopedic"),
             ("Ward",)),
    "drug": (("Amoxi", "Cardio", "Dolo", "Gastro", "Neuro", "Pulmo", "Derma", "Hepa", "Osteo", "Immuno"),
             ("cillin", "pril", "statin", "zole", "mab", "sone")),
    "field": (("Mathematics", "Physics", "Biology", "History", "Economics", "Computer Science", "Chemistry",
               "Philosophy", "Linguistics"), ("",)),
    "course": (("Intro to", "Advanced", "Applied", "Topics in", "Foundations of", "Seminar in"),
               ("Algebra", "Genetics", "Optics", "Markets", "Ethics", "Databases", "Syntax", "Thermodynamics",
                "Statistics")),
}


def _label_value(kind: str, rng: random.Random, i: int, table: str) -> str:
    if kind == "person":
        return f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
    if kind == "code":
        return f"{table[:3].upper()}-{i:05d}"
    if kind == "iata":
        return "".join(rng.choice("ABCDEFGHIJKLMNOPRSTUVWXYZ") for _ in range(3))
    if kind == "flight":
        return f"BP{100 + i}"
    first, second = _WORDS[kind]
    return f"{rng.choice(first)} {rng.choice(second)}".strip()


def _value(col: Col, rng: random.Random, i: int, table: str, parent_rows: dict[str, int]):
    if col.role == "pk":
        return i
    if col.role == "fk":
        n = parent_rows[col.ref]
        return rng.randint(1, n) if rng.random() > 0.03 else None  # a few unknowns: IS NULL questions
    if col.role == "label":
        return _label_value(col.gen[0], rng, i, table)
    if col.role == "cat":
        weights = [len(col.gen) - k + 1 for k in range(len(col.gen))]  # uneven: realistic, and GROUP BY differs
        return rng.choices(col.gen, weights)[0]
    if col.role == "num":
        lo, hi, integer = col.gen
        return rng.randint(int(lo), int(hi)) if integer else round(rng.uniform(lo, hi), 2)
    if col.role == "date":
        y0, y1 = col.gen
        return f"{rng.randint(y0, y1)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    raise ValueError(col.role)


def create_database(db: DbDef, path: Path) -> None:
    """Write ``db``'s tables and seeded rows to a new SQLite file at ``path``."""
    rng = random.Random(int(hashlib.sha256(f"{VERSION}|{db.db_id}".encode()).hexdigest()[:12], 16))
    conn = sqlite3.connect(path)
    try:
        rows = {t.name: t.rows for t in db.tables}
        for t in db.tables:
            defs = []
            for c in t.cols:
                d = f'"{c.name}" {c.type}' + (" PRIMARY KEY" if c.role == "pk" else "")
                if c.role == "fk":
                    d += f" REFERENCES {c.ref}(id)"
                defs.append(d)
            conn.execute(f"CREATE TABLE {t.name} ({', '.join(defs)})")
            data = [tuple(_value(c, rng, i, t.name, rows) for c in t.cols) for i in range(1, t.rows + 1)]
            conn.executemany(f"INSERT INTO {t.name} VALUES ({', '.join('?' * len(t.cols))})", data)
        conn.commit()
    finally:
        conn.close()


def data_dir() -> Path:
    """Where the built-in databases are written: $BENCHPILOT_DATA_DIR, else a folder in the temp dir."""
    root = os.environ.get("BENCHPILOT_DATA_DIR") or tempfile.gettempdir()
    return Path(root) / f"benchpilot-{VERSION}"


def ensure_databases(root: Path | None = None) -> dict[str, Path]:
    """db_id -> path of every built-in database, creating the missing ones (atomically: a file is
    written under a temporary name, then renamed, so a concurrent process never reads half of one)."""
    root = root or data_dir()
    root.mkdir(parents=True, exist_ok=True)
    out = {}
    for db in DATABASES:
        path = root / db.db_id / f"{db.db_id}.sqlite"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.unlink(missing_ok=True)
            create_database(db, tmp)
            os.replace(tmp, path)
        out[db.db_id] = path
    return out


# ----------------------------------------------------------------------------- questions


class _Data:
    """Read access to one generated database while making questions (values, quantiles)."""

    def __init__(self, db: DbDef, conn: sqlite3.Connection, values: dict | None = None):
        self.db, self.conn = db, conn
        self._values: dict = {} if values is None else values  # (table, column) -> sorted distinct values

    def values(self, table: str, col: str) -> list:
        key = (table, col)
        if key not in self._values:
            self._values[key] = [r[0] for r in self.conn.execute(
                f'SELECT DISTINCT "{col}" FROM {table} WHERE "{col}" IS NOT NULL ORDER BY 1')]
        return self._values[key]

    def quantile(self, table: str, col: str, q: float):
        vals = self.values(table, col)
        v = vals[min(len(vals) - 1, int(q * len(vals)))]
        return round(v, 1) if isinstance(v, float) else v


def _lit(v) -> str:
    return "'" + str(v).replace("'", "''") + "'" if isinstance(v, str) else repr(v)


def _q(s: str) -> str:
    return s[0].upper() + s[1:]


class _Gen:
    """Templates: each picks tables, columns and values with ``rng`` and returns (question, sql, meta)."""

    def __init__(self, data: _Data, rng: random.Random):
        self.d, self.db, self.rng = data, data.db, rng

    def table_with(self, *roles: str) -> Table:
        return self.rng.choice([t for t in self.db.tables if all(t.by_role(r) for r in roles)])

    def link(self, child_roles=(), parent_roles=()) -> tuple[Table, Col, Table]:
        options = [(self.db.table(c), next(x for x in self.db.table(c).cols if x.name == f), self.db.table(p))
                   for c, f, p in self.db.links()]
        options = [(c, f, p) for c, f, p in options if all(c.by_role(r) for r in child_roles)
                   and all(p.by_role(r) for r in parent_roles)]
        return self.rng.choice(options)

    def value(self, t: Table, c: Col):
        return self.rng.choice(self.d.values(t.name, c.name))

    def pick(self, t: Table, *roles: str) -> Col:
        return self.rng.choice(t.by_role(*roles))

    # -- filter
    def filter_simple(self):
        t = self.table_with("cat")
        c = self.pick(t, "cat")
        v = self.value(t, c)
        return (f"List the {t.label.desc.removeprefix('the ')} of every one of the {t.noun} whose {c.desc} is {v}.",
                f"SELECT {t.label.name} FROM {t.name} WHERE {c.name} = {_lit(v)}", {"filter": (t, c)})

    def filter_moderate(self):
        t = self.table_with("cat", "num")
        c, n = self.pick(t, "cat"), self.pick(t, "num")
        v, x = self.value(t, c), self.d.quantile(t.name, n.name, 0.4)
        return (f"Which {t.noun} have {c.desc} {v} and a {n.desc} above {x}? Give their "
                f"{t.label.desc.removeprefix('the ')} and {n.desc}, highest {n.desc} first.",
                f"SELECT {t.label.name}, {n.name} FROM {t.name} WHERE {c.name} = {_lit(v)} AND {n.name} > {x} "
                f"ORDER BY {n.name} DESC, {t.label.name}", {"filter": (t, c)})

    def filter_challenging(self):
        t = self.table_with("cat", "num")
        c, n = self.pick(t, "cat"), self.pick(t, "num")
        vals = self.d.values(t.name, c.name)
        v1, v2 = self.rng.sample(vals, 2) if len(vals) > 1 else (vals[0], vals[0])
        lo, hi = self.d.quantile(t.name, n.name, 0.2), self.d.quantile(t.name, n.name, 0.8)
        return (f"Among the {t.noun} whose {c.desc} is {v1} or {v2} and whose {n.desc} is between {lo} and {hi}, "
                f"give the five with the lowest {n.desc} (their {t.label.desc.removeprefix('the ')}).",
                f"SELECT {t.label.name} FROM {t.name} WHERE ({c.name} = {_lit(v1)} OR {c.name} = {_lit(v2)}) "
                f"AND {n.name} BETWEEN {lo} AND {hi} ORDER BY {n.name}, {t.label.name} LIMIT 5",
                {"filter": (t, c)})

    # -- join
    def join_simple(self):
        c, f, p = self.link(parent_roles=("cat",))
        pc = self.pick(p, "cat")
        v = self.value(p, pc)
        return (f"List the {c.label.desc.removeprefix('the ')} of the {c.noun} whose {f.desc.removeprefix('the ')} "
                f"has {pc.desc} {v}.",
                f"SELECT {c.name}.{c.label.name} FROM {c.name} JOIN {p.name} ON {c.name}.{f.name} = {p.name}.id "
                f"WHERE {p.name}.{pc.name} = {_lit(v)}", {"filter": (p, pc), "join": (c, f, p)})

    def join_moderate(self):
        chains = [(a, f1, b, f2, c) for a, f1, b in self.db.links() for b2, f2, c in self.db.links() if b2 == b]
        chains = [x for x in chains if self.db.table(x[4]).by_role("cat")]
        a, f1, b, f2, c = (self.db.table(x) if i % 2 == 0 else x for i, x in enumerate(self.rng.choice(chains)))
        cc = self.pick(c, "cat")
        v = self.value(c, cc)
        return (f"How many different {a.noun} are linked, through their {b.noun}, to {c.noun} with {cc.desc} {v}? "
                f"List the distinct {a.label.desc.removeprefix('the ')}.",
                f"SELECT DISTINCT {a.name}.{a.label.name} FROM {a.name} JOIN {b.name} ON {a.name}.{f1} = {b.name}.id "
                f"JOIN {c.name} ON {b.name}.{f2} = {c.name}.id WHERE {c.name}.{cc.name} = {_lit(v)}",
                {"filter": (c, cc), "join": (a, next(x for x in a.cols if x.name == f1), b)})

    def join_challenging(self):
        c, f, p = self.link(child_roles=("num",), parent_roles=("cat",))
        pc, cn = self.pick(p, "cat"), self.pick(c, "num")
        v, x = self.value(p, pc), self.d.quantile(c.name, cn.name, 0.5)
        return (f"For {p.noun} with {pc.desc} {v}, find their {c.noun} with a {cn.desc} above {x}; give the "
                f"{p.label.desc.removeprefix('the ')}, the {c.label.desc.removeprefix('the ')} and the {cn.desc}, "
                f"the three largest {cn.desc} first.",
                f"SELECT {p.name}.{p.label.name}, {c.name}.{c.label.name}, {c.name}.{cn.name} FROM {c.name} "
                f"JOIN {p.name} ON {c.name}.{f.name} = {p.name}.id WHERE {p.name}.{pc.name} = {_lit(v)} "
                f"AND {c.name}.{cn.name} > {x} ORDER BY {c.name}.{cn.name} DESC, {c.name}.id LIMIT 3",
                {"filter": (p, pc), "join": (c, f, p)})

    # -- aggregate
    def aggregate_simple(self):
        t = self.table_with("cat")
        c = self.pick(t, "cat")
        v = self.value(t, c)
        return (f"How many {t.noun} have {c.desc} {v}?",
                f"SELECT COUNT(*) FROM {t.name} WHERE {c.name} = {_lit(v)}", {"filter": (t, c)})

    def aggregate_moderate(self):
        t = self.table_with("cat", "num")
        c, n = self.pick(t, "cat"), self.pick(t, "num")
        fn, word = self.rng.choice((("AVG", "average"), ("MAX", "highest"), ("SUM", "total")))
        return (f"For each {c.desc}, what is the {word} {n.desc} of the {t.noun}?",
                f"SELECT {c.name}, {fn}({n.name}) FROM {t.name} GROUP BY {c.name}", {"filter": (t, c)})

    def aggregate_challenging(self):
        c, f, p = self.link()
        counts = [r[0] for r in self.d.conn.execute(
            f"SELECT COUNT(*) FROM {c.name} WHERE {f.name} IS NOT NULL GROUP BY {f.name} ORDER BY 1")]
        k = counts[len(counts) // 2] if counts else 1
        return (f"Which {p.noun} have more than {k} {c.noun}? Give the {p.label.desc.removeprefix('the ')} and "
                f"the number of {c.noun}.",
                f"SELECT {p.name}.{p.label.name}, COUNT(*) FROM {c.name} JOIN {p.name} ON {c.name}.{f.name} = "
                f"{p.name}.id GROUP BY {p.name}.id HAVING COUNT(*) > {k}",
                {"filter": (p, p.label), "join": (c, f, p)})

    # -- nested
    def nested_simple(self):
        t = self.table_with("num")
        n = self.pick(t, "num")
        return (f"Which {t.noun} have a {n.desc} above the average over all {t.noun}? Give their "
                f"{t.label.desc.removeprefix('the ')}.",
                f"SELECT {t.label.name} FROM {t.name} WHERE {n.name} > (SELECT AVG({n.name}) FROM {t.name})",
                {"filter": (t, n)})

    def nested_moderate(self):
        c, f, p = self.link(child_roles=("cat",))
        cc = self.pick(c, "cat")
        v = self.value(c, cc)
        return (f"Which {p.noun} have at least one of their {c.noun} with {cc.desc} {v}? Give their "
                f"{p.label.desc.removeprefix('the ')}.",
                f"SELECT {p.label.name} FROM {p.name} WHERE id IN (SELECT {f.name} FROM {c.name} WHERE "
                f"{cc.name} = {_lit(v)})", {"filter": (c, cc), "join": (c, f, p)})

    def nested_challenging(self):
        t = self.table_with("cat", "num")
        c, n = self.pick(t, "cat"), self.pick(t, "num")
        return (f"Which {t.noun} have a {n.desc} above the average {n.desc} of the {t.noun} with the same {c.desc}? "
                f"Give their {t.label.desc.removeprefix('the ')}.",
                f"SELECT a.{t.label.name} FROM {t.name} AS a WHERE a.{n.name} > (SELECT AVG(b.{n.name}) FROM "
                f"{t.name} AS b WHERE b.{c.name} = a.{c.name})", {"filter": (t, c)})

    # -- set operations
    def set_operation_simple(self):
        t = self.table_with("cat", "num")
        c, n = self.pick(t, "cat"), self.pick(t, "num")
        v, x = self.value(t, c), self.d.quantile(t.name, n.name, 0.85)
        return (f"List the {t.label.desc.removeprefix('the ')} of the {t.noun} that have {c.desc} {v}, together "
                f"with those whose {n.desc} is above {x} (each name once).",
                f"SELECT {t.label.name} FROM {t.name} WHERE {c.name} = {_lit(v)} UNION SELECT {t.label.name} "
                f"FROM {t.name} WHERE {n.name} > {x}", {"filter": (t, c)})

    def set_operation_moderate(self):
        t = self.table_with("cat", "num")
        c, n = self.pick(t, "cat"), self.pick(t, "num")
        lo, hi = self.d.quantile(t.name, n.name, 0.3), self.d.quantile(t.name, n.name, 0.7)
        return (f"Which values of {c.desc} occur both among {t.noun} with a {n.desc} below {lo} and among "
                f"{t.noun} with a {n.desc} above {hi}?",
                f"SELECT {c.name} FROM {t.name} WHERE {n.name} < {lo} INTERSECT SELECT {c.name} FROM {t.name} "
                f"WHERE {n.name} > {hi}", {"filter": (t, n)})

    def set_operation_challenging(self):
        c, f, p = self.link(child_roles=("cat",))
        cc = self.pick(c, "cat")
        v = self.value(c, cc)
        return (f"Which {p.noun} have no {c.noun} with {cc.desc} {v}? Give their "
                f"{p.label.desc.removeprefix('the ')}.",
                f"SELECT {p.label.name} FROM {p.name} EXCEPT SELECT {p.name}.{p.label.name} FROM {p.name} JOIN "
                f"{c.name} ON {c.name}.{f.name} = {p.name}.id WHERE {c.name}.{cc.name} = {_lit(v)}",
                {"filter": (c, cc), "join": (c, f, p)})


def _hints(gen: _Gen, sql: str, meta: dict) -> dict:
    """The misleading hints of a question: (text, the SQL a model that believes it writes)."""
    rng = gen.rng
    t, col = meta["filter"]
    others = [c for c in t.cols if c.name != col.name and c.role in ("cat", "num", "label", "date")]
    wrong = rng.choice(others) if others else t.label
    column = (f"Hint: the {col.desc} is stored in column {t.name}.{wrong.name}.",
              substitute_column(sql, col.name, wrong.name))
    if "join" in meta:
        c, f, p = meta["join"]
        fake = f"{c.name}.id = {p.name}.id"
        join = (f"Hint: join {c.name} to {p.name} on {fake}.", sql.replace(f"{c.name}.{f.name} = {p.name}.id", fake))
    else:
        c, f, _ = next(((gen.db.table(a), x, b) for a, x, b in gen.db.links() if b == t.name),
                       (None, None, None))
        if c is None:
            join = (f"Hint: {t.name} must be joined with itself on {t.name}.id = {t.name}.id + 1.", None)
        else:
            join = (f"Hint: this question needs {t.name} joined with {c.name} on {c.name}.id = {t.name}.id.", None)
    # a hint whose SQL is the gold SQL leads nowhere: the simulated model then errs in its own way
    return {k: (text, None if misled == sql else misled) for k, (text, misled) in
            {"misleading_column_hint": column, "misleading_join_hint": join}.items()}


_TEMPLATE = {(shape, diff): getattr(_Gen, f"{shape}_{diff}")
             for shape in ("filter", "join", "aggregate", "nested", "set_operation")
             for diff in ("simple", "moderate", "challenging")}


def question_seed(task_type: str, difficulty: str, instance: int) -> int:
    return int(hashlib.sha256(f"{VERSION}|{task_type}|{difficulty}|{instance}".encode()).hexdigest()[:12], 16)


def make_question(task_type: str, difficulty: str, instance: int, conns: dict[str, sqlite3.Connection],
                  values: dict | None = None) -> Item:
    """The question of (task type, difficulty, instance): its database is DATABASES[instance % 5].
    ``values``, kept by the caller, holds the distinct values read so far (they never change)."""
    db = DATABASES[instance % len(DATABASES)]
    rng = random.Random(question_seed(task_type, difficulty, instance))
    gen = _Gen(_Data(db, conns[db.db_id], None if values is None else values.setdefault(db.db_id, {})), rng)
    text, sql, meta = _TEMPLATE[task_type, difficulty](gen)
    return Item(db.db_id, _q(text), sql, task_type, difficulty,
                question_id=f"{task_type}-{difficulty}-{instance}", hints=_hints(gen, sql, meta))
