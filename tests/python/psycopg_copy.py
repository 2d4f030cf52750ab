"""psycopg 3's COPY support against a Freshet server:

    python3 psycopg_copy.py HOST PORT [USER [DBNAME [SCHEMA]]]

Prints "ok <check>" for each check that passes and "FAIL <check>: ..." for
each that does not; a section that raises is reported and the next one
runs. Ends with "ALL OK" and exit status 0, or "FAILED n" and exit status 1.
tests/psycopg_copy.rs runs this against an in-process server.

Every expectation is what psycopg gives against PostgreSQL 15. To check
that, run it against one in a scratch schema, which the script creates
(dropping any left from an earlier run), works in, and drops at the end:

    python3 psycopg_copy.py 127.0.0.1 5432 postgres test copy_scratch

Covered: `cursor.copy()` with `write_row()` (ints, Decimal, text with tabs,
newlines and backslashes, None, dates, timestamps; a column left out takes
its DEFAULT), many rows in many CopyData messages, `COPY ... TO STDOUT` read
back with `set_types()` + `rows()` and `read_row()`, raw `write()` of CSV
split mid-field, raw bytes out, a parameter merged into a COPY query, a bad
row that rejects the whole COPY (SQLSTATE and CONTEXT), and COPY inside a
transaction that is rolled back or committed.
"""

import datetime
import sys
from decimal import Decimal

import psycopg
from harness import check, fail, run
from psycopg import errors
from psycopg.pq import TransactionStatus

def count(conn, table):
    return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


ROWS = [
    (1, Decimal("12.50"), "tab\there", datetime.date(2024, 2, 29), datetime.datetime(2024, 5, 1, 12, 30, 15)),
    (2, Decimal("-0.01"), "line one\nline two \\ back", datetime.date(1815, 12, 10), None),
    (3, None, None, None, datetime.datetime(1999, 12, 31, 23, 59, 59, 500000)),
    (4, Decimal("1234567.89"), "", datetime.date(2000, 1, 1), datetime.datetime(2000, 1, 1)),
    (5, Decimal("0"), "\\N is not null here", datetime.date(1970, 1, 1), None),
]
TYPES = ["int4", "numeric", "text", "date", "timestamp", "int4"]


def write_rows(dsn):
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE items (id int PRIMARY KEY, price numeric(10,2), note text, "
            "added date, seen timestamp, qty int DEFAULT 1)"
        )
        with conn.cursor() as cur:
            with cur.copy("COPY items (id, price, note, added, seen) FROM STDIN") as copy:
                for row in ROWS:
                    copy.write_row(row)
            check("write_row rowcount", cur.rowcount, len(ROWS))
        check("rows after write_row", count(conn, "items"), len(ROWS))
        got = conn.execute("SELECT id, price, note, added, seen, qty FROM items ORDER BY id").fetchall()
        check("rows read by SELECT", got, [row + (1,) for row in ROWS])
        check(
            "NULL and empty string apart",
            conn.execute("SELECT id, note IS NULL FROM items WHERE id IN (3, 4) ORDER BY id").fetchall(),
            [(3, True), (4, False)],
        )


def read_rows(dsn):
    with psycopg.connect(dsn, autocommit=True) as conn:
        expected = [row + (1,) for row in ROWS]
        with conn.cursor() as cur:
            with cur.copy("COPY (SELECT id, price, note, added, seen, qty FROM items ORDER BY id) TO STDOUT") as copy:
                copy.set_types(TYPES)
                got = list(copy.rows())
            check("rows() with set_types", got, expected)
            check("COPY TO rowcount", cur.rowcount, len(ROWS))
        with conn.cursor() as cur:
            got = []
            with cur.copy("COPY items (id, price, note, added, seen, qty) TO STDOUT") as copy:
                copy.set_types(TYPES)
                while (row := copy.read_row()) is not None:
                    got.append(row)
            # A table's rows come in no promised order.
            check("read_row() of the table", sorted(got), expected)
        with conn.cursor() as cur:
            with cur.copy("COPY (SELECT id, note FROM items ORDER BY id) TO STDOUT") as copy:
                got = list(copy.rows())
            # Without set_types every field is text.
            check(
                "rows() as text",
                got,
                [
                    ("1", "tab\there"),
                    ("2", "line one\nline two \\ back"),
                    ("3", None),
                    ("4", ""),
                    ("5", "\\N is not null here"),
                ],
            )
        with conn.cursor() as cur:
            data = b""
            with cur.copy("COPY (SELECT id, price, note, added FROM items ORDER BY id) TO STDOUT") as copy:
                for chunk in copy:
                    data += bytes(chunk)
            check(
                "raw text bytes",
                data,
                b"1\t12.50\ttab\\there\t2024-02-29\n"
                b"2\t-0.01\tline one\\nline two \\\\ back\t1815-12-10\n"
                b"3\t\\N\t\\N\t\\N\n"
                b"4\t1234567.89\t\t2000-01-01\n"
                b"5\t0.00\t\\\\N is not null here\t1970-01-01\n",
            )
        with conn.cursor() as cur:
            data = b""
            with cur.copy(
                "COPY (SELECT id, note, seen FROM items WHERE id > %s ORDER BY id) TO STDOUT WITH (FORMAT csv, HEADER)",
                (2,),
            ) as copy:
                for chunk in copy:
                    data += bytes(chunk)
            check(
                "raw csv bytes, a parameter merged",
                data,
                b"id,note,seen\n3,,1999-12-31 23:59:59.5\n4,\"\",2000-01-01 00:00:00\n5,\\N is not null here,\n",
            )


def many_rows(dsn):
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE bulk (id bigint PRIMARY KEY, label text, amount numeric(12,2))")
        n = 20000
        with conn.cursor() as cur:
            with cur.copy("COPY bulk FROM STDIN") as copy:
                for i in range(n):
                    copy.write_row((i, f"label\t{i}", Decimal(i) / 4))
            check("bulk rowcount", cur.rowcount, n)
        check(
            "bulk totals",
            conn.execute("SELECT count(*), sum(id), sum(amount), max(label) FROM bulk").fetchone(),
            (n, n * (n - 1) // 2, Decimal(n * (n - 1) // 2) / 4, "label\t9999"),
        )
        with conn.cursor() as cur:
            with cur.copy("COPY bulk TO STDOUT") as copy:
                copy.set_types(["int8", "text", "numeric"])
                got = sorted(copy.rows())
        check("bulk read back", got, [(i, f"label\t{i}", Decimal(i) / 4) for i in range(n)])


def raw_csv(dsn):
    with psycopg.connect(dsn, autocommit=True) as conn:
        with conn.cursor() as cur:
            with cur.copy("COPY items (id, note, price, added) FROM STDIN WITH (FORMAT csv)") as copy:
                # Pieces that split a record and a quoted field across writes.
                copy.write('10,"a, ""quoted"" note",1.5,2024-03-01\n11,,,\n12,"spl')
                copy.write('it across\nwrites",2,')
                copy.write(b"2024-03-02\n13,\"\",0.10,2024-03-03\n")
            check("csv rowcount", cur.rowcount, 4)
        got = conn.execute(
            "SELECT id, note, price, added, qty FROM items WHERE id >= 10 ORDER BY id"
        ).fetchall()
        check(
            "csv rows",
            got,
            [
                (10, 'a, "quoted" note', Decimal("1.50"), datetime.date(2024, 3, 1), 1),
                (11, None, None, None, 1),
                (12, "split across\nwrites", Decimal("2.00"), datetime.date(2024, 3, 2), 1),
                (13, "", Decimal("0.10"), datetime.date(2024, 3, 3), 1),
            ],
        )
        with conn.cursor() as cur:
            with cur.copy("COPY items (id, note, price) FROM STDIN WITH (FORMAT csv, HEADER, DELIMITER ';')") as copy:
                copy.write("id;note;price\n14;semi, colon;3\n")
            check("csv with header and delimiter", cur.rowcount, 1)
        check(
            "row 14",
            conn.execute("SELECT note, price FROM items WHERE id = 14").fetchone(),
            ("semi, colon", Decimal("3.00")),
        )


def bad_rows(dsn):
    with psycopg.connect(dsn, autocommit=True) as conn:
        before = count(conn, "items")
        try:
            with conn.cursor() as cur:
                with cur.copy("COPY items (id, note) FROM STDIN") as copy:
                    copy.write_row((20, "fine"))
                    copy.write_row((21, "fine too"))
                    copy.write_row(("twenty-two", "bad id"))
                    copy.write_row((23, "never"))
        except errors.InvalidTextRepresentation as e:
            check("bad row: sqlstate", e.sqlstate, "22P02")
            check("bad row: message", e.diag.message_primary, 'invalid input syntax for type integer: "twenty-two"')
            check("bad row: context", e.diag.context, 'COPY items, line 3, column id: "twenty-two"')
        except psycopg.Error as e:
            fail("bad row", f"expected InvalidTextRepresentation, got {type(e).__name__} ({e.sqlstate}): {e}")
        else:
            fail("bad row", "the COPY succeeded")
        check("bad row: nothing landed", count(conn, "items"), before)

        try:
            with conn.cursor() as cur:
                with cur.copy("COPY items (id, note) FROM STDIN WITH (FORMAT csv)") as copy:
                    copy.write("30,new\n1,duplicate\n")
        except errors.UniqueViolation as e:
            check("duplicate key: sqlstate", e.sqlstate, "23505")
            check("duplicate key: detail", e.diag.message_detail, "Key (id)=(1) already exists.")
        except psycopg.Error as e:
            fail("duplicate key", f"expected UniqueViolation, got {type(e).__name__} ({e.sqlstate}): {e}")
        else:
            fail("duplicate key", "the COPY succeeded")
        check("duplicate key: nothing landed", count(conn, "items"), before)

        try:
            with conn.cursor() as cur:
                with cur.copy("COPY items (id, note) FROM STDIN") as copy:
                    copy.write("40\tone\ttoo many\n")
        except errors.BadCopyFileFormat as e:
            check("extra column: sqlstate", e.sqlstate, "22P04")
            check("extra column: message", e.diag.message_primary, "extra data after last expected column")
        except psycopg.Error as e:
            fail("extra column", f"expected BadCopyFileFormat, got {type(e).__name__} ({e.sqlstate}): {e}")
        else:
            fail("extra column", "the COPY succeeded")
        check("extra column: nothing landed", count(conn, "items"), before)

        # An exception raised by the application inside the block makes
        # psycopg end the COPY with CopyFail: nothing lands.
        class Stop(Exception):
            pass

        try:
            with conn.cursor() as cur:
                with cur.copy("COPY items (id, note) FROM STDIN") as copy:
                    copy.write_row((50, "abandoned"))
                    raise Stop()
        except Stop:
            check("abandoned copy raised the application's exception", True, True)
        except psycopg.Error as e:
            fail("abandoned copy", f"got {type(e).__name__} ({e.sqlstate}): {e}")
        check("abandoned copy: nothing landed", count(conn, "items"), before)
        check("usable after failed copies", conn.execute("SELECT 1").fetchone(), (1,))


def transactions(dsn):
    with psycopg.connect(dsn, autocommit=True) as admin, psycopg.connect(dsn) as conn:
        admin.execute("CREATE TABLE ledger (id int PRIMARY KEY, amount numeric(10,2))")
        with conn.transaction():
            with conn.cursor() as cur:
                with cur.copy("COPY ledger FROM STDIN") as copy:
                    copy.write_row((1, Decimal("10.00")))
                    copy.write_row((2, Decimal("2.50")))
            check("copy in a block reads its own rows", count(conn, "ledger"), 2)
            check("others do not see it yet", count(admin, "ledger"), 0)
            raise psycopg.Rollback()
        check("rolled-back copy left nothing", count(admin, "ledger"), 0)
        with conn.transaction():
            with conn.cursor() as cur:
                with cur.copy("COPY ledger FROM STDIN WITH (FORMAT csv)") as copy:
                    copy.write("3,7.25\n4,0.75\n")
        check("committed copy landed", admin.execute("SELECT count(*), sum(amount) FROM ledger").fetchone(),
              (2, Decimal("8.00")))
        # A failed COPY fails the transaction it is in.
        try:
            with conn.cursor() as cur:
                with cur.copy("COPY ledger FROM STDIN") as copy:
                    copy.write("5\tnot a number\n")
        except errors.InvalidTextRepresentation as e:
            check("bad copy in a transaction", e.sqlstate, "22P02")
        check("transaction failed", conn.info.transaction_status, TransactionStatus.INERROR)
        try:
            conn.execute("SELECT 1")
        except errors.InFailedSqlTransaction as e:
            check("then statements answer 25P02", e.sqlstate, "25P02")
        else:
            fail("25P02 after a failed copy", "SELECT succeeded")
        conn.rollback()
        check("idle after rollback", conn.info.transaction_status, TransactionStatus.IDLE)
        check("ledger unchanged", count(admin, "ledger"), 2)


if __name__ == "__main__":
    run([write_rows, read_rows, many_rows, raw_csv, bad_rows, transactions])
