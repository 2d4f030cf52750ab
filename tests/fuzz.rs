//! sqlsmith against the real binary: thousands of random queries and DML
//! statements, built from what the server's own catalogs say (types, tables,
//! columns, operators, functions), over a schema with tables of most types,
//! a materialized view and a plain view. Most statements fail (functions and
//! types PostgreSQL has and Freshet lacks). What must hold: the server
//! process stays up and answers on old and new sessions, no statement
//! panics inside it (a caught panic is an XX000 for that statement, and a
//! bug), and the view still follows writes made after the run. (sqlsmith
//! rolls back each statement it sends and reconnects if a session breaks,
//! so neither its exit status nor the view's contents alone would tell.)
//!
//! `.ci/run` installs sqlsmith (Debian). Without it the test prints
//! "SKIPPED" and passes, unless FRESHET_REQUIRE_CLIENTS=1 (set by CI).
//! `FRESHET_FUZZ_QUERIES` (default 3,000) and `FRESHET_FUZZ_SEED` choose
//! the run.

mod common;

use std::process::Command;
use std::time::Duration;

use common::process::{Scratch, Server, exec, rows};

const SCHEMA: &str = "
    CREATE TABLE orders (id bigint PRIMARY KEY, customer text, amount numeric(10,2),
        placed date, at timestamptz, note varchar(20), flag boolean);
    CREATE TABLE events (k int, v double precision, tag text, payload jsonb, seen time);
    CREATE TABLE tiny (a smallint, b real, c bytea, d interval, e uuid);
    INSERT INTO orders VALUES
        (1, 'ann', 10.50, '2024-01-02', '2024-01-02 03:04:05+00', 'first', true),
        (2, 'bob', 5, '2023-12-31', '2024-06-01 00:00:00+02', NULL, false),
        (3, NULL, NULL, NULL, NULL, 'x', NULL);
    INSERT INTO events VALUES (1, 1.5, 'a', '{\"x\": 1}', '10:00'), (2, NULL, NULL, NULL, NULL),
        (1, -2.25, 'b', '[1, 2]', '23:59:59.5');
    INSERT INTO tiny VALUES (1, 0.5, '\\x0102', '1 day 2 hours',
        'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'), (NULL, NULL, NULL, NULL, NULL);
    CREATE MATERIALIZED VIEW spend AS
        SELECT customer, count(*) AS n, sum(amount) AS total FROM orders GROUP BY customer;
    CREATE VIEW recent AS SELECT id, customer FROM orders WHERE placed > '2024-01-01';
";

/// The view's query as a plain SELECT, in a canonical order.
const SPEND: &str = "SELECT customer, count(*) AS n, sum(amount) AS total FROM orders \
                     GROUP BY customer ORDER BY customer NULLS FIRST";

fn sqlsmith_found() -> bool {
    let found = Command::new("sqlsmith")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        assert!(
            std::env::var("FRESHET_REQUIRE_CLIENTS").as_deref() != Ok("1"),
            "sqlsmith not found, and FRESHET_REQUIRE_CLIENTS=1 requires it \
             (apt-get install sqlsmith)"
        );
        eprintln!("\n*** SKIPPED: sqlsmith not found (apt-get install sqlsmith) ***\n");
        println!("SKIPPED: sqlsmith not found");
    }
    found
}

fn setting(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlsmith_queries_leave_the_server_and_its_views_standing() {
    if !sqlsmith_found() {
        return;
    }
    let scratch = Scratch::new("fuzz");
    let server = Server::start(&scratch).await;
    let client = server.connect().await;
    exec(&client, SCHEMA).await;

    let target = format!("{} dbname=postgres", server.url());
    let queries = setting("FRESHET_FUZZ_QUERIES", "3000");
    let seed = setting("FRESHET_FUZZ_SEED", "7");
    let run = tokio::task::spawn_blocking(move || {
        Command::new("sqlsmith")
            .arg(format!("--target={target}"))
            .arg(format!("--max-queries={queries}"))
            .arg(format!("--seed={seed}"))
            .arg("--verbose")
            .output()
    });
    let output = tokio::time::timeout(Duration::from_secs(1500), run)
        .await
        .expect("sqlsmith finishes within 25 minutes")
        .expect("the sqlsmith task runs")
        .expect("sqlsmith starts");
    let report = String::from_utf8_lossy(&output.stderr);
    let tail: String = report
        .chars()
        .rev()
        .take(4000)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    // sqlsmith stops with an error when its connection breaks; it returns
    // success only after every query got an answer, an error or rows.
    assert!(
        output.status.success(),
        "sqlsmith failed ({}):\n{tail}\n\nserver log:\n{}",
        output.status,
        server.log_text()
    );
    assert!(
        report.contains("queries: "),
        "sqlsmith ran no queries:\n{tail}"
    );

    // The server still answers, on a new session and the old one.
    let after = server.connect().await;
    assert_eq!(rows(&after, "SELECT 1 + 1").await, vec!["2"]);
    assert_eq!(
        rows(&client, "SELECT 'still here'").await,
        vec!["still here"]
    );
    let log = server.log_text();
    let panics: Vec<&str> = log.lines().filter(|l| l.contains("panicked")).collect();
    assert!(
        panics.is_empty(),
        "statements panicked in the server:\n{}",
        panics.join("\n")
    );
    // The view follows writes made after the run, from whatever the run left.
    exec(
        &after,
        "INSERT INTO orders SELECT g + 1000, 'fuzz', g, NULL, NULL, NULL, NULL \
         FROM generate_series(1, 5) AS s(g); \
         DELETE FROM orders WHERE id = 1003; UPDATE orders SET customer = 'cy' WHERE id = 1004; FLUSH",
    )
    .await;
    let view = rows(
        &after,
        "SELECT customer, n, total FROM spend ORDER BY customer NULLS FIRST",
    )
    .await;
    assert_eq!(
        view,
        rows(&after, SPEND).await,
        "spend diverged from its query"
    );
    assert!(
        view.iter().any(|r| r == "fuzz|3|8.00"),
        "the writes after the run are not in the view: {view:?}"
    );
}
