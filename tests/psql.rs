//! The real `psql` against an in-process server: scripts, `-c` commands,
//! the `\d` family, and ON_ERROR_STOP. Expected output is what psql prints
//! against PostgreSQL 15 for the same input.
//!
//! Without `psql` on the PATH these tests print "SKIPPED" and pass, unless
//! FRESHET_REQUIRE_CLIENTS=1 (set by CI), where they fail.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use common::TestServer;

/// Whether psql can run here; fails the test when clients are required.
fn psql_available() -> bool {
    let found = Command::new("psql")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        if std::env::var("FRESHET_REQUIRE_CLIENTS").as_deref() == Ok("1") {
            panic!("psql not found, and FRESHET_REQUIRE_CLIENTS=1 requires it");
        }
        eprintln!(
            "\n*** SKIPPED: psql not found (install the PostgreSQL client to run this test) ***\n"
        );
        println!("SKIPPED: psql not found");
    }
    found
}

/// Runs psql against `server` with `args` appended to the connection
/// options, off the async runtime so the in-process server keeps serving.
async fn psql(server: &TestServer, args: &[&str]) -> Output {
    let mut command = Command::new("psql");
    command
        .args(["-X", "-v", "ON_ERROR_STOP=1", "-h"])
        .arg(server.addr.ip().to_string())
        .arg("-p")
        .arg(server.addr.port().to_string())
        .args(["-U", "test", "-d", "freshet"])
        .args(args)
        .env("PGCONNECT_TIMEOUT", "10")
        .env("PGTZ", "UTC")
        .env("LC_ALL", "C")
        .env_remove("PGOPTIONS")
        .env_remove("PGPASSWORD")
        .env_remove("PGSERVICE");
    tokio::task::spawn_blocking(move || command.output().expect("psql runs"))
        .await
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn assert_success(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what}: psql exited with {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        stdout(output),
        stderr(output)
    );
}

/// Writes `text` to a fresh file under the temp directory.
fn script(text: &str) -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let path = std::env::temp_dir().join(format!(
        "freshet-psql-{}-{}.sql",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, text).unwrap();
    path
}

const ORDERS_SCRIPT: &str = "\
CREATE TABLE orders (id bigint PRIMARY KEY, customer text NOT NULL, amount numeric(10,2), placed date);
INSERT INTO orders VALUES (1, 'ada', 12.50, '2024-01-02'), (2, 'bob', 3.20, '2024-01-03'), (3, 'cy', NULL, NULL);
INSERT INTO orders (id, customer, amount) VALUES (4, 'dee', 100);
UPDATE orders SET amount = amount * 2 WHERE customer = 'bob';
DELETE FROM orders WHERE id = 3;
SELECT id, customer, amount, placed FROM orders ORDER BY id;
SELECT customer, amount FROM orders WHERE amount > 10 ORDER BY customer;
SELECT count(*) AS n, sum(amount) AS total FROM orders;
";

/// psql's output for ORDERS_SCRIPT against PostgreSQL 15.
const ORDERS_OUTPUT: &str = "\
CREATE TABLE
INSERT 0 3
INSERT 0 1
UPDATE 1
DELETE 1
 id | customer | amount |   placed   
----+----------+--------+------------
  1 | ada      |  12.50 | 2024-01-02
  2 | bob      |   6.40 | 2024-01-03
  4 | dee      | 100.00 | 
(3 rows)

 customer | amount 
----------+--------
 ada      |  12.50
 dee      | 100.00
(2 rows)

 n | total  
---+--------
 3 | 118.90
(1 row)

";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_runs_a_script_and_prints_what_postgres_prints() {
    if !psql_available() {
        return;
    }
    let server = TestServer::start().await;
    let file = script(ORDERS_SCRIPT);
    let output = psql(&server, &["-f", file.to_str().unwrap()]).await;
    let _ = std::fs::remove_file(&file);
    assert_success(&output, "script");
    assert_eq!(
        stdout(&output),
        ORDERS_OUTPUT,
        "stderr:\n{}",
        stderr(&output)
    );
    assert_eq!(stderr(&output), "");

    // The rows are really there for another client.
    let client = server.connect().await;
    let rows = client
        .query("SELECT id, customer FROM orders ORDER BY id", &[])
        .await
        .unwrap();
    let got: Vec<(i64, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        got,
        vec![
            (1, "ada".to_string()),
            (2, "bob".to_string()),
            (4, "dee".to_string())
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_runs_dash_c_commands_in_one_session() {
    if !psql_available() {
        return;
    }
    let server = TestServer::start().await;
    let output = psql(
        &server,
        &[
            "-A",
            "-t",
            "-c",
            "CREATE TABLE kv (k text PRIMARY KEY, v int)",
            "-c",
            "INSERT INTO kv VALUES ('a', 1), ('b', 2), ('c', 3)",
            "-c",
            "SET application_name = 'from-psql'",
            "-c",
            "SHOW application_name",
            "-c",
            "UPDATE kv SET v = v * 10 WHERE k <> 'b'",
            "-c",
            "SELECT k, v FROM kv ORDER BY k",
        ],
    )
    .await;
    assert_success(&output, "-c commands");
    assert_eq!(
        stdout(&output),
        "CREATE TABLE\nINSERT 0 3\nSET\nfrom-psql\nUPDATE 2\na|10\nb|2\nc|30\n"
    );
    // A query with psql variables and \gset, the way scripts use them.
    let file = script(
        "\\set wanted 30\n\
         SELECT k AS found FROM kv WHERE v = :wanted \\gset\n\
         \\echo found :found\n\
         SELECT :'found' || '!' AS shout;\n",
    );
    let output = psql(&server, &["-A", "-t", "-f", file.to_str().unwrap()]).await;
    let _ = std::fs::remove_file(&file);
    assert_success(&output, "variables");
    assert_eq!(stdout(&output), "found c\nc!\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_describe_commands_list_tables() {
    if !psql_available() {
        return;
    }
    let server = TestServer::start().await;
    let setup = psql(
        &server,
        &[
            "-c",
            "CREATE TABLE alpha (id bigint PRIMARY KEY, name text NOT NULL)",
            "-c",
            "CREATE TABLE beta (x int, y double precision, z boolean)",
        ],
    )
    .await;
    assert_success(&setup, "setup");

    let output = psql(&server, &["-c", "\\d"]).await;
    assert_success(&output, "\\d");
    let text = stdout(&output);
    assert!(text.contains("List of relations"), "{text}");
    for table in ["alpha", "beta"] {
        assert!(
            text.lines().any(|l| l.contains(" public ")
                && l.contains(&format!(" {table} "))
                && l.contains(" table ")),
            "\\d should list {table}:\n{text}"
        );
    }
    assert!(text.contains("(2 rows)"), "{text}");

    let output = psql(&server, &["-c", "\\dt"]).await;
    assert_success(&output, "\\dt");
    let text = stdout(&output);
    assert!(
        text.contains(" alpha ") && text.contains(" beta "),
        "{text}"
    );

    let output = psql(&server, &["-c", "\\d alpha"]).await;
    assert_success(&output, "\\d alpha");
    let text = stdout(&output);
    assert!(text.contains("Table \"public.alpha\""), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with(" id ") && l.contains("bigint") && l.contains("not null")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with(" name ") && l.contains("text") && l.contains("not null")),
        "{text}"
    );

    let output = psql(&server, &["-c", "\\d beta"]).await;
    assert_success(&output, "\\d beta");
    let text = stdout(&output);
    for (column, ty) in [
        ("x", "integer"),
        ("y", "double precision"),
        ("z", "boolean"),
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!(" {column} ")) && l.contains(ty)),
            "\\d beta should show {column} {ty}:\n{text}"
        );
    }

    // \d of a table that does not exist: psql's own message, exit status 1.
    let output = psql(&server, &["-c", "\\d no_such_table"]).await;
    assert!(
        stderr(&output).contains("Did not find any relation named \"no_such_table\""),
        "stderr:\n{}",
        stderr(&output)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "known gap (docs/architecture.md): pg_table_is_visible ignores search_path"]
async fn psql_describe_follows_the_search_path() {
    if !psql_available() {
        return;
    }
    let server = TestServer::start().await;
    let setup = psql(
        &server,
        &[
            "-c",
            "CREATE TABLE alpha (id int)",
            "-c",
            "CREATE SCHEMA sales",
            "-c",
            "CREATE TABLE sales.gamma (k int)",
        ],
    )
    .await;
    assert_success(&setup, "setup");
    // Like PostgreSQL: \dt lists what the search path (public) shows.
    let output = psql(&server, &["-c", "\\dt"]).await;
    assert_success(&output, "\\dt");
    let text = stdout(&output);
    assert!(text.contains(" alpha "), "{text}");
    assert!(
        !text.contains("gamma"),
        "sales.gamma is not on the search path:\n{text}"
    );
    // A pattern names the other schema.
    let output = psql(&server, &["-c", "\\dt sales.*"]).await;
    assert_success(&output, "\\dt sales.*");
    let text = stdout(&output);
    assert!(
        text.lines()
            .any(|l| l.contains(" sales ") && l.contains(" gamma ")),
        "{text}"
    );
    assert!(!text.contains("alpha"), "{text}");
    let output = psql(&server, &["-c", "\\d sales.gamma"]).await;
    assert_success(&output, "\\d sales.gamma");
    assert!(
        stdout(&output).contains("Table \"sales.gamma\""),
        "{}",
        stdout(&output)
    );
    // \dn lists the schemas.
    let output = psql(&server, &["-c", "\\dn"]).await;
    assert_success(&output, "\\dn");
    let text = stdout(&output);
    assert!(
        text.lines().any(|l| l.trim_start().starts_with("public ")),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.trim_start().starts_with("sales ")),
        "{text}"
    );
}

async fn describe_typed_table(server: &TestServer) -> String {
    let setup = psql(
        server,
        &[
            "-c",
            "CREATE SCHEMA sales",
            "-c",
            "CREATE TABLE sales.typed (id bigint PRIMARY KEY, name varchar(20) NOT NULL, \
             amount numeric(10,2), doc jsonb, j json, at timestamptz, raw bytea)",
        ],
    )
    .await;
    assert_success(&setup, "setup");
    let output = psql(server, &["-c", "\\d sales.typed"]).await;
    assert_success(&output, "\\d sales.typed");
    stdout(&output)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_describe_shows_declared_types() {
    if !psql_available() {
        return;
    }
    let server = TestServer::start().await;
    let text = describe_typed_table(&server).await;
    // What PostgreSQL 15 prints, up to the index footer.
    let expected = "                        Table \"sales.typed\"
 Column |           Type           | Collation | Nullable | Default 
--------+--------------------------+-----------+----------+---------
 id     | bigint                   |           | not null | 
 name   | character varying(20)    |           | not null | 
 amount | numeric(10,2)            |           |          | 
 doc    | jsonb                    |           |          | 
 j      | json                     |           |          | 
 at     | timestamp with time zone |           |          | 
 raw    | bytea                    |           |          | 
";
    assert!(
        text.starts_with(expected),
        "expected:\n{expected}\ngot:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "known gap (docs/architecture.md): pg_index and pg_constraint do not list primary keys"]
async fn psql_describe_lists_the_primary_key() {
    if !psql_available() {
        return;
    }
    let server = TestServer::start().await;
    let text = describe_typed_table(&server).await;
    assert!(
        text.contains("\"typed_pkey\" PRIMARY KEY"),
        "\\d should list the primary key:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_stops_at_the_first_error() {
    if !psql_available() {
        return;
    }
    let server = TestServer::start().await;
    let file = script(
        "CREATE TABLE steps (n int PRIMARY KEY);\n\
         INSERT INTO steps VALUES (1);\n\
         SELECT * FROM no_such_table;\n\
         INSERT INTO steps VALUES (2);\n",
    );
    let output = psql(&server, &["-f", file.to_str().unwrap()]).await;
    let _ = std::fs::remove_file(&file);
    // psql exits with 3 when ON_ERROR_STOP stops a script.
    assert_eq!(
        output.status.code(),
        Some(3),
        "stderr:\n{}",
        stderr(&output)
    );
    let err = stderr(&output);
    assert!(
        err.contains(":3: ERROR:  relation \"no_such_table\" does not exist"),
        "stderr:\n{err}"
    );
    assert_eq!(stdout(&output), "CREATE TABLE\nINSERT 0 1\n");

    // A failing -c command: exit status 1, the error on stderr.
    let output = psql(&server, &["-c", "INSERT INTO steps VALUES (1)"]).await;
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("ERROR:  duplicate key value violates unique constraint \"steps_pkey\""),
        "stderr:\n{err}"
    );
    assert!(
        err.contains("DETAIL:  Key (n)=(1) already exists."),
        "stderr:\n{err}"
    );

    let output = psql(&server, &["-c", "SELEC 1"]).await;
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("ERROR:  syntax error at or near \"SELEC\""),
        "stderr:\n{err}"
    );
    // psql draws the caret under the position the server reports.
    assert!(err.contains("LINE 1: SELEC 1\n        ^"), "stderr:\n{err}");

    // The script stopped before its last INSERT.
    let client = server.connect().await;
    let rows = client
        .query("SELECT n FROM steps ORDER BY n", &[])
        .await
        .unwrap();
    let got: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(got, vec![1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_lists_and_describes_materialized_views() {
    if !psql_available() {
        return;
    }
    let server = TestServer::start().await;
    let setup = psql(
        &server,
        &[
            "-c",
            "CREATE TABLE orders (id bigint PRIMARY KEY, customer text NOT NULL, \
             amount numeric(10,2), placed date)",
            "-c",
            "INSERT INTO orders VALUES (1, 'ada', 12.50, '2024-01-02'), (2, 'bob', 3.20, NULL)",
            "-c",
            "CREATE MATERIALIZED VIEW totals (who, n, total) AS \
             SELECT customer, count(*), sum(amount) FROM orders GROUP BY customer",
            "-c",
            "CREATE MATERIALIZED VIEW recent AS \
             SELECT id, customer, placed FROM orders WHERE placed IS NOT NULL",
        ],
    )
    .await;
    assert_success(&setup, "setup");

    // What PostgreSQL 15 prints for the same objects.
    let output = psql(&server, &["-c", "\\dm"]).await;
    assert_success(&output, "\\dm");
    assert_eq!(
        stdout(&output),
        "               List of relations
 Schema |  Name  |       Type        |  Owner   
--------+--------+-------------------+----------
 public | recent | materialized view | postgres
 public | totals | materialized view | postgres
(2 rows)

"
    );
    // \d lists tables and materialized views together.
    let output = psql(&server, &["-c", "\\d"]).await;
    assert_success(&output, "\\d");
    let text = stdout(&output);
    assert!(
        text.lines()
            .any(|l| l.contains(" orders ") && l.contains(" table ")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains(" totals ") && l.contains(" materialized view ")),
        "{text}"
    );
    assert!(text.contains("(3 rows)"), "{text}");

    let output = psql(&server, &["-c", "\\d totals"]).await;
    assert_success(&output, "\\d totals");
    assert_eq!(
        stdout(&output),
        "         Materialized view \"public.totals\"
 Column |  Type   | Collation | Nullable | Default 
--------+---------+-----------+----------+---------
 who    | text    |           |          | 
 n      | bigint  |           |          | 
 total  | numeric |           |          | 

"
    );
    let output = psql(&server, &["-c", "\\d recent"]).await;
    assert_success(&output, "\\d recent");
    assert_eq!(
        stdout(&output),
        "         Materialized view \"public.recent\"
  Column  |  Type  | Collation | Nullable | Default 
----------+--------+-----------+----------+---------
 id       | bigint |           |          | 
 customer | text   |           |          | 
 placed   | date   |           |          | 

"
    );
    // A pattern selects, and a dropped view is gone from the listing.
    let output = psql(
        &server,
        &[
            "-A",
            "-t",
            "-c",
            "\\dm tot*",
            "-c",
            "DROP MATERIALIZED VIEW recent",
            "-c",
            "\\dm",
        ],
    )
    .await;
    assert_success(&output, "\\dm after DROP");
    assert_eq!(
        stdout(&output),
        "public|totals|materialized view|postgres\nDROP MATERIALIZED VIEW\n\
         public|totals|materialized view|postgres\n"
    );
}
