"""psycopg 3 against a Freshet server:

    python3 psycopg_smoke.py HOST PORT [USER [DBNAME]]

Prints "ok <check>" for each check that passes and "FAIL <check>: ..." for
each that does not; a section that raises is reported and the next one
runs. Ends with "ALL OK" and exit status 0, or "FAILED n" and exit status 1.
tests/psycopg.rs runs this against an in-process server. Every expectation
is what psycopg gives against PostgreSQL 15 (run it against one with
`python3 psycopg_smoke.py 127.0.0.1 5432 postgres test`), except in
rollback_then_materialized_view after CREATE MATERIALIZED VIEW: Freshet's
views follow later writes (after FLUSH), PostgreSQL's need a REFRESH.
"""

import datetime
import sys
from decimal import Decimal

import psycopg
from harness import check, fail, run
from psycopg import errors
from psycopg.pq import TransactionStatus
from psycopg.types.json import Json, Jsonb

def expect_error(name, conn, sql, cls, params=None):
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
    except cls as e:
        print(f"ok {name} ({type(e).__name__}, {e.sqlstate})", flush=True)
    except psycopg.Error as e:
        fail(name, f"expected {cls.__name__}, got {type(e).__name__} (sqlstate {e.sqlstate}): {e}")
    else:
        fail(name, f"expected {cls.__name__}, the statement succeeded")
    if not conn.autocommit and conn.info.transaction_status == TransactionStatus.INERROR:
        conn.rollback()


AWARE = datetime.datetime(2024, 5, 1, 12, 30, 15, 250000, tzinfo=datetime.timezone.utc)
ROWS = [
    (
        1, "ada", Decimal("1234.50"), datetime.date(1815, 12, 10), AWARE,
        datetime.datetime(2024, 5, 1, 12, 30, 15),
        Jsonb({"langs": ["en", "fr"], "n": 2}), Json([1, 2, 3]),
        b"\x00\x01\xfe\xff", 9.75, True, 7,
    ),
    (
        2, "bob", Decimal("-0.01"), datetime.date(2000, 2, 29),
        datetime.datetime(1999, 12, 31, 23, 59, 59, tzinfo=datetime.timezone.utc),
        datetime.datetime(1999, 12, 31, 23, 59, 59),
        Jsonb({}), Json({"x": None}), b"", -1.5, False, -7,
    ),
    (3, "cy", None, None, None, None, None, None, None, None, None, None),
]


def create_and_insert(dsn):
    with psycopg.connect(dsn, autocommit=True) as conn:
        check("server_version reported", bool(conn.info.parameter_status("server_version")), True)
        conn.execute(
            "CREATE TABLE people (id bigint PRIMARY KEY, name text NOT NULL, "
            "balance numeric(12,2), born date, seen timestamptz, local timestamp, "
            "profile jsonb, meta json, avatar bytea, score double precision, "
            "active boolean, small smallint)"
        )
        with conn.cursor() as cur:
            # json and jsonb are set by json_parameters, so that a problem
            # there does not hide the other types.
            cur.executemany(
                "INSERT INTO people (id, name, balance, born, seen, local, "
                "avatar, score, active, small) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [row[:6] + row[8:] for row in ROWS],
            )
        check("count after executemany", conn.execute("SELECT count(*) FROM people").fetchone()[0], 3)


def json_parameters(dsn):
    with psycopg.connect(dsn, autocommit=True) as conn:
        with conn.cursor() as cur:
            cur.executemany(
                "UPDATE people SET profile = %s, meta = %s WHERE id = %s",
                [(row[6], row[7], row[0]) for row in ROWS],
            )
        check(
            "json values stored",
            conn.execute("SELECT count(*) FROM people WHERE profile IS NOT NULL AND meta IS NOT NULL").fetchone()[0],
            2,
        )


def json_literals(dsn):
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE docs (id int PRIMARY KEY, j json, jb jsonb)")
        conn.execute(
            """INSERT INTO docs VALUES (1, '{"a": [1, 2], "b": null}', '{"c": "d"}'), (2, '[]', '7')"""
        )
        rows = conn.execute("SELECT j, jb FROM docs ORDER BY id").fetchall()
        check("json literals read back", rows, [({"a": [1, 2], "b": None}, {"c": "d"}), ([], 7)])


def read_types(dsn):
    with psycopg.connect(dsn, autocommit=True) as conn:
        got = conn.execute(
            "SELECT id, name, balance, born, seen, local, profile, meta, avatar, score, "
            "active, small FROM people ORDER BY id"
        ).fetchall()
        check("row count", len(got), 3)
        first = got[0]
        check("int", (first[0], type(first[0])), (1, int))
        check("str", first[1], "ada")
        check("Decimal", (first[2], type(first[2])), (Decimal("1234.50"), Decimal))
        check("date", first[3], datetime.date(1815, 12, 10))
        check("timestamptz", first[4], AWARE)
        check("timestamptz is aware", first[4].tzinfo is not None, True)
        check("timestamp", first[5], datetime.datetime(2024, 5, 1, 12, 30, 15))
        check("jsonb as dict", first[6], {"langs": ["en", "fr"], "n": 2})
        check("json as list", first[7], [1, 2, 3])
        check("bytea as bytes", (first[8], type(first[8])), (b"\x00\x01\xfe\xff", bytes))
        check("float", first[9], 9.75)
        check("bool", first[10], True)
        check("smallint", first[11], 7)
        second = got[1]
        check("negative Decimal", second[2], Decimal("-0.01"))
        check("leap day", second[3], datetime.date(2000, 2, 29))
        check("empty jsonb", second[6], {})
        check("json null member", second[7], {"x": None})
        check("empty bytea", second[8], b"")
        check("NULLs", got[2][2:], (None,) * 10)


def binary_results(dsn):
    with psycopg.connect(dsn, autocommit=True) as conn:
        with conn.cursor(binary=True) as cur:
            cur.execute(
                "SELECT id, name, born, avatar, score, balance, seen FROM people WHERE id = %s", (1,)
            )
            check(
                "binary row",
                cur.fetchone(),
                (1, "ada", datetime.date(1815, 12, 10), b"\x00\x01\xfe\xff", 9.75, Decimal("1234.50"), AWARE),
            )


def parameters(dsn):
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT name FROM people WHERE balance > %s AND born < %s ORDER BY id",
            (Decimal("0"), datetime.date(1900, 1, 1)),
        ).fetchall()
        check("Decimal and date parameters", rows, [("ada",)])
        rows = conn.execute("SELECT name FROM people WHERE seen = %s", (AWARE,)).fetchall()
        check("timestamptz parameter", rows, [("ada",)])
        row = conn.execute("SELECT %s::text, %s::int, %s::bool", ("x", 5, True)).fetchone()
        check("parameter casts", row, ("x", 5, True))


def array_parameter(dsn):
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT name FROM people WHERE id = ANY(%s) ORDER BY id", ([1, 3],)).fetchall()
        check("list parameter with = ANY", rows, [("ada",), ("cy",)])


def update_delete(dsn):
    with psycopg.connect(dsn, autocommit=True) as conn:
        with conn.cursor() as cur:
            cur.execute("UPDATE people SET balance = balance + %s WHERE id = %s", (Decimal("0.50"), 1))
            check("update rowcount", cur.rowcount, 1)
            cur.execute("DELETE FROM people WHERE name = %s", ("cy",))
            check("delete rowcount", cur.rowcount, 1)
            cur.execute("SELECT id, balance FROM people ORDER BY id")
            check("after update/delete", cur.fetchall(), [(1, Decimal("1235.00")), (2, Decimal("-0.01"))])


def server_errors(dsn):
    with psycopg.connect(dsn, autocommit=True) as conn:
        expect_error("duplicate key", conn, "INSERT INTO people (id, name) VALUES (1, 'again')", errors.UniqueViolation)
        expect_error("undefined table", conn, "SELECT * FROM no_such_table", errors.UndefinedTable)
        expect_error("division by zero", conn, "SELECT 1 / 0", errors.DivisionByZero)
        expect_error("undefined column", conn, "SELECT no_such_column FROM people", errors.UndefinedColumn)
        expect_error("not null", conn, "INSERT INTO people (id) VALUES (10)", errors.NotNullViolation)
        expect_error("syntax", conn, "SELEC 1", errors.SyntaxError)
        expect_error(
            "numeric range", conn, "INSERT INTO people (id, name, small) VALUES (%s, %s, %s)",
            errors.NumericValueOutOfRange, (11, "big", 100000),
        )
        check("alive after errors", conn.execute("SELECT count(*) FROM people").fetchone()[0], 2)


def transactions(dsn):
    # Not autocommit: psycopg sends BEGIN before the first statement and
    # COMMIT on conn.commit().
    with psycopg.connect(dsn) as conn:
        check("not autocommit", conn.autocommit, False)
        with conn.cursor() as cur:
            cur.execute("INSERT INTO people (id, name) VALUES (%s, %s)", (20, "tx-one"))
            check("in transaction", conn.info.transaction_status, TransactionStatus.INTRANS)
            cur.execute("INSERT INTO people (id, name) VALUES (%s, %s)", (21, "tx-two"))
        conn.commit()
        check("idle after commit", conn.info.transaction_status, TransactionStatus.IDLE)
        with conn.transaction():
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO people (id, name) VALUES (%s, %s)",
                    [(30 + i, f"bulk-{i}") for i in range(10)],
                )
        count = conn.execute("SELECT count(*) FROM people WHERE id >= 20").fetchone()[0]
        check("committed rows", count, 12)
        conn.commit()
        # An error inside a transaction fails it; after the rollback (where
        # psycopg also drops its prepared statements) the connection is
        # usable again.
        expect_error(
            "error in transaction", conn, "INSERT INTO people (id, name) VALUES (20, 'dup')",
            errors.UniqueViolation,
        )
        check("idle after rollback", conn.info.transaction_status, TransactionStatus.IDLE)
        count = conn.execute("SELECT count(*) FROM people WHERE id >= 20").fetchone()[0]
        check("usable after rollback", count, 12)
        conn.commit()
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT name FROM people WHERE id IN (20, 21, 39) ORDER BY id").fetchall()
        check("visible to a new session", rows, [("tx-one",), ("tx-two",), ("bulk-9",)])


class Abandon(Exception):
    """Raised inside a transaction block to leave it by an exception."""


def rollback_then_materialized_view(dsn):
    with psycopg.connect(dsn, autocommit=True) as admin, psycopg.connect(dsn) as conn:
        admin.execute("CREATE TABLE ledger (id int PRIMARY KEY, owner text NOT NULL, amount numeric(10,2))")
        with admin.cursor() as cur:
            cur.executemany(
                "INSERT INTO ledger VALUES (%s, %s, %s)",
                [(1, "ann", Decimal("10.00")), (2, "ann", Decimal("2.50")), (3, "bob", Decimal("7.25"))],
            )
        table = "SELECT id, owner, amount FROM ledger ORDER BY id"
        before = admin.execute(table).fetchall()
        check("ledger rows", len(before), 3)

        # An exception out of conn.transaction() rolls the block back.
        try:
            with conn.transaction():
                conn.execute("INSERT INTO ledger VALUES (%s, %s, %s)", (4, "cy", Decimal("100.00")))
                conn.execute("UPDATE ledger SET amount = 0 WHERE owner = %s", ("ann",))
                conn.execute("DELETE FROM ledger WHERE id = %s", (3,))
                inside = conn.execute(table).fetchall()
                check("transaction reads its own writes", inside,
                      [(1, "ann", Decimal("0.00")), (2, "ann", Decimal("0.00")), (4, "cy", Decimal("100.00"))])
                check("others do not see the open transaction", admin.execute(table).fetchall(), before)
                raise Abandon()
        except Abandon:
            pass
        check("idle after the raising block", conn.info.transaction_status, TransactionStatus.IDLE)
        check("exception rolled back", admin.execute(table).fetchall(), before)
        # psycopg.Rollback leaves the block quietly, rolled back.
        with conn.transaction():
            conn.execute("INSERT INTO ledger VALUES (%s, %s, %s)", (5, "dee", Decimal("1.00")))
            raise psycopg.Rollback()
        check("psycopg.Rollback rolled back", admin.execute(table).fetchall(), before)
        # Statements outside conn.transaction() open a transaction that
        # conn.rollback() ends.
        conn.execute("INSERT INTO ledger VALUES (%s, %s, %s)", (6, "eve", Decimal("6.00")))
        conn.execute("DELETE FROM ledger")
        check("in a transaction before rollback", conn.info.transaction_status, TransactionStatus.INTRANS)
        conn.rollback()
        check("conn.rollback() rolled back", admin.execute(table).fetchall(), before)
        check("same rows in the rolled-back session", conn.execute(table).fetchall(), before)
        conn.commit()

        # A materialized view created and read through psycopg.
        admin.execute(
            "CREATE MATERIALIZED VIEW ledger_totals AS "
            "SELECT owner, count(*) AS n, sum(amount) AS total FROM ledger GROUP BY owner"
        )
        query = "SELECT owner, count(*), sum(amount) FROM ledger GROUP BY owner ORDER BY owner"
        view = "SELECT owner, n, total FROM ledger_totals ORDER BY owner"
        with admin.cursor() as cur:
            cur.execute("SELECT * FROM ledger_totals ORDER BY owner")
            check("view column names", [c.name for c in cur.description], ["owner", "n", "total"])
            check("view after create", cur.fetchall(), [("ann", 2, Decimal("12.50")), ("bob", 1, Decimal("7.25"))])
        with conn.transaction():
            conn.execute("INSERT INTO ledger VALUES (%s, %s, %s)", (7, "bob", Decimal("0.75")))
            conn.execute("UPDATE ledger SET owner = %s WHERE id = %s", ("cy", 2))
        try:
            with conn.transaction():
                conn.execute("INSERT INTO ledger VALUES (%s, %s, %s)", (8, "ann", Decimal("1000.00")))
                raise Abandon()
        except Abandon:
            pass
        conn.commit()
        admin.execute("FLUSH")
        expected = [("ann", 1, Decimal("10.00")), ("bob", 2, Decimal("8.00")), ("cy", 1, Decimal("2.50"))]
        check("plain query after commit and rollback", admin.execute(query).fetchall(), expected)
        check("view matches the query after FLUSH", admin.execute(view).fetchall(), expected)
        check(
            "view read with a parameter",
            conn.execute("SELECT n, total FROM ledger_totals WHERE owner = %s", ("bob",)).fetchall(),
            [(2, Decimal("8.00"))],
        )
        conn.commit()
        with admin.cursor(binary=True) as cur:
            cur.execute(view)
            check("view in binary format", cur.fetchall(), expected)


if __name__ == "__main__":
    run([
        create_and_insert, json_parameters, json_literals, read_types, binary_results, parameters, array_parameter,
        update_delete, server_errors, transactions, rollback_then_materialized_view,
    ])
