"""psycopg 3's server-side cursors and SQL cursors against a Freshet server:

    python3 psycopg_cursors.py HOST PORT [USER [DBNAME [SCHEMA]]]

Prints "ok <check>" for each check that passes and "FAIL <check>: ..." for
each that does not; a section that raises is reported and the next one
runs. Ends with "ALL OK" and exit status 0, or "FAILED n" and exit status 1.
tests/psycopg.rs runs this against an in-process server.

Every expectation is what psycopg gives against PostgreSQL 15. To check
that, run it against one in a scratch schema, which the script creates
(dropping any left from an earlier run), works in, and drops at the end:

    python3 psycopg_cursors.py 127.0.0.1 5432 postgres test cursor_scratch

Covered: `conn.cursor(name)` (psycopg sends DECLARE through the extended
protocol with the query's parameters, describes the cursor's portal, then
FETCH FORWARD n / ALL and MOVE), fetchone/fetchmany/fetchall, iteration in
`itersize` steps, `scroll()` relative and absolute, `scrollable=False`
refusing to go back (55000), `withhold=True` surviving COMMIT, binary
results, `description`; SQL DECLARE/FETCH/MOVE/CLOSE in both protocols with
the command tags, errors 34000, 42P03 and 25P01, and a ROLLBACK closing the
block's cursors.
"""

from decimal import Decimal

import psycopg
from harness import check, expect_sqlstate, fail, run

N = 25


def setup(dsn):
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE cur (id int PRIMARY KEY, name text, score numeric(6,2))")
        with conn.cursor() as c:
            c.executemany(
                "INSERT INTO cur VALUES (%s, %s, %s)",
                [(i, f"n{i}", f"{i}.25") for i in range(1, N + 1)],
            )


def named_cursors(dsn):
    with psycopg.connect(dsn) as conn:
        with conn.cursor("walk") as c:
            c.execute("SELECT id, name, score FROM cur WHERE id > %s ORDER BY id", (5,))
            check("named: description", [d.name for d in c.description], ["id", "name", "score"])
            check("named: fetchone", c.fetchone(), (6, "n6", Decimal("6.25")))
            check("named: fetchmany", [r[0] for r in c.fetchmany(3)], [7, 8, 9])
            c.scroll(-2)
            check("named: scroll back", c.fetchone()[0], 8)
            c.scroll(10, mode="absolute")
            check("named: scroll absolute", c.fetchone()[0], 16)
            check("named: fetchall rest", [r[0] for r in c.fetchall()], list(range(17, N + 1)))
            check("named: after the end", c.fetchone(), None)
        with conn.cursor("iter") as c:
            c.itersize = 4
            c.execute("SELECT id FROM cur ORDER BY id")
            check("named: iteration", [r[0] for r in c], list(range(1, N + 1)))
        conn.rollback()


def forward_only(dsn):
    with psycopg.connect(dsn) as conn:
        with conn.cursor("fwd", scrollable=False) as c:
            c.execute("SELECT id FROM cur ORDER BY id")
            check("no scroll: forward", [r[0] for r in c.fetchmany(3)], [1, 2, 3])
            try:
                c.scroll(-1)
                fail("no scroll: back refused", "no error")
            except psycopg.Error as e:
                check("no scroll: back refused", e.sqlstate, "55000")
        conn.rollback()


def with_hold(dsn):
    with psycopg.connect(dsn) as conn:
        c = conn.cursor("held", withhold=True)
        c.execute("SELECT id FROM cur WHERE id <= 3 ORDER BY id")
        conn.commit()
        conn.execute("INSERT INTO cur VALUES (100, 'late', 0)")
        conn.commit()
        check("with hold: after commit", [r[0] for r in c.fetchall()], [1, 2, 3])
        c.close()
        conn.execute("DELETE FROM cur WHERE id = 100")
        conn.commit()


def binary_results(dsn):
    with psycopg.connect(dsn) as conn:
        with conn.cursor("bin", binary=True) as c:
            c.execute("SELECT id, name FROM cur WHERE id IN (%s, %s) ORDER BY id", (2, 4))
            check("binary: rows", c.fetchall(), [(2, "n2"), (4, "n4")])
        conn.rollback()


def sql_cursors(dsn):
    with psycopg.connect(dsn) as conn:
        cur = conn.cursor()
        cur.execute("DECLARE c SCROLL CURSOR FOR SELECT id, name FROM cur ORDER BY id")
        check("sql: declare tag", cur.statusmessage, "DECLARE CURSOR")
        cur.execute("FETCH 2 FROM c")
        check("sql: fetch rows", cur.fetchall(), [(1, "n1"), (2, "n2")])
        check("sql: fetch tag", cur.statusmessage, "FETCH 2")
        cur.execute("MOVE FORWARD 3 IN c")
        check("sql: move tag", cur.statusmessage, "MOVE 3")
        cur.execute("FETCH PRIOR FROM c")
        check("sql: prior", cur.fetchall(), [(4, "n4")])
        cur.execute("FETCH LAST FROM c")
        check("sql: last", cur.fetchall(), [(N, f"n{N}")])
        cur.execute("FETCH BACKWARD 2 FROM c")
        check("sql: backward", [r[0] for r in cur.fetchall()], [N - 1, N - 2])
        # Prepared: the extended protocol, where a FETCH describes as its
        # cursor's columns.
        cur.execute("FETCH ABSOLUTE 1 FROM c", prepare=True)
        check("sql: prepared fetch", cur.fetchall(), [(1, "n1")])
        check("sql: prepared fetch columns", [d.name for d in cur.description], ["id", "name"])
        cur.execute("CLOSE c")
        check("sql: close tag", cur.statusmessage, "CLOSE CURSOR")
        expect_sqlstate("sql: closed cursor", cur, "FETCH 1 FROM c", "34000")
        conn.rollback()
        cur.execute("DECLARE d CURSOR FOR SELECT 1")
        expect_sqlstate("sql: duplicate", cur, "DECLARE d CURSOR FOR SELECT 2", "42P03")
        conn.rollback()
        cur.execute("DECLARE gone CURSOR FOR SELECT 1")
        conn.rollback()
        expect_sqlstate("sql: rollback closes", cur, "FETCH 1 FROM gone", "34000")
        conn.rollback()
    with psycopg.connect(dsn, autocommit=True) as conn:
        expect_sqlstate("sql: outside a block", conn, "DECLARE out CURSOR FOR SELECT 1", "25P01")


def teardown(dsn):
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE cur")


if __name__ == "__main__":
    run([setup, named_cursors, forward_only, with_hold, binary_results, sql_cursors, teardown])
