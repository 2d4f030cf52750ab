#!/usr/bin/env python3
"""Checks the expected values of .slt files against PostgreSQL.

    python3 sql-tests/check_postgres.py sql-tests/mv/aggregate.slt ...

Runs each record against the PostgreSQL at 127.0.0.1:5432 (database test,
user postgres, in a scratch schema `slt` dropped first), with every
materialized view created as a plain view and FLUSH and Freshet's own
settings skipped, and prints each record whose expected rows or SQLSTATE
differ from PostgreSQL's. Records under `onlyif freshet` are skipped. Needs
psycopg 3. Floats, numerics, dates, times and arrays are compared in
PostgreSQL's text form; `rowsort` and `valuesort` sort both sides."""
import re
import sys

import psycopg
from psycopg.adapt import Loader


class TextLoader(Loader):
    def load(self, data):
        return bytes(data).decode()


def fmt(v):
    if v is None:
        return "NULL"
    if v is True:
        return "t"
    if v is False:
        return "f"
    s = str(v)
    if s == "":
        return "(empty)"
    return s


def records(text):
    out, cur = [], []
    for line in text.split("\n"):
        if line.strip() == "":
            if cur:
                out.append(cur)
                cur = []
        else:
            cur.append(line)
    if cur:
        out.append(cur)
    return out


def main(path):
    conn = psycopg.connect("host=127.0.0.1 user=postgres dbname=test", autocommit=True)
    for oid in (700, 701, 1700, 1082, 1083, 1114, 1184, 1186, 1266, 114, 3802, 17, 1005, 1007, 1016, 1009, 1021, 1022, 1231):
        conn.adapters.register_loader(oid, TextLoader)
    conn.execute("DROP SCHEMA IF EXISTS slt CASCADE")
    conn.execute("CREATE SCHEMA slt")
    conn.execute("SET search_path = slt, public")
    bad = 0
    skip_next = False
    for rec in records(open(path).read()):
        lines = [l for l in rec if not l.startswith("#")]
        if not lines:
            continue
        if lines[0].startswith("onlyif freshet") or lines[0].startswith("skipif postgres"):
            continue
        if lines[0].startswith("onlyif") or lines[0].startswith("skipif"):
            lines = lines[1:]
        head = lines[0]
        if head.startswith("statement"):
            sql = "\n".join(lines[1:])
            expect_err = head.startswith("statement error")
            m = re.search(r"\((\w{5})\)", head)
            code = m.group(1) if m else None
        elif head.startswith("query"):
            if "----" in lines:
                i = lines.index("----")
                sql = "\n".join(lines[1:i])
                expected = lines[i + 1:]
            else:
                sql = "\n".join(lines[1:])
                expected = []
            expect_err = head.startswith("query error")
            m = re.search(r"\((\w{5})\)", head)
            code = m.group(1) if m else None
        else:
            continue
        if re.match(r"^\s*FLUSH\s*;?\s*$", sql, re.I) or re.match(r"^\s*SET\s+(epoch_interval|implicit_flush|backfill)", sql, re.I):
            continue
        pg_sql = re.sub(r"CREATE\s+MATERIALIZED\s+VIEW", "CREATE VIEW", sql, flags=re.I)
        pg_sql = re.sub(r"DROP\s+MATERIALIZED\s+VIEW", "DROP VIEW", pg_sql, flags=re.I)
        try:
            cur = conn.execute(pg_sql)
            rows = cur.fetchall() if cur.description else []
            err = None
        except psycopg.Error as e:
            err = e
            rows = []
        if expect_err:
            if err is None:
                bad += 1
                print(f"--- expected error, PG succeeded:\n{sql}\n")
            elif code and err.sqlstate != code:
                bad += 1
                print(f"--- SQLSTATE {code} expected, PG gave {err.sqlstate}: {err}\n{sql}\n")
            continue
        if err is not None:
            bad += 1
            print(f"--- PG error {err.sqlstate}: {err}\n{sql}\n")
            continue
        if head.startswith("query"):
            got = [" ".join(fmt(v) for v in r) for r in rows]
            exp = expected
            if "rowsort" in head:
                got = sorted(got)
                exp = sorted(exp)
            if "valuesort" in head:
                got = sorted(v for r in got for v in r.split(" "))
                exp = sorted(v for r in exp for v in r.split(" "))
            if got != exp:
                bad += 1
                print(f"--- mismatch:\n{sql}\nexpected:\n" + "\n".join(exp) + "\nPG:\n" + "\n".join(got) + "\n")
    print(f"{path}: {bad} differences")


if __name__ == "__main__":
    for p in sys.argv[1:]:
        main(p)
