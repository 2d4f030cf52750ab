//! The client libraries users arrive with, each running its script against
//! a real in-process server: asyncpg, psycopg2, SQLAlchemy 2 with pandas
//! (tests/python), node-postgres (tests/node) and pgJDBC (tests/jdbc). Each
//! script's expectations are what that client gives against PostgreSQL 15;
//! its header says how to check them against one.
//!
//! What Freshet does not do yet is listed per client in its `gaps`, each
//! check with the reason. A test fails when a check outside the list fails,
//! when fewer checks ran than the script has, and also when a listed check
//! passes: the list stays exactly what is still missing (docs/sql.md,
//! "Known differences").
//!
//! `.ci/run` installs the clients (PyPI, npm, Debian's
//! libpostgresql-jdbc-java). Without one, its test prints "SKIPPED" and
//! passes, unless FRESHET_REQUIRE_CLIENTS=1 (set by CI), where it fails.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use common::TestServer;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Whether `probe` runs; fails the test when clients are required.
fn available(what: &str, install: &str, probe: &mut Command) -> bool {
    let found = probe.output().map(|o| o.status.success()).unwrap_or(false);
    if !found {
        if std::env::var("FRESHET_REQUIRE_CLIENTS").as_deref() == Ok("1") {
            panic!("{what} not found, and FRESHET_REQUIRE_CLIENTS=1 requires it ({install})");
        }
        eprintln!("\n*** SKIPPED: {what} not found ({install} to run this test) ***\n");
        println!("SKIPPED: {what} not found");
    }
    found
}

fn python_module(module: &str) -> bool {
    available(
        &format!("python3 with {module}"),
        ".ci/run installs it from PyPI",
        Command::new("python3").args(["-c", &format!("import {module}")]),
    )
}

/// Runs a client script with `HOST PORT test freshet` against `server`.
/// Its checks print `ok <check>` or `FAIL <check>: why`; the ones that fail
/// must be exactly `gaps`, and at least `checks` checks must have run.
async fn run_client(
    mut command: Command,
    server: &TestServer,
    checks: usize,
    gaps: &[(&str, &str)],
) {
    command
        .arg(server.addr.ip().to_string())
        .arg(server.addr.port().to_string())
        .args(["test", "freshet"])
        .env_remove("PGOPTIONS")
        .env("PGTZ", "UTC")
        .env("TZ", "UTC");
    let shown = format!("{command:?}");
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{shown} does not start: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let known: BTreeSet<&str> = gaps.iter().map(|(check, _)| *check).collect();
    // A check's name may hold ": " itself; a known one is recognised whole
    // (the longest that fits: `read_sql_table: columns=` is not `read_sql_table`).
    let failed: BTreeSet<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("FAIL "))
        .map(|l| {
            known
                .iter()
                .filter(|k| {
                    l.strip_prefix(**k)
                        .is_some_and(|rest| rest.starts_with(':'))
                })
                .max_by_key(|k| k.len())
                .copied()
                .unwrap_or(l)
        })
        .collect();
    let new: Vec<&&str> = failed.difference(&known).collect();
    let fixed: Vec<&&str> = known.difference(&failed).collect();
    assert!(
        new.is_empty() && fixed.is_empty(),
        "{shown}\nfailed and not a known gap: {new:?}\nknown gap that passes now (take it off the list): \
         {fixed:?}\n\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let passed = stdout.lines().filter(|l| l.starts_with("ok ")).count();
    assert!(
        passed + failed.len() >= checks,
        "only {passed} checks passed and {} failed, of {checks}:\n{stdout}\nstderr:\n{stderr}",
        failed.len()
    );
}

fn python_script(script: &str) -> Command {
    let mut command = Command::new("python3");
    command.arg(root().join("tests/python").join(script));
    command
}

const NUMERIC_SCALE: &str =
    "an unconstrained numeric prints without trailing zeros, not at each value's own scale";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asyncpg_script() {
    if !python_module("asyncpg") {
        return;
    }
    let server = TestServer::start().await;
    run_client(
        python_script("asyncpg_smoke.py"),
        &server,
        113,
        &[
            (
                "section cursor_forward",
                "MOVE of a protocol portal (asyncpg's cursor.forward) is not supported",
            ),
            (
                "error: syntax (simple)",
                "sqlparser reads `SELECT FROM WHERE` as a table named where",
            ),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psycopg2_script() {
    if !python_module("psycopg2") {
        return;
    }
    let server = TestServer::start().await;
    run_client(
        python_script("psycopg2_smoke.py"),
        &server,
        152,
        &[
            (
                "set_session isolation",
                "BEGIN ISOLATION LEVEL is accepted but not shown by SHOW",
            ),
            (
                "read-only session refuses a write",
                "BEGIN READ ONLY does not refuse writes",
            ),
            (
                "rollback dropped the COPY table",
                "DDL inside a block is not undone by ROLLBACK",
            ),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlalchemy_script() {
    if !python_module("sqlalchemy") || !python_module("pandas") || !python_module("psycopg2") {
        return;
    }
    let server = TestServer::start().await;
    const REFLECTION: &str = "SQLAlchemy's column reflection calls pg_get_serial_sequence, \
                              pg_collation_is_visible and correlated scalar subqueries";
    const PRIMARY_KEYS: &str = "pg_index has no primary keys, and unnest() of int2vector fails";
    const JSON_SUBSCRIPT: &str = "jsonb subscripts (doc['key']) are not supported";
    const FOREIGN_KEYS: &str = "FOREIGN KEY constraints are not supported";
    run_client(
        python_script("sqlalchemy_smoke.py"),
        &server,
        100,
        &[
            ("core select: jsonb element", JSON_SUBSCRIPT),
            ("core select: jsonb path astext", JSON_SUBSCRIPT),
            ("fk: create_all", FOREIGN_KEYS),
            ("fk: insert", FOREIGN_KEYS),
            ("fk: reflected", FOREIGN_KEYS),
            ("fk: violation", FOREIGN_KEYS),
            ("view: get_columns", REFLECTION),
            ("view: autoload and select", REFLECTION),
            ("reflect: get_columns", REFLECTION),
            ("reflect: column defaults", REFLECTION),
            ("reflect: serial default", REFLECTION),
            ("reflect: get_pk_constraint", PRIMARY_KEYS),
            ("reflect: no indexes", PRIMARY_KEYS),
            ("reflect: Table autoload_with", REFLECTION),
            ("to_sql replace again: rows", REFLECTION),
            ("to_sql: column types", REFLECTION),
            ("read_sql_table", REFLECTION),
            ("read_sql_table: columns=", REFLECTION),
            ("psycopg3: get_columns", REFLECTION),
            ("psycopg3: get_pk_constraint", PRIMARY_KEYS),
            ("psycopg3: read_sql_table", REFLECTION),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_postgres_script() {
    let node = root().join("tests/node");
    if !available(
        "node with the pg package",
        "cd tests/node && npm ci",
        Command::new("node")
            .current_dir(&node)
            .args(["-e", "require('pg'); require('pg-cursor')"]),
    ) {
        return;
    }
    let server = TestServer::start().await;
    let mut command = Command::new("node");
    command.current_dir(&node).arg(node.join("pg_smoke.js"));
    run_client(
        command,
        &server,
        160,
        &[
            ("param: numeric is a string", NUMERIC_SCALE),
            (
                "param: bytea length",
                "a binary bytea parameter under a cast is read as text",
            ),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgjdbc_script() {
    let jar = "/usr/share/java/postgresql.jar";
    if !available(
        "java with pgJDBC",
        "apt-get install libpostgresql-jdbc-java",
        Command::new("java").args(["-cp", jar, "-version"]),
    ) || !std::path::Path::new(jar).exists()
    {
        assert!(
            std::env::var("FRESHET_REQUIRE_CLIENTS").as_deref() != Ok("1"),
            "{jar} is missing (apt-get install libpostgresql-jdbc-java)"
        );
        return;
    }
    let server = TestServer::start().await;
    let mut command = Command::new("java");
    command
        .args(["-cp", jar])
        .arg(root().join("tests/jdbc/JdbcSmoke.java"));
    const ROW_ORIGIN: &str = "result columns carry no table oid, column number or type modifier";
    run_client(
        command,
        &server,
        197,
        &[
            ("metadata: numeric precision and scale", ROW_ORIGIN),
            ("metadata: isNullable", ROW_ORIGIN),
            ("metadata: getTableName", ROW_ORIGIN),
            ("server-prepared: metadata", ROW_ORIGIN),
            (
                "batch: failed batch wrote nothing",
                "a pipelined batch before one Sync is not one implicit transaction",
            ),
            (
                "dbmd: getPrimaryKeys",
                "information_schema._pg_expandarray is missing",
            ),
            (
                "dbmd: getPrimaryKeys of a two-column key",
                "information_schema._pg_expandarray is missing",
            ),
            ("dbmd: getImportedKeys", "pg_settings has no max_index_keys"),
        ],
    )
    .await;
}
