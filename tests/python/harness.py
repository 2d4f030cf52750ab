"""What the psycopg scripts share: recording checks, and running a script's
sections against the server named on the command line:

    python3 SCRIPT HOST PORT [USER [DBNAME [SCHEMA]]]

Each check prints "ok <check>" or "FAIL <check>: ..."; a section that raises
is reported and the next one runs. The run ends with "ALL OK" and exit
status 0, or "FAILED n" and exit status 1. With SCHEMA the sections work in
that schema, created first (dropping any left from an earlier run) and
dropped at the end: how a script is checked against PostgreSQL 15.
"""

import sys
import traceback

import psycopg

FAILURES = []


def check(name, actual, expected):
    if actual == expected:
        print(f"ok {name}", flush=True)
    else:
        fail(name, f"expected {expected!r}, got {actual!r}")


def expect_sqlstate(name, conn, sql, sqlstate):
    """Runs `sql` on `conn` (a connection or cursor): it must fail with `sqlstate`."""
    try:
        conn.execute(sql)
    except psycopg.Error as e:
        check(name, e.sqlstate, sqlstate)
        return
    fail(name, "no error")


def fail(name, why):
    FAILURES.append(name)
    print(f"FAIL {name}: {why}", flush=True)


def run(sections):
    host, port = sys.argv[1], int(sys.argv[2])
    user = sys.argv[3] if len(sys.argv) > 3 else "test"
    dbname = sys.argv[4] if len(sys.argv) > 4 else "freshet"
    schema = sys.argv[5] if len(sys.argv) > 5 else None
    dsn = f"host={host} port={port} user={user} dbname={dbname} connect_timeout=10"
    if schema:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            conn.execute(f"CREATE SCHEMA {schema}")
        dsn += f" options='-c search_path={schema}'"
    try:
        for section in sections:
            try:
                section(dsn)
            except Exception as e:  # report and go on with the next section
                fail(f"section {section.__name__}", f"raised {type(e).__name__}: {e}")
                traceback.print_exc()
    finally:
        if schema:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA {schema} CASCADE")
    if FAILURES:
        print(f"FAILED {len(FAILURES)}: {', '.join(FAILURES)}", flush=True)
        sys.exit(1)
    print("ALL OK", flush=True)
