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
async fn psql_describe_lists_the_primary_key() {
    if !psql_available() {
        return;
    }
    let server = TestServer::start().await;
    let text = describe_typed_table(&server).await;
    assert!(
        text.ends_with(" raw    | bytea                    |           |          | \nIndexes:\n    \"typed_pkey\" PRIMARY KEY, btree (id)\n\n"),
        "\\d should end with the primary key, as PostgreSQL 15 prints it:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_describe_shows_defaults_and_a_composite_key() {
    if !psql_available() {
        return;
    }
    let server = TestServer::start().await;
    let setup = psql(
        &server,
        &[
            "-c",
            "CREATE TABLE events (region text, seq int, n int DEFAULT 0, at timestamptz DEFAULT now(), \
             PRIMARY KEY (region, seq))",
            "-c",
            "CREATE TABLE loose (v int)",
        ],
    )
    .await;
    assert_success(&setup, "setup");
    let output = psql(&server, &["-c", "\\d events", "-c", "\\d loose"]).await;
    assert_success(&output, "\\d events");
    // What PostgreSQL 15 prints for the same tables.
    let expected = "                       Table \"public.events\"
 Column |           Type           | Collation | Nullable | Default 
--------+--------------------------+-----------+----------+---------
 region | text                     |           | not null | 
 seq    | integer                  |           | not null | 
 n      | integer                  |           |          | 0
 at     | timestamp with time zone |           |          | now()
Indexes:
    \"events_pkey\" PRIMARY KEY, btree (region, seq)

               Table \"public.loose\"
 Column |  Type   | Collation | Nullable | Default 
--------+---------+-----------+----------+---------
 v      | integer |           |          | 

";
    assert_eq!(stdout(&output), expected);
    // \di lists the key's index with its table.
    let output = psql(&server, &["-c", "\\di"]).await;
    assert_success(&output, "\\di");
    let text = stdout(&output);
    assert!(
        text.lines().any(|l| l.contains(" events_pkey ")
            && l.contains(" index ")
            && l.trim_end().ends_with("| events")),
        "{text}"
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

// psql's \copy: a CSV file read with `\copy t FROM 'file'`, rows sent inline
// from the script, and `\copy (SELECT ...) TO STDOUT`, as psql prints them
// against PostgreSQL 15.

/// Writes `text` to a fresh file with `extension` under the temp directory.
fn temp_file(text: &str, extension: &str) -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let path = std::env::temp_dir().join(format!(
        "freshet-psql-copy-{}-{}.{extension}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, text).unwrap();
    path
}

/// Writes a psql script to a fresh file under the temp directory.
const ITEMS_CSV: &str = "id,name,price,added\n\
1,\"Widget, large\",12.50,2024-01-02\n\
2,\"say \"\"cheese\"\"\",0.99,\n\
3,,100,2023-12-31\n\
4,\"two\nlines\",7.125,2024-02-29\n";

/// The script, with FILE standing for the CSV file's path. The `\copy ...
/// FROM STDIN` reads the lines after it, up to `\.`, from the script.
const ITEMS_SCRIPT: &str = "\
CREATE TABLE items (id int PRIMARY KEY, name text, price numeric(8,2), added date);
\\copy items FROM 'FILE' WITH (FORMAT csv, HEADER)
SELECT count(*) AS n, sum(price) AS total FROM items;
\\copy (SELECT id, name, price, added FROM items ORDER BY id) TO STDOUT WITH CSV
\\copy items (id, name) FROM STDIN
5\tfrom the script
6\t\\N
\\.
\\copy (SELECT id, name IS NULL AS no_name, price FROM items WHERE id >= 3 ORDER BY id) TO STDOUT WITH (FORMAT csv, HEADER)
\\copy items TO STDOUT
SELECT id, name, price, added FROM items ORDER BY id;
";

/// psql's output for ITEMS_SCRIPT against PostgreSQL 15. (psql prints no
/// `COPY n` for a `\copy ... TO STDOUT`.)
const ITEMS_OUTPUT: &str = "\
CREATE TABLE
COPY 4
 n | total  
---+--------
 4 | 120.62
(1 row)

1,\"Widget, large\",12.50,2024-01-02
2,\"say \"\"cheese\"\"\",0.99,
3,,100.00,2023-12-31
4,\"two
lines\",7.13,2024-02-29
COPY 2
id,no_name,price
3,t,100.00
4,f,7.13
5,f,
6,t,
1\tWidget, large\t12.50\t2024-01-02
2\tsay \"cheese\"\t0.99\t\\N
3\t\\N\t100.00\t2023-12-31
4\ttwo\\nlines\t7.13\t2024-02-29
5\tfrom the script\t\\N\t\\N
6\t\\N\t\\N\t\\N
 id |      name       | price  |   added    
----+-----------------+--------+------------
  1 | Widget, large   |  12.50 | 2024-01-02
  2 | say \"cheese\"    |   0.99 | 
  3 |                 | 100.00 | 2023-12-31
  4 | two            +|   7.13 | 2024-02-29
    | lines           |        | 
  5 | from the script |        | 
  6 |                 |        | 
(6 rows)

";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_copy_reads_a_csv_file_and_writes_csv_as_postgres_does() {
    if !psql_available() {
        return;
    }
    let server = TestServer::start().await;
    let csv = temp_file(ITEMS_CSV, "csv");
    let file = script(&ITEMS_SCRIPT.replace("FILE", csv.to_str().unwrap()));
    let output = psql(&server, &["-f", file.to_str().unwrap()]).await;
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_file(&csv);
    assert_success(&output, "script");
    assert_eq!(
        stdout(&output),
        ITEMS_OUTPUT,
        "stderr:\n{}",
        stderr(&output)
    );
    assert_eq!(stderr(&output), "");

    // The rows are really there for another client.
    let client = server.connect().await;
    let rows = client
        .query("SELECT id, name, price::text FROM items ORDER BY id", &[])
        .await
        .unwrap();
    let got: Vec<(i32, Option<String>, Option<String>)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let some = |s: &str| Some(s.to_string());
    assert_eq!(
        got,
        vec![
            (1, some("Widget, large"), some("12.50")),
            (2, some("say \"cheese\""), some("0.99")),
            (3, None, some("100.00")),
            (4, some("two\nlines"), some("7.13")),
            (5, some("from the script"), None),
            (6, None, None),
        ]
    );
}

/// A file with a bad line: psql reports PostgreSQL's error and CONTEXT,
/// the script stops (exit status 3), and nothing of the file lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_copy_of_a_bad_file_stops_the_script_and_lands_nothing() {
    if !psql_available() {
        return;
    }
    let server = TestServer::start().await;
    let setup = psql(
        &server,
        &[
            "-c",
            "CREATE TABLE items (id int PRIMARY KEY, name text, price numeric(8,2), added date)",
            "-c",
            "INSERT INTO items VALUES (1, 'kept', 1.00, '2024-01-01')",
        ],
    )
    .await;
    assert_success(&setup, "setup");
    let csv = temp_file(
        "id,name,price,added\n\
         10,ok,1.00,2024-01-01\n\
         11,fine,2.00,2024-01-01\n\
         eleven,bad,3.00,2024-01-01\n\
         13,never,4.00,2024-01-01\n",
        "csv",
    );
    let file = script(&format!(
        "\\copy items FROM '{}' WITH (FORMAT csv, HEADER)\nSELECT 'not reached';\n",
        csv.to_str().unwrap()
    ));
    let output = psql(&server, &["-f", file.to_str().unwrap()]).await;
    let _ = std::fs::remove_file(&csv);
    // psql exits with 3 when ON_ERROR_STOP stops a script.
    assert_eq!(
        output.status.code(),
        Some(3),
        "stdout:\n{}\nstderr:\n{}",
        stdout(&output),
        stderr(&output)
    );
    assert_eq!(stdout(&output), "");
    assert_eq!(
        stderr(&output),
        format!(
            "psql:{}:1: ERROR:  invalid input syntax for type integer: \"eleven\"\n\
             CONTEXT:  COPY items, line 4, column id: \"eleven\"\n",
            file.to_str().unwrap()
        )
    );
    let _ = std::fs::remove_file(&file);

    let count = psql(&server, &["-A", "-t", "-c", "SELECT count(*) FROM items"]).await;
    assert_success(&count, "count");
    assert_eq!(stdout(&count), "1\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_plus_listings_show_sizes() {
    if !psql_available() {
        return;
    }
    let server = TestServer::start().await;
    let setup = psql(
        &server,
        &[
            "-c",
            "CREATE TABLE big (id int PRIMARY KEY, v text)",
            "-c",
            "INSERT INTO big SELECT x, 'value ' || x FROM generate_series(1, 20000) x",
            "-c",
            "CREATE MATERIALIZED VIEW counted AS SELECT count(*) AS n FROM big",
        ],
    )
    .await;
    assert_success(&setup, "setup");
    for (command, name, kind) in [
        ("\\dt+", " big ", " table "),
        ("\\dm+", " counted ", " materialized view "),
        ("\\di+", " big_pkey ", " index "),
    ] {
        let output = psql(&server, &["-c", command]).await;
        assert_success(&output, command);
        let text = stdout(&output);
        let line = text
            .lines()
            .find(|l| l.contains(name) && l.contains(kind))
            .unwrap_or_else(|| panic!("{command} lists{name}:\n{text}"));
        if command == "\\dt+" {
            // 20,000 rows of an int and a short text: hundreds of kB.
            assert!(line.contains(" kB "), "{line}");
        }
    }
}

/// Whether `text` has `line`, with runs of spaces (psql's column padding)
/// read as one.
fn has_line(text: &str, line: &str) -> bool {
    text.lines()
        .any(|l| l.split_whitespace().collect::<Vec<_>>().join(" ") == line)
}

/// `\d+ table` (which reads `pg_class.reloptions` and collects the TOAST
/// table's options with `array(SELECT ... FROM unnest(...))`) shows the
/// columns with storage and the key, as PostgreSQL prints them; `\d+` of
/// a materialized view shows its query.
#[tokio::test]
async fn psql_describe_plus_shows_storage_and_the_key() {
    if !psql_available() {
        return;
    }
    let server = TestServer::start().await;
    let setup = psql(
        &server,
        &[
            "-c",
            "CREATE TABLE t (id int PRIMARY KEY, s text)",
            "-c",
            "CREATE MATERIALIZED VIEW m AS SELECT s, count(*) AS n FROM t GROUP BY s",
            "-c",
            "CREATE SCHEMA sales",
        ],
    )
    .await;
    assert_success(&setup, "setup");
    // Schemas with their (empty) access privileges.
    let output = psql(&server, &["-c", "\\dn+"]).await;
    assert_success(&output, "\\dn+");
    let text = stdout(&output);
    assert!(has_line(&text, "sales | postgres | |"), "{text}");
    // Databases with their size (every table's and view's rows in memory).
    let output = psql(&server, &["-c", "\\l+"]).await;
    assert_success(&output, "\\l+");
    let text = stdout(&output);
    assert!(
        text.lines().any(
            |l| l.trim_start().starts_with("freshet ") && l.contains(" bytes ")
                || l.trim_start().starts_with("freshet ") && l.contains(" kB ")
        ),
        "{text}"
    );
    // A view's definition, from pg_get_viewdef.
    let output = psql(&server, &["-c", "\\d+ m"]).await;
    assert_success(&output, "\\d+ m");
    let text = stdout(&output);
    assert!(
        text.contains("Materialized view \"public.m\"")
            && text.contains("View definition:\n SELECT s, count(*) AS n FROM t GROUP BY s;"),
        "{text}"
    );
    // A view's columns are never NOT NULL in PostgreSQL, count(*) included.
    assert!(has_line(&text, "n | bigint | | | | plain | | |"), "{text}");
    let output = psql(&server, &["-c", "\\d+ t"]).await;
    assert_success(&output, "\\d+ t");
    let text = stdout(&output);
    for expected in [
        "Table \"public.t\"",
        "Column | Type | Collation | Nullable | Default | Storage | Compression | Stats target | Description",
        "id | integer | | not null | | plain | | |",
        "s | text | | | | extended | | |",
        "\"t_pkey\" PRIMARY KEY, btree (id)",
    ] {
        assert!(
            has_line(&text, expected),
            "\\d+ t lacks {expected:?}:\n{text}"
        );
    }
}

/// `\df` (pg_get_function_result and _arguments over pg_proc), `\df+`
/// (pg_get_function_sqlbody, proacl as text) and `\du` (pg_roles, and the
/// correlated `ARRAY(SELECT ...)` of each role's memberships) print what
/// PostgreSQL prints for the same built-in functions and its one role.
#[tokio::test]
async fn psql_lists_functions_and_roles() {
    if !psql_available() {
        return;
    }
    let server = TestServer::start().await;
    let output = psql(&server, &["-c", "\\df"]).await;
    assert_success(&output, "\\df");
    assert!(stdout(&output).contains("(0 rows)"), "{}", stdout(&output));
    let output = psql(
        &server,
        &["-c", "\\df concat*", "-c", "\\df pg_get_keywords"],
    )
    .await;
    assert_success(&output, "\\df with a pattern");
    let text = stdout(&output);
    for expected in [
        "pg_catalog | concat | text | VARIADIC \"any\" | func",
        "pg_catalog | concat_ws | text | text, VARIADIC \"any\" | func",
        "pg_catalog | pg_get_keywords | SETOF record | OUT word text, OUT catcode \"char\", \
         OUT barelabel boolean, OUT catdesc text, OUT baredesc text | func",
    ] {
        assert!(
            has_line(&text, expected),
            "\\df lacks {expected:?}:\n{text}"
        );
    }
    let output = psql(&server, &["-c", "\\df+ pg_ls_dir"]).await;
    assert_success(&output, "\\df+");
    let text = stdout(&output);
    assert!(
        text.lines()
            .any(|l| l.contains("text, boolean, boolean") && l.contains("postgres=X/postgres")),
        "{text}"
    );
    let output = psql(&server, &["-c", "\\du"]).await;
    assert_success(&output, "\\du");
    let text = stdout(&output);
    assert!(
        has_line(
            &text,
            "postgres | Superuser, Create role, Create DB, Replication | {}"
        ),
        "{text}"
    );
}
