"""SQLAlchemy 2 (psycopg2 dialect, and a part through the psycopg 3 dialect)
and pandas against a Freshet server:

    python3 sqlalchemy_smoke.py HOST PORT [USER [DBNAME [SCHEMA]]]

Prints "ok <check>" for each check that passes and "FAIL <check>: ..." for
each that does not; a section that raises is reported and the next one
runs. Ends with "ALL OK" and exit status 0, or "FAILED n" and exit status 1.
Needs SQLAlchemy 2, pandas, psycopg2 and psycopg 3 (python3 -m pip install
"sqlalchemy>=2" pandas psycopg2-binary "psycopg[binary]"). With
SQLALCHEMY_ECHO=1 in the environment the engines log every statement they
send (`echo=True`), which is how to see the SQL behind a failing check.

Every expectation is what SQLAlchemy and pandas give against PostgreSQL 15.
To check that, run it against one in a scratch schema, which the script
creates (dropping any left from an earlier run), works in, and drops at the
end:

    python3 sqlalchemy_smoke.py 127.0.0.1 5432 postgres test sqlalchemy_scratch

The engines connect through `creator=` with the harness's libpq DSN, so that
the scratch schema's search_path applies; the dialect then takes the default
schema from `current_schema()`.

Covered: create_engine and the dialect's first-connect queries
(`select pg_catalog.version()`, `select current_schema()`,
`show standard_conforming_strings`), the isolation level, AUTOCOMMIT;
`MetaData` + `Table` and `metadata.create_all` (which checks existence
through pg_catalog queries first, also a second time as a no-op) and
`drop_all`; Core insert (one row, executemany), select with bound
parameters, update, delete and their rowcounts, `func.count`; the types
Integer, String, Numeric, Boolean, Date, DateTime(timezone=True), JSONB,
Text; an ORM declarative model: Session add/add_all/commit, `select()` with
`where`, legacy `query().filter()`, `session.get`, update through an
attribute, delete, `session.rollback()` undoing an add and a change,
`session.begin_nested()` (SAVEPOINT, RELEASE, ROLLBACK TO); a model with a
generated SERIAL key (INSERT ... RETURNING); reflection:
`inspect(engine).get_table_names()`, `get_view_names()`, `get_columns()`,
`get_pk_constraint()`, `get_foreign_keys()`, `get_schema_names()`,
`has_table()`, `Table(..., autoload_with=engine)` of a table and of a view;
pandas `DataFrame.to_sql(name, engine, index=False)` with
if_exists='replace' and 'append', `pd.read_sql(text, engine)` with params
and `pd.read_sql_table`, with their dtypes; `text()` queries with
parameters, executemany through text(); a view created and listed; the
psycopg 3 dialect (`postgresql+psycopg`): create_all, insert, select,
reflection and pandas.
"""

import datetime
import os
from decimal import Decimal

import pandas as pd
import psycopg
import psycopg2
import sqlalchemy as sa
from harness import check, fail, run
from sqlalchemy import (
    Boolean, Column, Date, DateTime, ForeignKey, Integer, MetaData, Numeric, String, Table, Text,
    delete, func, insert, inspect, select, text, update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

ECHO = os.environ.get("SQLALCHEMY_ECHO") == "1"
AWARE = datetime.datetime(2024, 5, 1, 12, 30, 15, 250000, tzinfo=datetime.timezone.utc)

metadata = MetaData()
items = Table(
    "sa_items", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("name", String(50), nullable=False),
    Column("price", Numeric(10, 2)),
    Column("qty", Integer),
    Column("active", Boolean),
    Column("added", Date),
    Column("seen", DateTime(timezone=True)),
    Column("meta", JSONB),
    Column("note", Text),
)


class Base(DeclarativeBase):
    pass


class Person(Base):
    __tablename__ = "sa_people"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(40))
    balance: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    active: Mapped[bool] = mapped_column(default=True)


class Ticket(Base):
    """A generated key: SERIAL, read back with INSERT ... RETURNING."""
    __tablename__ = "sa_tickets"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(40))


def engine_for(dsn, driver="psycopg2"):
    if driver == "psycopg2":
        return sa.create_engine("postgresql+psycopg2://", creator=lambda: psycopg2.connect(dsn), echo=ECHO)
    return sa.create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(dsn), echo=ECHO)


def describe(e):
    """An exception as a FAIL line shows it: the server's SQLSTATE and
    message and the statement SQLAlchemy sent."""
    if isinstance(e, sa.exc.DBAPIError) and e.orig is not None:
        code = getattr(e.orig, "pgcode", None) or getattr(e.orig, "sqlstate", None)
        message = str(e.orig).strip().splitlines()[0]
        statement = " ".join(str(e.statement).split())
        if len(statement) > 300:
            statement = statement[:300] + " ..."
        return f"raised {type(e.orig).__name__} (SQLSTATE {code}): {message} [SQL: {statement}]"
    return f"raised {type(e).__name__}: {e}"


def probe(name, fn, expected):
    """check(name, fn(), expected), where an exception out of fn fails the
    check instead of ending the section."""
    try:
        actual = fn()
    except Exception as e:
        fail(name, describe(e))
        return
    check(name, actual, expected)


def read(engine, fn):
    """fn(conn) on a connection of its own, rolled back after."""
    def go():
        with engine.connect() as conn:
            return fn(conn)
    return go


def write(engine, fn):
    """fn(conn) in a transaction of its own, committed after."""
    def go():
        with engine.begin() as conn:
            return fn(conn)
    return go


def reflect(engine, fn):
    """fn(inspector) with a new Inspector (reflection is cached per Inspector)."""
    return lambda: fn(inspect(engine))


def type_names(columns, dialect):
    return [(c["name"], c["type"].compile(dialect=dialect), c["nullable"]) for c in columns]


def rows(result):
    return [tuple(r) for r in result]


def people(engine):
    with engine.connect() as conn:
        return rows(conn.execute(text("SELECT id, name, balance FROM sa_people ORDER BY id")))


def engine_basics(dsn):
    engine = engine_for(dsn)
    with engine.connect() as conn:
        check("engine: select 1", conn.execute(text("SELECT 1")).scalar(), 1)
        info = engine.dialect.server_version_info
        check("engine: server_version_info", isinstance(info, tuple) and info[0] >= 10, True)
        check("engine: default schema", bool(engine.dialect.default_schema_name), True)
        check("engine: current_schema", conn.execute(text("SELECT current_schema()")).scalar(),
              engine.dialect.default_schema_name)
        check("engine: isolation level", conn.get_isolation_level(), "READ COMMITTED")
        check("engine: in a transaction", conn.in_transaction(), True)
        conn.rollback()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        check("engine: autocommit", conn.execute(text("SELECT 2")).scalar(), 2)
    engine.dispose()


def core_tables(dsn):
    engine = engine_for(dsn)
    metadata.create_all(engine)
    check("create_all: has_table", inspect(engine).has_table("sa_items"), True)
    metadata.create_all(engine)  # a second time: checkfirst finds it and does nothing
    check("create_all twice: still one table", inspect(engine).get_table_names().count("sa_items"), 1)
    engine.dispose()


def core_crud(dsn):
    engine = engine_for(dsn)
    with engine.begin() as conn:
        r = conn.execute(insert(items).values(
            id=1, name="ada", price=Decimal("1234.50"), qty=3, active=True,
            added=datetime.date(1815, 12, 10), seen=AWARE, meta={"langs": ["en", "fr"], "n": 2}, note=None,
        ))
        check("core insert: rowcount", r.rowcount, 1)
        check("core insert: inserted_primary_key", tuple(r.inserted_primary_key), (1,))
        r = conn.execute(insert(items), [
            {"id": i, "name": f"n{i}", "price": Decimal(i) / 4, "qty": i, "active": i % 2 == 0,
             "added": datetime.date(2024, 1, i), "seen": AWARE, "meta": [i], "note": f"note {i}"}
            for i in range(2, 8)
        ])
        check("core executemany: rowcount", r.rowcount, 6)
    c = items.c
    probe("core select: row", read(engine, lambda conn: tuple(conn.execute(select(items).where(c.id == 1)).one())), (
        1, "ada", Decimal("1234.50"), 3, True, datetime.date(1815, 12, 10), AWARE, {"langs": ["en", "fr"], "n": 2}, None,
    ))
    probe("core select: by attribute and mapping", read(engine, lambda conn: (
        lambda row: (row.name, row.price, row._mapping["qty"]))(conn.execute(select(items).where(c.id == 1)).one())),
        ("ada", Decimal("1234.50"), 3))
    probe("core select: where and order", read(engine, lambda conn: rows(conn.execute(
        select(c.id, c.name).where(c.price > Decimal("0.5"), c.active.is_(True)).order_by(c.id.desc())))),
        [(6, "n6"), (4, "n4"), (1, "ada")])
    probe("core select: int against numeric", read(engine, lambda conn: conn.execute(
        select(c.id).where(c.price == 1)).scalars().all()), [4])
    probe("core select: in_", read(engine, lambda conn: conn.execute(
        select(c.id).where(c.id.in_([2, 3, 99])).order_by(c.id)).scalars().all()), [2, 3])
    probe("core select: like", read(engine, lambda conn: conn.execute(
        select(func.count()).select_from(items).where(c.name.like("n%"))).scalar()), 6)
    probe("core select: jsonb element", read(engine, lambda conn: conn.execute(
        select(c.meta["n"]).where(c.id == 1)).scalar()), 2)
    probe("core select: jsonb path astext", read(engine, lambda conn: conn.execute(
        select(c.meta["langs"][0].astext).where(c.id == 1)).scalar()), "en")
    probe("core select: aggregate", read(engine, lambda conn: tuple(conn.execute(
        select(func.sum(c.qty), func.max(c.price))).one())), (30, Decimal("1234.50")))
    probe("core select: limit offset", read(engine, lambda conn: conn.execute(
        select(c.id).order_by(c.id).limit(2).offset(3)).scalars().all()), [4, 5])
    probe("core select: group by", read(engine, lambda conn: rows(conn.execute(
        select(c.active, func.count()).group_by(c.active).order_by(c.active)))), [(False, 3), (True, 4)])
    probe("core update: rowcount", write(engine, lambda conn: conn.execute(
        update(items).where(c.id >= 5).values(qty=c.qty + 10, note="bumped")).rowcount), 3)
    probe("core delete: rowcount", write(engine, lambda conn: conn.execute(delete(items).where(c.id == 7)).rowcount), 1)
    probe("core after update and delete", read(engine, lambda conn: rows(conn.execute(
        select(c.id, c.qty, c.note).where(c.id >= 4).order_by(c.id)))),
        [(4, 4, "note 4"), (5, 15, "bumped"), (6, 16, "bumped")])
    with engine.connect() as conn:
        conn.execute(delete(items).where(c.id >= 2))
        conn.rollback()
        check("core rollback", conn.execute(select(func.count()).select_from(items)).scalar(), 6)
    engine.dispose()


def text_queries(dsn):
    engine = engine_for(dsn)
    probe("text: params", read(engine, lambda conn: rows(conn.execute(
        text("SELECT id, name FROM sa_items WHERE price > :p AND name LIKE :pat ORDER BY id"),
        {"p": Decimal("0.5"), "pat": "n%"}))), [(3, "n3"), (4, "n4"), (5, "n5"), (6, "n6")])
    probe("text: Decimal * 2", read(engine, lambda conn: conn.execute(
        text("SELECT :a * 2"), {"a": Decimal("2.25")}).scalar()), Decimal("4.50"))
    probe("text: bindparams", read(engine, lambda conn: conn.execute(
        text("SELECT name FROM sa_items WHERE id = :id").bindparams(id=1)).scalar()), "ada")
    probe("text: column names", read(engine, lambda conn: list(conn.execute(
        text("SELECT id AS ident, name FROM sa_items WHERE id = 1")).keys())), ["ident", "name"])
    probe("text: executemany rowcount", read(engine, lambda conn: conn.execute(
        text("INSERT INTO sa_items (id, name) VALUES (:id, :name)"),
        [{"id": 100, "name": "t100"}, {"id": 101, "name": "t101"}]).rowcount), 2)
    probe("text: executemany rolled back", read(engine, lambda conn: conn.execute(
        text("SELECT count(*) FROM sa_items WHERE id >= 100")).scalar()), 0)
    probe("text: date param", read(engine, lambda conn: conn.execute(
        text("SELECT CAST(:d AS date) + 1"), {"d": datetime.date(2024, 2, 28)}).scalar()), datetime.date(2024, 2, 29))
    probe("text: null param", read(engine, lambda conn: conn.execute(text("SELECT :n IS NULL"), {"n": None}).scalar()), True)
    engine.dispose()


def orm(dsn):
    engine = engine_for(dsn)
    Base.metadata.create_all(engine, tables=[Person.__table__])
    with Session(engine) as session:
        session.add(Person(id=1, name="ann", balance=Decimal("10.00")))
        session.add_all([Person(id=2, name="bob", balance=Decimal("2.50")),
                         Person(id=3, name="cy", balance=Decimal("7.25"), active=False)])
        session.commit()
    check("orm: add and commit", people(engine),
          [(1, "ann", Decimal("10.00")), (2, "bob", Decimal("2.50")), (3, "cy", Decimal("7.25"))])
    with Session(engine) as session:
        found = session.scalars(select(Person).where(Person.balance > 5).order_by(Person.id)).all()
        check("orm: select where", [p.name for p in found], ["ann", "cy"])
        check("orm: legacy query filter", [p.id for p in session.query(Person).filter(Person.active.is_(True))
                                           .order_by(Person.id)], [1, 2])
        check("orm: filter_by first", session.query(Person).filter_by(name="cy").first().balance, Decimal("7.25"))
        check("orm: count", session.query(Person).count(), 3)
        bob = session.get(Person, 2)
        check("orm: get", (bob.name, bob.active), ("bob", True))
        bob.balance = Decimal("3.00")
        bob.name = "bobby"
        session.commit()
        check("orm: update through an attribute", people(engine)[1], (2, "bobby", Decimal("3.00")))
        session.delete(session.get(Person, 3))
        session.commit()
        check("orm: delete", [p[0] for p in people(engine)], [1, 2])

        session.add(Person(id=4, name="dee", balance=Decimal("1.00")))
        session.flush()
        check("orm: flushed row visible in the session", session.scalar(select(func.count()).select_from(Person)), 3)
        session.rollback()
        check("orm: rollback undid the add", session.get(Person, 4), None)
        ann = session.get(Person, 1)
        ann.balance = Decimal("999.99")
        session.flush()
        session.rollback()
        check("orm: rollback restored the attribute", ann.balance, Decimal("10.00"))
        check("orm: after rollback", [p[0] for p in people(engine)], [1, 2])

        with session.begin_nested():
            session.add(Person(id=5, name="eve", balance=Decimal("5.00")))
        nested = session.begin_nested()
        session.add(Person(id=6, name="fay", balance=Decimal("6.00")))
        session.flush()
        nested.rollback()
        try:
            with session.begin_nested():
                session.execute(insert(Person).values(id=1, name="dup", balance=Decimal("0")))
            fail("orm: duplicate in a savepoint", "no error")
        except sa.exc.IntegrityError as e:
            check("orm: duplicate in a savepoint", e.orig.pgcode, "23505")
        session.commit()
        check("orm: begin_nested released and rolled back", [p[0] for p in people(engine)], [1, 2, 5])
    engine.dispose()


def orm_generated_key(dsn):
    engine = engine_for(dsn)
    probe("serial: create_all", lambda: Base.metadata.create_all(engine, tables=[Ticket.__table__]), None)

    def add():
        with Session(engine) as session:
            t = Ticket(title="first")
            session.add(t)
            session.add_all([Ticket(title="second"), Ticket(title="third")])
            session.commit()
            return t.id, sorted(x.id for x in session.scalars(select(Ticket)))
    probe("serial: ORM generated ids", add, (1, [1, 2, 3]))
    probe("serial: core insert returning", write(engine, lambda conn: conn.execute(
        insert(Ticket.__table__).values(title="core").returning(Ticket.__table__.c.id)).scalar()), 4)
    engine.dispose()


def foreign_keys(dsn):
    engine = engine_for(dsn)
    md = MetaData()
    Table("sa_parent", md, Column("id", Integer, primary_key=True, autoincrement=False), Column("name", Text))
    Table("sa_child", md, Column("id", Integer, primary_key=True, autoincrement=False),
          Column("parent_id", Integer, ForeignKey("sa_parent.id")))
    probe("fk: create_all", lambda: md.create_all(engine), None)
    probe("fk: insert", write(engine, lambda conn: (
        conn.execute(text("INSERT INTO sa_parent VALUES (1, 'p')")).rowcount,
        conn.execute(text("INSERT INTO sa_child VALUES (1, 1)")).rowcount)), (1, 1))
    probe("fk: reflected", reflect(engine, lambda insp: [
        (f["constrained_columns"], f["referred_table"], f["referred_columns"]) for f in insp.get_foreign_keys("sa_child")]),
        [(["parent_id"], "sa_parent", ["id"])])

    def violate():
        try:
            write(engine, lambda conn: conn.execute(text("INSERT INTO sa_child VALUES (2, 99)")))()
        except sa.exc.IntegrityError as e:
            return e.orig.pgcode
        return "no error"
    probe("fk: violation", violate, "23503")
    probe("fk: drop_all", lambda: (md.drop_all(engine), inspect(engine).has_table("sa_parent"))[1], False)
    engine.dispose()


def views(dsn):
    engine = engine_for(dsn)
    with engine.begin() as conn:
        conn.execute(text("CREATE VIEW sa_cheap AS SELECT id, name, price FROM sa_items WHERE price < 10"))
    probe("view: rows", read(engine, lambda conn: rows(conn.execute(text("SELECT id, name FROM sa_cheap ORDER BY id LIMIT 2")))),
          [(2, "n2"), (3, "n3")])
    probe("view: get_view_names", reflect(engine, lambda insp: insp.get_view_names()), ["sa_cheap"])
    probe("view: not a table", reflect(engine, lambda insp: "sa_cheap" in insp.get_table_names()), False)
    probe("view: has_table", reflect(engine, lambda insp: insp.has_table("sa_cheap")), True)
    probe("view: get_columns", reflect(engine, lambda insp: type_names(insp.get_columns("sa_cheap"), engine.dialect)),
          [("id", "INTEGER", True), ("name", "VARCHAR(50)", True), ("price", "NUMERIC(10, 2)", True)])

    def autoload():
        v = Table("sa_cheap", MetaData(), autoload_with=engine)
        with engine.connect() as conn:
            return list(v.c.keys()), conn.execute(select(v.c.name).where(v.c.id == 4)).scalar()
    probe("view: autoload and select", autoload, (["id", "name", "price"], "n4"))
    engine.dispose()


ITEM_COLUMNS = [
    ("id", "INTEGER", False), ("name", "VARCHAR(50)", False), ("price", "NUMERIC(10, 2)", True),
    ("qty", "INTEGER", True), ("active", "BOOLEAN", True), ("added", "DATE", True),
    ("seen", "TIMESTAMP WITH TIME ZONE", True), ("meta", "JSONB", True), ("note", "TEXT", True),
]


def reflection(dsn):
    engine = engine_for(dsn)
    with engine.connect() as conn:
        schema = conn.dialect.default_schema_name
    probe("reflect: get_table_names", reflect(engine, lambda insp: sorted(insp.get_table_names())),
          ["sa_items", "sa_people", "sa_tickets"])
    probe("reflect: get_schema_names", reflect(engine, lambda insp: (
        lambda names: (schema in names, "pg_catalog" in names))(insp.get_schema_names())), (True, False))
    probe("reflect: has_table", reflect(engine, lambda insp: insp.has_table("sa_items")), True)
    probe("reflect: has_table missing", reflect(engine, lambda insp: insp.has_table("sa_nothing")), False)
    probe("reflect: has_table in schema", reflect(engine, lambda insp: insp.has_table("sa_items", schema=schema)), True)
    probe("reflect: get_columns", reflect(engine, lambda insp: type_names(insp.get_columns("sa_items"), engine.dialect)),
          ITEM_COLUMNS)
    probe("reflect: column defaults", reflect(engine, lambda insp: [c["default"] for c in insp.get_columns("sa_items")]),
          [None] * 9)
    probe("reflect: serial default", reflect(engine, lambda insp: (
        lambda col: (col["default"], col["autoincrement"]))(insp.get_columns("sa_tickets")[0])),
        ("nextval('sa_tickets_id_seq'::regclass)", True))
    probe("reflect: get_pk_constraint", reflect(engine, lambda insp: (
        lambda pk: (pk["constrained_columns"], pk["name"]))(insp.get_pk_constraint("sa_items"))), (["id"], "sa_items_pkey"))
    probe("reflect: no foreign keys", reflect(engine, lambda insp: insp.get_foreign_keys("sa_items")), [])
    probe("reflect: no indexes", reflect(engine, lambda insp: insp.get_indexes("sa_items")), [])

    def autoload():
        t = Table("sa_items", MetaData(), autoload_with=engine)
        with engine.connect() as conn:
            meta = conn.execute(select(t.c.meta).where(t.c.id == 1)).scalar()
        return (list(t.c.keys()), [c.name for c in t.primary_key], [type(c.type).__name__ for c in t.c], meta)
    probe("reflect: Table autoload_with", autoload, (
        ["id", "name", "price", "qty", "active", "added", "seen", "meta", "note"], ["id"],
        ["INTEGER", "VARCHAR", "NUMERIC", "INTEGER", "BOOLEAN", "DATE", "TIMESTAMP", "JSONB", "TEXT"],
        {"langs": ["en", "fr"], "n": 2},
    ))
    engine.dispose()


FRAME = pd.DataFrame({
    "id": [1, 2, 3],
    "name": ["ann", "bob", None],
    "score": [1.5, -2.25, float("nan")],
    "flag": [True, False, True],
    "at": pd.to_datetime(["2024-05-01 12:30:15", "1999-12-31 23:59:59", "2000-02-29 00:00:00"]),
})
FRAME_DTYPES = ["int64", "str", "float64", "bool", "datetime64[us]"]


def dtypes(df):
    return [str(t) for t in df.dtypes]


def pandas_frames(dsn):
    engine = engine_for(dsn)
    probe("to_sql replace: rows", lambda: FRAME.to_sql("sa_frame", engine, index=False, if_exists="replace"), 3)
    probe("to_sql replace again: rows", lambda: FRAME.to_sql("sa_frame", engine, index=False, if_exists="replace"), 3)
    probe("to_sql: column types", reflect(engine, lambda insp: type_names(insp.get_columns("sa_frame"), engine.dialect)), [
        ("id", "BIGINT", True), ("name", "TEXT", True), ("score", "DOUBLE PRECISION", True),
        ("flag", "BOOLEAN", True), ("at", "TIMESTAMP WITHOUT TIME ZONE", True),
    ])
    more = FRAME.assign(id=FRAME["id"] + 10)
    probe("to_sql append: rows", lambda: more.to_sql("sa_frame", engine, index=False, if_exists="append"), 3)

    def refuse():
        try:
            FRAME.to_sql("sa_frame", engine, index=False)
        except ValueError as e:
            return "already exists" in str(e)
        return "no error"
    probe("to_sql fail: exists", refuse, True)

    def frame():
        df = pd.read_sql("SELECT id, name, score, flag, at FROM sa_frame ORDER BY id", engine)
        return (df.shape, dtypes(df), df["id"].tolist(), df["name"].tolist()[:2], bool(pd.isna(df["name"][2])),
                bool(pd.isna(df["score"][2])), df["at"][1])
    probe("read_sql: frame", frame, ((6, 5), FRAME_DTYPES, [1, 2, 3, 11, 12, 13], ["ann", "bob"], True, True,
                                     pd.Timestamp("1999-12-31 23:59:59")))
    probe("read_sql: text params", read(engine, lambda conn: pd.read_sql(
        text("SELECT id, score FROM sa_frame WHERE id > :low ORDER BY id"), conn, params={"low": 10})["id"].tolist()),
        [11, 12, 13])
    probe("read_sql: driver params", lambda: pd.read_sql(
        "SELECT id, score FROM sa_frame WHERE id < %(high)s ORDER BY id", engine, params={"high": 3}).values.tolist(),
        [[1.0, 1.5], [2.0, -2.25]])

    def items_frame():
        df = pd.read_sql("SELECT price, qty, seen, meta FROM sa_items WHERE id IN (1, 2) ORDER BY id", engine)
        return dtypes(df), df["price"].tolist(), df["seen"][0], df["meta"].tolist()
    probe("read_sql: numeric, int, timestamptz, jsonb", items_frame, (
        ["float64", "int64", "datetime64[us, UTC]", "object"], [1234.5, 0.5], pd.Timestamp(AWARE),
        [{"langs": ["en", "fr"], "n": 2}, [2]]))

    def decimals():
        df = pd.read_sql("SELECT price FROM sa_items WHERE id IN (1, 2) ORDER BY id", engine, coerce_float=False)
        return dtypes(df), df["price"].tolist()
    probe("read_sql coerce_float=False: Decimal", decimals, (["object"], [Decimal("1234.50"), Decimal("0.50")]))

    def table():
        df = pd.read_sql_table("sa_frame", engine)
        return list(df.columns), dtypes(df), sorted(df["id"].tolist())
    probe("read_sql_table", table, (["id", "name", "score", "flag", "at"], FRAME_DTYPES, [1, 2, 3, 11, 12, 13]))

    def table_columns():
        df = pd.read_sql_table("sa_items", engine, columns=["id", "price", "added"])
        return list(df.columns), dtypes(df)
    probe("read_sql_table: columns=", table_columns, (["id", "price", "added"], ["int64", "float64", "datetime64[s]"]))
    engine.dispose()


def psycopg3_dialect(dsn):
    engine = engine_for(dsn, "psycopg")
    md = MetaData()
    t = Table("sa_p3", md, Column("id", Integer, primary_key=True, autoincrement=False),
              Column("name", String(20)), Column("amount", Numeric(10, 2)), Column("meta", JSONB))
    md.create_all(engine)
    # insertmanyvalues through psycopg 3 reports no rowcount.
    probe("psycopg3: executemany rowcount", write(engine, lambda conn: conn.execute(insert(t), [
        {"id": i, "name": f"p{i}", "amount": Decimal(i) / 2, "meta": {"i": i}} for i in range(1, 5)]).rowcount), -1)
    probe("psycopg3: select", read(engine, lambda conn: rows(conn.execute(
        select(t.c.id, t.c.amount).where(t.c.amount > 1).order_by(t.c.id)))), [(3, Decimal("1.50")), (4, Decimal("2.00"))])
    probe("psycopg3: jsonb", read(engine, lambda conn: conn.execute(select(t.c.meta).where(t.c.id == 2)).scalar()), {"i": 2})
    probe("psycopg3: text Decimal * 2", read(engine, lambda conn: conn.execute(
        text("SELECT :a * 2"), {"a": Decimal("2.25")}).scalar()), Decimal("4.50"))
    probe("psycopg3: update rowcount", read(engine, lambda conn: conn.execute(
        update(t).where(t.c.id > 2).values(name="x")).rowcount), 2)
    probe("psycopg3: has_table", reflect(engine, lambda insp: insp.has_table("sa_p3")), True)
    probe("psycopg3: get_columns", reflect(engine, lambda insp: type_names(insp.get_columns("sa_p3"), engine.dialect)),
          [("id", "INTEGER", False), ("name", "VARCHAR(20)", True), ("amount", "NUMERIC(10, 2)", True), ("meta", "JSONB", True)])
    probe("psycopg3: get_pk_constraint", reflect(engine, lambda insp: insp.get_pk_constraint("sa_p3")["constrained_columns"]),
          ["id"])
    probe("psycopg3: read_sql", lambda: (lambda df: (df["id"].tolist(), dtypes(df)))(
        pd.read_sql("SELECT id, name FROM sa_p3 ORDER BY id", engine)), ([1, 2, 3, 4], ["int64", "str"]))
    probe("psycopg3: to_sql", lambda: pd.DataFrame({"a": [1, 2]}).to_sql(
        "sa_p3_frame", engine, index=False, if_exists="replace"), -1)
    probe("psycopg3: read_sql_table", lambda: pd.read_sql_table("sa_p3_frame", engine)["a"].tolist(), [1, 2])

    def orm_p3():
        with Session(engine) as session:
            session.add(Person(id=50, name="p3", balance=Decimal("1.00")))
            with session.begin_nested():
                session.add(Person(id=51, name="p3b", balance=Decimal("2.00")))
            session.commit()
            got = [p.id for p in session.scalars(select(Person).where(Person.id >= 50).order_by(Person.id))]
            session.execute(delete(Person).where(Person.id >= 50))
            session.commit()
            return got
    probe("psycopg3: orm with a savepoint", orm_p3, [50, 51])
    engine.dispose()


TABLES = ["sa_p3_frame", "sa_p3", "sa_frame", "sa_child", "sa_parent", "sa_tickets", "sa_people", "sa_items"]


def teardown(dsn):
    engine = engine_for(dsn)
    with engine.begin() as conn:
        conn.execute(text("DROP VIEW IF EXISTS sa_cheap"))
        for name in TABLES:
            conn.execute(text(f"DROP TABLE IF EXISTS {name}"))
    check("all dropped", inspect(engine).get_table_names(), [])
    engine.dispose()


if __name__ == "__main__":
    run([engine_basics, core_tables, core_crud, text_queries, orm, orm_generated_key, foreign_keys, views,
         reflection, pandas_frames, psycopg3_dialect, teardown])
