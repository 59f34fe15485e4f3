"""The built-in text2sql databases: seeded SQLite databases of five domains (the questions: :mod:`.builtin`).

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
