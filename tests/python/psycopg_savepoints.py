"""psycopg 3's nested transactions (savepoints), json values and upserts
against a Freshet server:

    python3 psycopg_savepoints.py HOST PORT [USER [DBNAME [SCHEMA]]]

Prints "ok <check>" for each check that passes and "FAIL <check>: ..." for
each that does not; a section that raises is reported and the next one
runs. Ends with "ALL OK" and exit status 0, or "FAILED n" and exit status 1.
tests/psycopg.rs runs this against an in-process server.

Every expectation is what psycopg gives against PostgreSQL 15. To check
that, run it against one in a scratch schema, which the script creates
(dropping any left from an earlier run), works in, and drops at the end:

    python3 psycopg_savepoints.py 127.0.0.1 5432 postgres test savepoint_scratch

Covered: `conn.transaction()` nested blocks (psycopg sends SAVEPOINT,
RELEASE SAVEPOINT, and ROLLBACK TO SAVEPOINT when the inner block raises,
also after a failed statement), explicit SAVEPOINT statements in both
protocols, the transaction status the driver sees after each step, errors
for unknown savepoints and savepoints outside a block, and jsonb values:
`Jsonb` parameters, jsonb results loaded as Python objects, and the json
operators with parameters; `INSERT ... ON CONFLICT` with parameters (the
extended protocol), DO NOTHING and DO UPDATE with `excluded`, and the row
counts psycopg reports; `TypeInfo.fetch` (to_regtype) and `pg_matviews`;
the NOTICEs of IF [NOT] EXISTS.
"""

import sys

import psycopg
from harness import check, expect_sqlstate, fail, run
from psycopg import errors
from psycopg.pq import TransactionStatus
from psycopg.types import TypeInfo
from psycopg.types.json import Jsonb

def ids(conn, table):
    return [r[0] for r in conn.execute(f"SELECT id FROM {table} ORDER BY id").fetchall()]


def nested_blocks(dsn):
    with psycopg.connect(dsn) as admin:
        admin.execute("CREATE TABLE sp (id int PRIMARY KEY, v text)")
        admin.commit()
    with psycopg.connect(dsn) as conn:
        with conn.transaction():
            conn.execute("INSERT INTO sp VALUES (1, 'outer')")
            with conn.transaction():
                conn.execute("INSERT INTO sp VALUES (2, 'kept')")
            try:
                with conn.transaction():
                    conn.execute("INSERT INTO sp VALUES (3, 'undone')")
                    raise ValueError("leave the inner block")
            except ValueError:
                pass
            check("inner rollback keeps the outer block", conn.info.transaction_status, TransactionStatus.INTRANS)
            check("rows inside the outer block", ids(conn, "sp"), [1, 2])
            try:
                with conn.transaction():
                    conn.execute("INSERT INTO sp VALUES (1, 'duplicate')")
            except errors.UniqueViolation:
                pass
            check("a failed statement in an inner block leaves the outer usable",
                  conn.info.transaction_status, TransactionStatus.INTRANS)
            conn.execute("INSERT INTO sp VALUES (4, 'after the failure')")
        check("idle after the outer block", conn.info.transaction_status, TransactionStatus.IDLE)
        check("committed rows", ids(conn, "sp"), [1, 2, 4])


def explicit_savepoints(dsn):
    with psycopg.connect(dsn) as conn:
        conn.execute("INSERT INTO sp VALUES (10, 'a')")
        conn.execute("SAVEPOINT s1")
        conn.execute("INSERT INTO sp VALUES (11, 'b')")
        conn.execute("SAVEPOINT s2")
        conn.execute("INSERT INTO sp VALUES (12, 'c')")
        conn.execute("ROLLBACK TO SAVEPOINT s1")
        check("rollback to the first savepoint", ids(conn, "sp"), [1, 2, 4, 10])
        expect_sqlstate("a savepoint after the one rolled back to is gone", conn, "ROLLBACK TO SAVEPOINT s2", "3B001")
        check("an unknown savepoint aborts the block", conn.info.transaction_status, TransactionStatus.INERROR)
        conn.execute("ROLLBACK TO SAVEPOINT s1")
        check("rolling back to a savepoint resumes an aborted block", conn.info.transaction_status, TransactionStatus.INTRANS)
        conn.execute("INSERT INTO sp VALUES (13, 'd')")
        conn.execute("RELEASE SAVEPOINT s1")
        expect_sqlstate("a released savepoint is gone", conn, "RELEASE SAVEPOINT s1", "3B001")
        conn.rollback()
        check("a rolled back block leaves nothing", ids(conn, "sp"), [1, 2, 4])
        conn.commit()
    with psycopg.connect(dsn, autocommit=True) as conn:
        expect_sqlstate("SAVEPOINT outside a block", conn, "SAVEPOINT nowhere", "25P01")
        expect_sqlstate("ROLLBACK TO outside a block", conn, "ROLLBACK TO SAVEPOINT nowhere", "25P01")
        check("still idle", conn.info.transaction_status, TransactionStatus.IDLE)
    with psycopg.connect(dsn) as conn:
        # The simple protocol, as psycopg2 and psql send it.
        conn.pgconn.exec_(b"BEGIN")
        conn.pgconn.exec_(b"INSERT INTO sp VALUES (20, 'x')")
        conn.pgconn.exec_(b"SAVEPOINT p")
        failed = conn.pgconn.exec_(b"INSERT INTO sp VALUES (20, 'again')")
        check("a duplicate fails in the simple protocol", failed.error_field(psycopg.pq.DiagnosticField.SQLSTATE), b"23505")
        check("aborted in the simple protocol", conn.pgconn.transaction_status, TransactionStatus.INERROR)
        resumed = conn.pgconn.exec_(b"ROLLBACK TO SAVEPOINT p")
        check("rollback to answers ok", resumed.status, psycopg.pq.ExecStatus.COMMAND_OK)
        check("resumed in the simple protocol", conn.pgconn.transaction_status, TransactionStatus.INTRANS)
        conn.pgconn.exec_(b"COMMIT")
        check("the row before the savepoint committed", ids(conn, "sp"), [1, 2, 4, 20])
        conn.commit()


def json_values(dsn):
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE docs (id int PRIMARY KEY, doc jsonb)")
        conn.execute("INSERT INTO docs VALUES (%s, %s)", (1, Jsonb({"kind": "click", "n": 2, "tags": ["a", "b"]})))
        conn.execute("INSERT INTO docs VALUES (%s, %s)", (2, Jsonb({"kind": "view", "n": 1.5})))
        row = conn.execute("SELECT doc FROM docs WHERE id = 1").fetchone()
        check("jsonb comes back as a dict", row[0], {"kind": "click", "n": 2, "tags": ["a", "b"]})
        row = conn.execute("SELECT doc -> 'tags', doc ->> 'kind' FROM docs WHERE id = 1").fetchone()
        check("-> gives json, ->> text", row, (["a", "b"], "click"))
        row = conn.execute("SELECT id FROM docs WHERE doc ->> 'kind' = %s", ("view",)).fetchone()
        check("->> compared with a parameter", row, (2,))
        rows = conn.execute("SELECT id FROM docs WHERE doc @> %s ORDER BY id", (Jsonb({"kind": "click"}),)).fetchall()
        check("@> with a Jsonb parameter", rows, [(1,)])
        row = conn.execute("SELECT jsonb_build_object('id', id, 'n', doc -> 'n') FROM docs WHERE id = 2").fetchone()
        check("jsonb_build_object", row[0], {"id": 2, "n": 1.5})


def upserts(dsn):
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE counters (name text PRIMARY KEY, hits int NOT NULL, seen jsonb)")
        upsert = ("INSERT INTO counters VALUES (%s, %s, %s) ON CONFLICT (name) "
                  "DO UPDATE SET hits = counters.hits + excluded.hits, seen = excluded.seen")
        cur = conn.execute(upsert, ("home", 1, Jsonb({"n": 1})))
        check("an upsert of a new key inserts", cur.rowcount, 1)
        cur = conn.execute(upsert, ("home", 5, Jsonb({"n": 2})))
        check("an upsert of an existing key updates", cur.rowcount, 1)
        with conn.cursor() as cur:
            cur.executemany(upsert, [("about", 2, None), ("home", 10, None)])
        rows = conn.execute("SELECT name, hits, seen FROM counters ORDER BY name").fetchall()
        check("upserted rows", rows, [("about", 2, None), ("home", 16, None)])
        cur = conn.execute("INSERT INTO counters VALUES (%s, %s) ON CONFLICT DO NOTHING", ("home", 0))
        check("DO NOTHING on an existing key", cur.rowcount, 0)
        try:
            conn.execute("INSERT INTO counters VALUES ('x', 1), ('x', 2) ON CONFLICT (name) DO UPDATE SET hits = 0")
            fail("a key proposed twice", "no error")
        except psycopg.Error as e:
            check("a key proposed twice", e.sqlstate, "21000")


def catalog_lookups(dsn):
    with psycopg.connect(dsn, autocommit=True) as conn:
        info = TypeInfo.fetch(conn, "jsonb")
        check("TypeInfo of jsonb", (info.oid, info.array_oid) if info else None, (3802, 3807))
        info = TypeInfo.fetch(conn, "int4")
        check("TypeInfo of int4", info.oid if info else None, 23)
        check("TypeInfo of an unknown type", TypeInfo.fetch(conn, "no_such_type"), None)
        conn.execute("CREATE MATERIALIZED VIEW hits AS SELECT name, hits FROM counters")
        rows = conn.execute(
            "SELECT matviewname, ispopulated FROM pg_matviews WHERE matviewname = 'hits'"
        ).fetchall()
        check("pg_matviews lists the view", rows, [("hits", True)])


def notices(dsn):
    with psycopg.connect(dsn, autocommit=True) as conn:
        seen = []
        conn.add_notice_handler(lambda d: seen.append((d.severity, d.sqlstate, d.message_primary)))
        conn.execute("CREATE TABLE IF NOT EXISTS counters (x int)")
        conn.execute("DROP TABLE IF EXISTS no_such_table")
        conn.execute("DROP MATERIALIZED VIEW IF EXISTS no_such_view")
        check("notices of IF [NOT] EXISTS", seen, [
            ("NOTICE", "42P07", 'relation "counters" already exists, skipping'),
            ("NOTICE", "00000", 'table "no_such_table" does not exist, skipping'),
            ("NOTICE", "00000", 'materialized view "no_such_view" does not exist, skipping'),
        ])


if __name__ == "__main__":
    run([nested_blocks, explicit_savepoints, json_values, upserts, catalog_lookups, notices])
