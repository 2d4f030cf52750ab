//! Python's psycopg 3 against an in-process server: runs
//! `tests/python/psycopg_smoke.py HOST PORT` and checks its exit status and
//! report. The script holds the checks (types, parameters, error classes,
//! autocommit, transactions and their rollback, a materialized view read
//! after FLUSH); see its docstring.
//!
//! Without python3 and psycopg these tests print "SKIPPED" and pass, unless
//! FRESHET_REQUIRE_CLIENTS=1 (set by CI), where they fail.

mod common;

use std::process::Command;

use common::TestServer;

fn python() -> String {
    std::env::var("FRESHET_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// Whether python3 with psycopg 3 can run here; fails the test when clients
/// are required.
fn psycopg_available() -> bool {
    let found = Command::new(python())
        .args([
            "-c",
            "import psycopg, sys; sys.exit(0 if psycopg.__version__ >= '3' else 1)",
        ])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        if std::env::var("FRESHET_REQUIRE_CLIENTS").as_deref() == Ok("1") {
            panic!(
                "python3 with psycopg 3 not found, and FRESHET_REQUIRE_CLIENTS=1 requires it \
                 (python3 -m pip install \"psycopg[binary]\")"
            );
        }
        eprintln!(
            "\n*** SKIPPED: psycopg not found (python3 -m pip install \"psycopg[binary]\" to run this test) ***\n"
        );
        println!("SKIPPED: psycopg not found");
    }
    found
}

/// Runs `tests/python/<script> HOST PORT` against `server`: it must exit
/// cleanly, report no FAIL, end with ALL OK and have run at least
/// `checks` checks (a script that stopped early has fewer "ok" lines).
async fn run_script(server: &TestServer, script: &str, checks: usize) {
    let path = format!("{}/tests/python/{script}", env!("CARGO_MANIFEST_DIR"));
    let mut command = Command::new(python());
    command
        .arg(path)
        .arg(server.addr.ip().to_string())
        .arg(server.addr.port().to_string())
        .env_remove("PGOPTIONS")
        .env("PGTZ", "UTC");
    let output = tokio::task::spawn_blocking(move || command.output().expect("python3 runs"))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let failures: Vec<&str> = stdout.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert!(
        output.status.success() && failures.is_empty(),
        "{script} exited with {:?}; failed checks:\n{}\n\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status.code(),
        failures.join("\n")
    );
    assert_eq!(stdout.lines().last(), Some("ALL OK"), "stdout:\n{stdout}");
    let passed = stdout.lines().filter(|l| l.starts_with("ok ")).count();
    assert!(passed >= checks, "only {passed} checks ran:\n{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psycopg_smoke_script_passes() {
    if !psycopg_available() {
        return;
    }
    let server = TestServer::start().await;
    // The script's checks all ran (a script that stopped early would have
    // fewer "ok" lines).
    run_script(&server, "psycopg_smoke.py", 63).await;

    // What the script committed is there for another client.
    let client = server.connect().await;
    let rows = client
        .query("SELECT id, name FROM people ORDER BY id", &[])
        .await
        .unwrap();
    let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    let expected: Vec<i64> = [1, 2, 20, 21].into_iter().chain(30..40).collect();
    assert_eq!(ids, expected);
    // Only what the script committed reached the ledger and its view.
    let ledger: Vec<(i32, String)> = client
        .query("SELECT id, owner FROM ledger ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        ledger,
        vec![
            (1, "ann".to_string()),
            (2, "cy".to_string()),
            (3, "bob".to_string()),
            (7, "bob".to_string())
        ]
    );
    let totals: Vec<(String, i64)> = client
        .query("SELECT owner, n FROM ledger_totals ORDER BY owner", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        totals,
        vec![
            ("ann".to_string(), 1),
            ("bob".to_string(), 2),
            ("cy".to_string(), 1)
        ]
    );
}

/// psycopg 3's COPY (`tests/python/psycopg_copy.py`): `write_row`,
/// `rows()`/`read_row()` with `set_types`, raw CSV `write()`, errors and
/// transactions, as psycopg gives them against PostgreSQL 15.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psycopg_copy_script_passes() {
    if !psycopg_available() {
        return;
    }
    let server = TestServer::start().await;
    // All of the script's checks ran (39 against PostgreSQL 15).
    run_script(&server, "psycopg_copy.py", 39).await;

    // What the script's COPYs wrote is there for another client, and what
    // it rejected or rolled back is not.
    let client = server.connect().await;
    let ids: Vec<i32> = client
        .query("SELECT id FROM items ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids, vec![1, 2, 3, 4, 5, 10, 11, 12, 13, 14]);
    let notes: Vec<Option<String>> = client
        .query(
            "SELECT note FROM items WHERE id IN (1, 2, 3) ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        notes,
        vec![
            Some("tab\there".to_string()),
            Some("line one\nline two \\ back".to_string()),
            None
        ]
    );
    let bulk = client
        .query_one("SELECT count(*), sum(id)::text FROM bulk", &[])
        .await
        .unwrap();
    assert_eq!(
        (bulk.get::<_, i64>(0), bulk.get::<_, String>(1)),
        (20_000, "199990000".to_string())
    );
    let ledger: Vec<(i32, String)> = client
        .query("SELECT id, amount::text FROM ledger ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        ledger,
        vec![(3, "7.25".to_string()), (4, "0.75".to_string())]
    );
}

/// psycopg 3's nested `conn.transaction()` blocks and explicit savepoints
/// in both protocols, with the status the driver sees after each step,
/// jsonb parameters and results, and upserts with parameters
/// (`tests/python/psycopg_savepoints.py`), as psycopg gives them against
/// PostgreSQL 15.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psycopg_savepoints_script_passes() {
    if !psycopg_available() {
        return;
    }
    let server = TestServer::start().await;
    // All of the script's checks ran (34 against PostgreSQL 15).
    run_script(&server, "psycopg_savepoints.py", 34).await;
}

/// psycopg 3's server-side cursors (`conn.cursor(name)`: DECLARE with
/// parameters, Describe of the cursor's portal, FETCH FORWARD, MOVE, scroll,
/// NO SCROLL, WITH HOLD, binary rows) and SQL DECLARE/FETCH/MOVE/CLOSE
/// (`tests/python/psycopg_cursors.py`), as psycopg gives them against
/// PostgreSQL 15.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psycopg_cursors_script_passes() {
    if !psycopg_available() {
        return;
    }
    let server = TestServer::start().await;
    // All of the script's checks ran (26 against PostgreSQL 15).
    run_script(&server, "psycopg_cursors.py", 26).await;
}
