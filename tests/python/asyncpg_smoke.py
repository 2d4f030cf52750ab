"""asyncpg against a Freshet server: what an asyncpg user does on day one.

    python3 asyncpg_smoke.py HOST PORT [USER [DBNAME [SCHEMA]]]

Prints "ok <check>" for each check that passes and "FAIL <check>: ..." for
each that does not; a section that raises (or takes longer than a minute)
is reported and the next one runs. Ends with "ALL OK" and exit status 0, or
"FAILED n" and exit status 1. It needs only asyncpg (python3 -m pip install
asyncpg): harness.py imports psycopg, so the same conventions are restated
here for asyncio.

Every expectation is what asyncpg 0.32 gives against PostgreSQL 15. To check
that, run it against one in a scratch schema, which the script creates
(dropping any left from an earlier run), works in through
`server_settings={'search_path': SCHEMA}`, and drops at the end:

    python3 asyncpg_smoke.py 127.0.0.1 5432 postgres test asyncpg_scratch

One difference is bridged: PostgreSQL has no FLUSH and does not keep a
materialized view current, Freshet does once FLUSH returns. The
materialized-view section asks the server which it is (the server_version
parameter status names Freshet: "16.6 (Freshet 0.1.0)") and issues FLUSH to
Freshet and REFRESH MATERIALIZED VIEW to PostgreSQL; after either the view
holds the same rows.

Covered: connect (server_settings, server_version); DDL and DML through
`execute` (simple protocol) and their command tags; `fetch`/`fetchrow`/
`fetchval` with $n parameters of int4, int8, float8, numeric (Decimal, an
int compared with a numeric(10,2) column, `$1::numeric * 2`), text, bool,
date, timestamp, timestamptz (an aware datetime back in UTC), jsonb (text by
default; dicts after `set_type_codec(..., schema='pg_catalog')`, which
introspects pg_type), bytea and NULLs, all in asyncpg's binary format: asyncpg
encodes each parameter by the type the server's ParameterDescription gives
(`$1::int` must describe as int4), and a table row of every type written
and read back; `executemany`; `conn.prepare` reused, `get_parameters`,
`get_attributes` (result type OIDs); `conn.transaction()` committing, rolled
back by an exception, a nested block (a savepoint) rolled back inside a
committing one, an error inside a block, and `start()`/`rollback()`/`commit()`
with isolation="repeatable_read"; `conn.cursor()` in a
transaction: iteration in prefetch steps (portal Execute with a row limit),
`fetch(n)`, `fetchrow()`, `forward(n)` (SQL MOVE on the protocol portal);
`copy_records_to_table` (binary COPY FROM STDIN), `copy_to_table` from a CSV
BytesIO, `copy_from_query` without and with an argument (asyncpg inlines it
through quote_literal) and `copy_from_table` into BytesIO; errors
UniqueViolationError 23505, UndefinedTableError 42P01, DivisionByZeroError
22012 and PostgresSyntaxError 42601 in both protocols, each followed by a
query on the same connection, and the constraint and table names of a 23505;
a view; a materialized view read after later inserts.
"""

import asyncio
import datetime
import io
import json
import sys
import traceback
from decimal import Decimal

import asyncpg

FAILURES = []
SECTION_TIMEOUT = 60


def check(name, actual, expected):
    if actual == expected:
        print(f"ok {name}", flush=True)
    else:
        fail(name, f"expected {expected!r}, got {actual!r}")


def fail(name, why):
    FAILURES.append(name)
    print(f"FAIL {name}: {why}", flush=True)


async def expect_error(name, awaitable, error, sqlstate):
    """Awaits `awaitable`: it must raise asyncpg's `error` with `sqlstate`."""
    try:
        await awaitable
    except asyncpg.PostgresError as e:
        check(name, (type(e).__name__, e.sqlstate), (error.__name__, sqlstate))
        return
    fail(name, "no error")


class Server:
    """Opens connections to the server named on the command line."""

    def __init__(self, host, port, user, dbname, schema):
        self.args = dict(host=host, port=port, user=user, database=dbname,
                         timeout=10, command_timeout=20)
        self.schema = schema

    async def connect(self, **kwargs):
        settings = {"search_path": self.schema} if self.schema else {}
        return await asyncpg.connect(**self.args, server_settings=settings, **kwargs)


class connected:
    """`async with connected(server) as conn`: closes it, or drops it if closing fails."""

    def __init__(self, server, **kwargs):
        self.server, self.kwargs = server, kwargs

    async def __aenter__(self):
        self.conn = await self.server.connect(**self.kwargs)
        return self.conn

    async def __aexit__(self, *exc):
        try:
            await asyncio.wait_for(self.conn.close(), 5)
        except Exception:
            self.conn.terminate()


class Abandon(Exception):
    """Raised inside a transaction block to leave it by an exception."""


# ---------------------------------------------------------------- sections


async def connect_and_ddl(server):
    async with connected(server) as conn:
        check("connect: server_version reported", bool(conn.get_settings().server_version), True)
        check("connect: fetchval 1", await conn.fetchval("SELECT 1"), 1)
        check("ddl: create table tag", await conn.execute(
            "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, qty int)"), "CREATE TABLE")
        check("dml: insert tag", await conn.execute(
            "INSERT INTO items VALUES (1, 'apple', 3), (2, 'pear', 5), (3, 'plum', 0)"), "INSERT 0 3")
        check("dml: insert with args tag", await conn.execute(
            "INSERT INTO items VALUES ($1, $2, $3)", 4, "fig", 7), "INSERT 0 1")
        check("dml: update tag", await conn.execute(
            "UPDATE items SET qty = qty + $1 WHERE id <= $2", 1, 2), "UPDATE 2")
        check("dml: delete tag", await conn.execute("DELETE FROM items WHERE qty = 0"), "DELETE 1")
        rows = await conn.fetch("SELECT id, name, qty FROM items ORDER BY id")
        check("fetch: rows", [tuple(r) for r in rows], [(1, "apple", 4), (2, "pear", 6), (4, "fig", 7)])
        check("fetch: record by key", rows[1]["name"], "pear")
        row = await conn.fetchrow("SELECT name, qty FROM items WHERE id = $1", 4)
        check("fetchrow: row", dict(row), {"name": "fig", "qty": 7})
        check("fetchrow: no row", await conn.fetchrow("SELECT name FROM items WHERE id = $1", 99), None)
        check("fetchval: column=1", await conn.fetchval(
            "SELECT id, name FROM items WHERE id = $1", 1, column=1), "apple")
        check("fetch: no rows", await conn.fetch("SELECT id FROM items WHERE id < $1", 0), [])


TS = datetime.datetime(2024, 3, 1, 12, 30, 45, 123456)
AWARE = datetime.datetime(2024, 3, 1, 12, 30, 45, 500000,
                          tzinfo=datetime.timezone(datetime.timedelta(hours=2)))

# (check, query, argument, expected): fetchval(query, argument) == expected.
SCALARS = [
    ("param int4", "SELECT $1::int + 1", 41, 42),
    ("param int8", "SELECT $1::bigint * 2", 2**40, 2**41),
    ("param float8", "SELECT $1::float8 * 2", 1.25, 2.5),
    ("param numeric * 2", "SELECT $1::numeric * 2", Decimal("2.25"), Decimal("4.50")),
    ("param text", "SELECT $1::text || '!'", "héllo ☃", "héllo ☃!"),
    ("param bool", "SELECT NOT $1::bool", True, False),
    ("param date", "SELECT $1::date + 1", datetime.date(2024, 2, 28), datetime.date(2024, 2, 29)),
    ("param timestamp", "SELECT $1::timestamp", TS, TS),
    ("param timestamptz round trip", "SELECT $1::timestamptz", AWARE, AWARE),
    ("param bytea", "SELECT $1::bytea", b"\x00\xffab\n", b"\x00\xffab\n"),
    ("param jsonb as text", "SELECT $1::jsonb", '{"a": [1, 2], "b": null}', '{"a": [1, 2], "b": null}'),
    ("param NULL", "SELECT $1::int IS NULL", None, True),
    ("param NULL text back", "SELECT $1::text", None, None),
    ("param untyped text", "SELECT $1", "plain", "plain"),
]


async def check_fetchval(name, conn, query, *args, expected):
    """check() of fetchval(query, *args), failing the check (only) if it raises."""
    try:
        value = await conn.fetchval(query, *args)
    except Exception as e:
        fail(name, f"raised {type(e).__name__}: {e}")
        return None
    check(name, value, expected)
    return value


async def parameter_types(server):
    async with connected(server) as conn:
        for name, query, arg, expected in SCALARS:
            await check_fetchval(name, conn, query, arg, expected=expected)
        back = await check_fetchval("param timestamptz in UTC", conn, "SELECT $1::timestamptz", AWARE,
                                    expected=AWARE)
        check("param timestamptz comes back in UTC", back.utcoffset() if back else None, datetime.timedelta(0))
        check("prepare: cast parameter types", [t.name for t in (await conn.prepare(
            "SELECT $1::int, $2::numeric, $3::jsonb, $4::timestamptz, $5::bytea")).get_parameters()],
            ["int4", "numeric", "jsonb", "timestamptz", "bytea"])
        check("prepare: int4 arithmetic type", [(a.name, a.type.name) for a in (await conn.prepare(
            "SELECT 1 + 1 AS two")).get_attributes()], [("two", "int4")])

        await conn.execute("CREATE TABLE prices (id int PRIMARY KEY, amount numeric(10,2))")
        await conn.execute("INSERT INTO prices VALUES (1, 9.99), (2, 10.00), (3, 25.5)")
        check("numeric column vs int param", [r["id"] for r in await conn.fetch(
            "SELECT id FROM prices WHERE amount >= $1 ORDER BY id", 10)], [2, 3])
        check("numeric column vs Decimal param", [r["id"] for r in await conn.fetch(
            "SELECT id FROM prices WHERE amount < $1 ORDER BY id", Decimal("10.00"))], [1])
        check("numeric column value", await conn.fetchval("SELECT amount FROM prices WHERE id = $1", 3),
              Decimal("25.50"))
        check("numeric insert Decimal", await conn.execute(
            "INSERT INTO prices VALUES ($1, $2)", 4, Decimal("1.005")), "INSERT 0 1")
        check("numeric rounded to scale", await conn.fetchval("SELECT amount FROM prices WHERE id = 4"),
              Decimal("1.01"))
        check("numeric sum", await conn.fetchval("SELECT sum(amount) FROM prices"), Decimal("46.50"))


async def typed_table(server):
    async with connected(server) as conn:
        await conn.execute(
            "CREATE TABLE typed (id int PRIMARY KEY, i8 bigint, f float8, n numeric(10,2), t text, "
            "b bool, d date, ts timestamp, tz timestamptz, j jsonb, bin bytea)")
        values = (1, 2**40, 0.5, Decimal("3.10"), "text", True, datetime.date(2020, 1, 2),
                  TS, AWARE, '{"k": "v"}', b"\x01\x02")
        await conn.execute("INSERT INTO typed VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)", *values)
        await conn.execute("INSERT INTO typed (id) VALUES ($1)", 2)
        row = await conn.fetchrow("SELECT * FROM typed WHERE id = $1", 1)
        check("typed row round trip", tuple(row) if row else None, values)
        row = await conn.fetchrow("SELECT * FROM typed WHERE id = $1", 2)
        check("typed row of NULLs", tuple(row) if row else None, (2,) + (None,) * 10)
        check("typed row by a timestamptz", await conn.fetchval("SELECT id FROM typed WHERE tz = $1", AWARE), 1)
        check("select NULL literal", await conn.fetchval("SELECT NULL"), None)


async def jsonb_codec(server):
    async with connected(server) as conn:
        await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
        doc = {"a": [1, 2.5, "x"], "b": {"c": None, "d": True}}
        await check_fetchval("jsonb codec round trip", conn, "SELECT $1::jsonb", doc, expected=doc)
        await conn.execute("CREATE TABLE docs (id int PRIMARY KEY, body jsonb)")
        await conn.executemany("INSERT INTO docs VALUES ($1, $2)", [(1, doc), (2, [1, 2]), (3, None)])
        rows = await conn.fetch("SELECT id, body FROM docs ORDER BY id")
        check("jsonb codec from a table", [tuple(r) for r in rows], [(1, doc), (2, [1, 2]), (3, None)])
    async with connected(server) as conn:
        check("jsonb without codec is text", await conn.fetchval("SELECT body FROM docs WHERE id = 2"), "[1, 2]")


async def executemany_and_prepare(server):
    async with connected(server) as conn:
        await conn.execute("CREATE TABLE people (id int PRIMARY KEY, name text, age int)")
        result = await conn.executemany(
            "INSERT INTO people VALUES ($1, $2, $3)",
            [(i, f"p{i}", 20 + i) for i in range(1, 11)],
        )
        check("executemany returns None", result, None)
        check("executemany inserted", await conn.fetchval("SELECT count(*) FROM people"), 10)
        stmt = await conn.prepare("SELECT id, name, age FROM people WHERE age > $1 ORDER BY id")
        check("prepare: parameters", [t.name for t in stmt.get_parameters()], ["int4"])
        check("prepare: attributes", [(a.name, a.type.name) for a in stmt.get_attributes()],
              [("id", "int4"), ("name", "text"), ("age", "int4")])
        check("prepare: first use", [r["id"] for r in await stmt.fetch(27)], [8, 9, 10])
        check("prepare: reuse", [r["id"] for r in await stmt.fetch(29)], [10])
        check("prepare: fetchrow", tuple(await stmt.fetchrow(28)), (9, "p9", 29))
        check("prepare: fetchval", await stmt.fetchval(20), 1)
        check("prepare: no rows", await stmt.fetch(100), [])
        ins = await conn.prepare("INSERT INTO people VALUES ($1, $2, $3)")
        await ins.executemany([(11, "p11", 31), (12, "p12", 32)])
        check("prepare: executemany", await stmt.fetchval(30), 11)
        agg = await conn.prepare("SELECT count(*) AS n, sum(age) AS total, avg(age) AS mean FROM people")
        check("prepare: aggregate types", [(a.name, a.type.name) for a in agg.get_attributes()],
              [("n", "int8"), ("total", "int8"), ("mean", "numeric")])
        check("prepare: aggregate values", tuple(await agg.fetchrow()), (12, 318, Decimal("26.5000000000000000")))


async def transactions(server):
    async with connected(server) as conn, connected(server) as other:
        await conn.execute("CREATE TABLE accounts (id int PRIMARY KEY, balance int)")
        async with conn.transaction():
            await conn.execute("INSERT INTO accounts VALUES (1, 100), (2, 50)")
            check("tx: in a transaction", conn.is_in_transaction(), True)
            check("tx: others do not see it yet", await other.fetchval("SELECT count(*) FROM accounts"), 0)
        check("tx: committed", await other.fetchval("SELECT sum(balance) FROM accounts"), 150)
        check("tx: idle after", conn.is_in_transaction(), False)

        try:
            async with conn.transaction():
                await conn.execute("UPDATE accounts SET balance = 0")
                await conn.execute("INSERT INTO accounts VALUES ($1, $2)", 3, 7)
                check("tx: reads own writes", await conn.fetchval("SELECT sum(balance) FROM accounts"), 7)
                raise Abandon()
        except Abandon:
            pass
        check("tx: exception rolled back", [tuple(r) for r in await conn.fetch(
            "SELECT id, balance FROM accounts ORDER BY id")], [(1, 100), (2, 50)])

        async with conn.transaction():
            await conn.execute("UPDATE accounts SET balance = balance - 10 WHERE id = 1")
            try:
                async with conn.transaction():
                    await conn.execute("UPDATE accounts SET balance = balance + 10 WHERE id = 2")
                    await conn.execute("INSERT INTO accounts VALUES (4, 4)")
                    raise Abandon()
            except Abandon:
                pass
            check("tx: savepoint rolled back inside", await conn.fetchval("SELECT sum(balance) FROM accounts"), 140)
            async with conn.transaction():
                await conn.execute("INSERT INTO accounts VALUES (5, 5)")
        check("tx: outer committed, inner rolled back", [tuple(r) for r in await other.fetch(
            "SELECT id, balance FROM accounts ORDER BY id")], [(1, 90), (2, 50), (5, 5)])

        try:
            async with conn.transaction():
                await conn.execute("INSERT INTO accounts VALUES (6, 6)")
                await conn.execute("INSERT INTO accounts VALUES (1, 1)")
            fail("tx: error in a block", "no error")
        except asyncpg.PostgresError as e:
            check("tx: error in a block", e.sqlstate, "23505")
        check("tx: error rolled the block back", await conn.fetchval("SELECT count(*) FROM accounts"), 3)

        tx = conn.transaction()
        await tx.start()
        await conn.execute("DELETE FROM accounts WHERE id = 5")
        await tx.rollback()
        check("tx: explicit start/rollback", await conn.fetchval("SELECT count(*) FROM accounts"), 3)
        tx = conn.transaction(isolation="repeatable_read")
        await tx.start()
        await conn.execute("DELETE FROM accounts WHERE id = 5")
        await tx.commit()
        check("tx: repeatable read start/commit", await conn.fetchval("SELECT count(*) FROM accounts"), 2)


async def cursors(server):
    async with connected(server) as conn:
        await conn.execute("CREATE TABLE seq (n int PRIMARY KEY, sq int)")
        await conn.executemany("INSERT INTO seq VALUES ($1, $2)", [(i, i * i) for i in range(1, 21)])
        async with conn.transaction():
            seen = [r["n"] async for r in conn.cursor("SELECT n FROM seq ORDER BY n", prefetch=3)]
            check("cursor: iteration with prefetch", seen, list(range(1, 21)))
            seen = [tuple(r) async for r in conn.cursor(
                "SELECT n, sq FROM seq WHERE n > $1 ORDER BY n", 17)]
            check("cursor: iteration with an argument", seen, [(18, 324), (19, 361), (20, 400)])
            cur = await conn.cursor("SELECT n, sq FROM seq WHERE n <= $1 ORDER BY n", 12)
            check("cursor: fetch(3)", [r["n"] for r in await cur.fetch(3)], [1, 2, 3])
            check("cursor: fetchrow", tuple(await cur.fetchrow()), (4, 16))
            check("cursor: fetch past the end", [r["n"] for r in await cur.fetch(10)], list(range(5, 13)))
            check("cursor: fetch when exhausted", await cur.fetch(2), [])
        # asyncpg refuses by itself, from the status in ReadyForQuery.
        try:
            async for _ in conn.cursor("SELECT n FROM seq"):
                break
            fail("cursor: outside a transaction", "no error")
        except asyncpg.PostgresError as e:
            check("cursor: outside a transaction", (type(e).__name__, e.sqlstate),
                  ("NoActiveSQLTransactionError", "25P01"))


async def cursor_forward(server):
    # forward() sends "MOVE FORWARD n <portal>" by the simple protocol: the
    # portal bound through the extended protocol, named as an SQL cursor.
    async with connected(server) as conn:
        async with conn.transaction():
            cur = await conn.cursor("SELECT n, sq FROM seq WHERE n <= $1 ORDER BY n", 12)
            check("cursor: fetch(3) before forward", [r["n"] for r in await cur.fetch(3)], [1, 2, 3])
            check("cursor: forward(4)", await cur.forward(4), 4)
            check("cursor: fetchrow after forward", tuple(await cur.fetchrow()), (8, 64))
        async with conn.transaction():
            cur = await conn.cursor("SELECT n FROM seq ORDER BY n")
            check("cursor: forward past the end", await cur.forward(30), 20)
            check("cursor: fetchrow after the end", await cur.fetchrow(), None)


async def copy_binary(server):
    # copy_records_to_table: COPY ... FROM STDIN (FORMAT binary), after a
    # prepared "SELECT columns FROM table LIMIT 0" for the column types.
    async with connected(server) as conn:
        await conn.execute("CREATE TABLE bin_stock (id int PRIMARY KEY, name text, price numeric(8,2), seen date)")
        status = await conn.copy_records_to_table(
            "bin_stock",
            records=[(1, "bolt", Decimal("0.25"), datetime.date(2024, 1, 1)),
                     (2, "nut", Decimal("0.10"), None),
                     (3, None, Decimal("12.00"), datetime.date(2024, 1, 3))],
        )
        check("copy_records_to_table status", status, "COPY 3")
        status = await conn.copy_records_to_table(
            "bin_stock", records=[(4, "washer"), (5, "tab\tand\nnewline")], columns=["id", "name"])
        check("copy_records_to_table with columns", status, "COPY 2")
        rows = await conn.fetch("SELECT id, name, price, seen FROM bin_stock ORDER BY id")
        check("copy_records_to_table rows", [tuple(r) for r in rows], [
            (1, "bolt", Decimal("0.25"), datetime.date(2024, 1, 1)),
            (2, "nut", Decimal("0.10"), None),
            (3, None, Decimal("12.00"), datetime.date(2024, 1, 3)),
            (4, "washer", None, None),
            (5, "tab\tand\nnewline", None, None),
        ])


async def copy_text(server):
    async with connected(server) as conn:
        await conn.execute("CREATE TABLE stock (id int PRIMARY KEY, name text, price numeric(8,2), seen date)")
        source = io.BytesIO(
            b'1,bolt,0.25,2024-01-01\n2,nut,0.10,\n3,,12.00,2024-01-03\n4,washer,,\n'
            b'5,"tab\tand\nnewline",,\n6,gear,3.50,2024-02-01\n7,"comma, quoted",1.00,\n')
        status = await conn.copy_to_table("stock", source=source, format="csv")
        check("copy_to_table csv status", status, "COPY 7")
        rows = await conn.fetch("SELECT id, name, price, seen FROM stock ORDER BY id")
        check("copy_to_table rows", [tuple(r) for r in rows], [
            (1, "bolt", Decimal("0.25"), datetime.date(2024, 1, 1)),
            (2, "nut", Decimal("0.10"), None),
            (3, None, Decimal("12.00"), datetime.date(2024, 1, 3)),
            (4, "washer", None, None),
            (5, "tab\tand\nnewline", None, None),
            (6, "gear", Decimal("3.50"), datetime.date(2024, 2, 1)),
            (7, "comma, quoted", Decimal("1.00"), None),
        ])
        out = io.BytesIO()
        status = await conn.copy_from_query("SELECT id, name, price FROM stock WHERE id > 4 ORDER BY id",
                                            output=out, format="csv")
        check("copy_from_query status", status, "COPY 3")
        check("copy_from_query csv", out.getvalue(),
              b'5,"tab\tand\nnewline",\n6,gear,3.50\n7,"comma, quoted",1.00\n')
        out = io.BytesIO()
        try:
            status = await conn.copy_from_query(
                "SELECT id, name FROM stock WHERE id > $1 ORDER BY id", 5, output=out, format="csv")
            check("copy_from_query with an argument", (status, out.getvalue()),
                  ("COPY 2", b'6,gear\n7,"comma, quoted"\n'))
        except Exception as e:
            fail("copy_from_query with an argument", f"raised {type(e).__name__}: {e}")
        out = io.BytesIO()
        status = await conn.copy_from_table("stock", output=out, columns=["id", "name", "seen"])
        check("copy_from_table status", status, "COPY 7")
        check("copy_from_table text", out.getvalue(),
              b"1\tbolt\t2024-01-01\n2\tnut\t\\N\n3\t\\N\t2024-01-03\n4\twasher\t\\N\n"
              b"5\ttab\\tand\\nnewline\t\\N\n6\tgear\t2024-02-01\n7\tcomma, quoted\t\\N\n")
        check("copy: connection usable after", await conn.fetchval("SELECT count(*) FROM stock"), 7)


async def errors(server):
    async with connected(server) as conn:
        await conn.execute("CREATE TABLE uniq (id int PRIMARY KEY)")
        await conn.execute("INSERT INTO uniq VALUES (1)")
        await expect_error("error: unique violation", conn.execute("INSERT INTO uniq VALUES ($1)", 1),
                           asyncpg.UniqueViolationError, "23505")
        check("error: usable after 23505", await conn.fetchval("SELECT count(*) FROM uniq"), 1)
        await expect_error("error: unique violation (simple)", conn.execute("INSERT INTO uniq VALUES (1)"),
                           asyncpg.UniqueViolationError, "23505")
        check("error: usable after simple 23505", await conn.fetchval("SELECT 2"), 2)
        await expect_error("error: undefined table", conn.fetch("SELECT * FROM no_such_table"),
                           asyncpg.UndefinedTableError, "42P01")
        check("error: usable after 42P01", await conn.fetchval("SELECT 3"), 3)
        await expect_error("error: division by zero", conn.fetchval("SELECT 1 / (id - 1) FROM uniq WHERE id = $1", 1),
                           asyncpg.DivisionByZeroError, "22012")
        check("error: usable after 22012", await conn.fetchval("SELECT 4"), 4)
        await expect_error("error: division by zero (simple)", conn.execute("SELECT 1 / 0"),
                           asyncpg.DivisionByZeroError, "22012")
        check("error: usable after simple 22012", await conn.fetchval("SELECT 5"), 5)
        await expect_error("error: syntax", conn.fetch("SELEC 1"), asyncpg.PostgresSyntaxError, "42601")
        check("error: usable after 42601", await conn.fetchval("SELECT 6"), 6)
        await expect_error("error: syntax (simple)", conn.execute("SELECT FROM WHERE"),
                           asyncpg.PostgresSyntaxError, "42601")
        check("error: usable after simple 42601", await conn.fetchval("SELECT 7"), 7)
        try:
            await conn.execute("INSERT INTO uniq VALUES (1)")
        except asyncpg.UniqueViolationError as e:
            check("error: constraint_name", e.constraint_name, "uniq_pkey")
            check("error: table_name", e.table_name, "uniq")
        check("error: not left in a transaction", conn.is_in_transaction(), False)


async def views(server):
    async with connected(server) as conn:
        await conn.execute("CREATE TABLE orders (id int PRIMARY KEY, customer text, total numeric(10,2))")
        await conn.executemany("INSERT INTO orders VALUES ($1, $2, $3)", [
            (1, "ann", Decimal("10.00")), (2, "bob", Decimal("5.50")), (3, "ann", Decimal("2.25"))])
        check("view: create tag", await conn.execute(
            "CREATE VIEW big_orders AS SELECT id, customer FROM orders WHERE total > 3"), "CREATE VIEW")
        check("view: rows", [tuple(r) for r in await conn.fetch(
            "SELECT id, customer FROM big_orders ORDER BY id")], [(1, "ann"), (2, "bob")])
        check("view: with a parameter", await conn.fetchval(
            "SELECT count(*) FROM big_orders WHERE customer = $1", "ann"), 1)

        freshet = "Freshet" in conn.get_settings().server_version
        check("matview: create tag", await conn.execute(
            "CREATE MATERIALIZED VIEW customer_totals AS "
            "SELECT customer, count(*) AS n, sum(total) AS spent FROM orders GROUP BY customer"),
            "SELECT 2")
        check("matview: after create", [tuple(r) for r in await conn.fetch(
            "SELECT customer, n, spent FROM customer_totals ORDER BY customer")],
            [("ann", 2, Decimal("12.25")), ("bob", 1, Decimal("5.50"))])
        await conn.executemany("INSERT INTO orders VALUES ($1, $2, $3)", [
            (4, "bob", Decimal("1.00")), (5, "cy", Decimal("7.00"))])
        # Freshet keeps the view current once FLUSH returns; PostgreSQL has
        # no FLUSH (a syntax error) and needs the REFRESH.
        if freshet:
            await conn.execute("FLUSH")
        else:
            await conn.execute("REFRESH MATERIALIZED VIEW customer_totals")
        check("matview: after inserts", [tuple(r) for r in await conn.fetch(
            "SELECT customer, n, spent FROM customer_totals ORDER BY customer")],
            [("ann", 2, Decimal("12.25")), ("bob", 2, Decimal("6.50")), ("cy", 1, Decimal("7.00"))])
        check("matview: read with a parameter", tuple(await conn.fetchrow(
            "SELECT n, spent FROM customer_totals WHERE customer = $1", "bob")), (2, Decimal("6.50")))
        stmt = await conn.prepare("SELECT * FROM customer_totals")
        check("matview: attributes", [(a.name, a.type.name) for a in stmt.get_attributes()],
              [("customer", "text"), ("n", "int8"), ("spent", "numeric")])


async def teardown(server):
    async with connected(server) as conn:
        await conn.execute("DROP MATERIALIZED VIEW IF EXISTS customer_totals")
        await conn.execute("DROP VIEW IF EXISTS big_orders")
        for table in ["items", "prices", "typed", "docs", "people", "accounts", "seq", "bin_stock",
                      "stock", "uniq", "orders"]:
            await conn.execute(f"DROP TABLE IF EXISTS {table}")


SECTIONS = [connect_and_ddl, parameter_types, typed_table, jsonb_codec, executemany_and_prepare,
            transactions, cursors, cursor_forward, copy_binary, copy_text, errors, views, teardown]


async def main():
    host, port = sys.argv[1], int(sys.argv[2])
    user = sys.argv[3] if len(sys.argv) > 3 else "test"
    dbname = sys.argv[4] if len(sys.argv) > 4 else "freshet"
    schema = sys.argv[5] if len(sys.argv) > 5 else None
    server = Server(host, port, user, dbname, schema)
    if schema:
        admin = Server(host, port, user, dbname, None)
        async with connected(admin) as conn:
            await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            await conn.execute(f"CREATE SCHEMA {schema}")
    try:
        for section in SECTIONS:
            try:
                await asyncio.wait_for(section(server), SECTION_TIMEOUT)
            except Exception as e:  # report and go on with the next section
                fail(f"section {section.__name__}", f"raised {type(e).__name__}: {e}")
                traceback.print_exc()
    finally:
        if schema:
            async with connected(admin) as conn:
                await conn.execute(f"DROP SCHEMA {schema} CASCADE")
    if FAILURES:
        print(f"FAILED {len(FAILURES)}: {', '.join(FAILURES)}", flush=True)
        sys.exit(1)
    print("ALL OK", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
