//! What a writer is told matches what was written: a statement stopped by
//! its timeout or a cancel has written nothing, one that answers success has
//! written everything, and DROP TABLE never swallows an acknowledged write.

mod common;

use std::time::Duration;

use tokio_postgres::{Client, SimpleQueryMessage};

use common::TestServer;

async fn count(client: &Client, table: &str) -> i64 {
    let messages = client
        .simple_query(&format!("SELECT count(*) FROM {table}"))
        .await
        .unwrap_or_else(|e| panic!("count of {table}: {e:?}"));
    messages
        .into_iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(row) => row.get(0).and_then(|v| v.parse().ok()),
            _ => None,
        })
        .expect("one count")
}

fn sqlstate(error: &tokio_postgres::Error) -> String {
    error
        .code()
        .unwrap_or_else(|| panic!("a server error, got {error:?}"))
        .code()
        .to_string()
}

/// Timeouts short enough to land anywhere in a big INSERT: while it is
/// planned, while its rows are computed, or while it commits. Whatever the
/// moment, 57014 must mean nothing landed and success must mean all of it.
#[tokio::test]
async fn a_timed_out_write_answers_what_it_did() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute("CREATE TABLE t (id bigint, v text)")
        .await
        .unwrap();
    let mut expected = 0i64;
    let (mut landed, mut stopped) = (0, 0);
    for step in 0..40u64 {
        let timeout_ms = 1 + step % 20;
        client
            .batch_execute(&format!("SET statement_timeout = {timeout_ms}"))
            .await
            .unwrap();
        let rows = 20_000 + 1000 * step as i64;
        let result = client
            .simple_query(&format!(
                "INSERT INTO t SELECT n, 'row ' || n FROM generate_series(1, {rows}) AS g(n)"
            ))
            .await;
        client
            .batch_execute("SET statement_timeout = 0")
            .await
            .unwrap();
        match result {
            Ok(_) => {
                expected += rows;
                landed += 1;
            }
            Err(e) => {
                assert_eq!(sqlstate(&e), "57014", "{e:?}");
                stopped += 1;
            }
        }
        assert_eq!(
            count(&client, "t").await,
            expected,
            "after step {step} (timeout {timeout_ms} ms)"
        );
    }
    assert_eq!(landed + stopped, 40);
}

/// DROP TABLE waits for a transaction that wrote the table (and gives up
/// with 55P03 if it does not end), and a writer that waited behind the DROP
/// is told the table is gone instead of being acknowledged into nowhere.
#[tokio::test]
async fn drop_table_waits_for_writers_and_later_writers_see_it_gone() {
    let server = TestServer::start().await;
    let writer = server.connect().await;
    let dropper = server.connect().await;
    writer
        .batch_execute("CREATE TABLE t (id int); BEGIN; INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    // The transaction holds t: DROP waits, then gives up.
    let error = dropper
        .batch_execute("DROP TABLE t")
        .await
        .expect_err("DROP while a transaction writes t");
    assert_eq!(sqlstate(&error), "55P03", "{error:?}");
    writer.batch_execute("COMMIT").await.unwrap();
    assert_eq!(count(&dropper, "t").await, 1);

    // Now a DROP that waits for the transaction and wins the lock before a
    // second writer: that writer must get 42P01, not INSERT 0 1.
    writer
        .batch_execute("BEGIN; INSERT INTO t VALUES (2)")
        .await
        .unwrap();
    let drop = tokio::spawn(async move { dropper.batch_execute("DROP TABLE t").await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let late = server.connect().await;
    let late_insert =
        tokio::spawn(async move { late.batch_execute("INSERT INTO t VALUES (3)").await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    writer.batch_execute("COMMIT").await.unwrap();
    drop.await.unwrap().expect("DROP TABLE after the commit");
    match late_insert.await.unwrap() {
        Ok(()) => panic!("an INSERT into a dropped table was acknowledged"),
        Err(e) => assert_eq!(sqlstate(&e), "42P01", "{e:?}"),
    }
    let error = writer
        .simple_query("SELECT * FROM t")
        .await
        .expect_err("t is gone");
    assert_eq!(sqlstate(&error), "42P01");
}

/// Writers of one table overlap their syncs, but each still decides on the
/// rows the writers before it left: concurrent increments all count, and a
/// view over the table agrees.
#[tokio::test]
async fn concurrent_writers_of_one_table_build_on_each_other() {
    let server = TestServer::start().await;
    let setup = server.connect().await;
    setup
        .batch_execute(
            "CREATE TABLE c (id int PRIMARY KEY, n bigint); INSERT INTO c VALUES (1, 0); \
             CREATE TABLE log (w int, i int); \
             CREATE MATERIALIZED VIEW total AS SELECT sum(n) AS n, count(*) AS rows FROM c",
        )
        .await
        .unwrap();
    let (writers, steps) = (8, 40);
    let mut tasks = Vec::new();
    for w in 0..writers {
        let client = server.connect().await;
        tasks.push(tokio::spawn(async move {
            for i in 0..steps {
                client
                    .batch_execute("UPDATE c SET n = n + 1 WHERE id = 1")
                    .await
                    .unwrap();
                client
                    .batch_execute(&format!("INSERT INTO log VALUES ({w}, {i})"))
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let expected = (writers * steps).to_string();
    let rows = setup
        .simple_query("SELECT n FROM c WHERE id = 1")
        .await
        .unwrap();
    let n = rows.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
        _ => None,
    });
    assert_eq!(n.as_deref(), Some(expected.as_str()));
    assert_eq!(count(&setup, "log").await, (writers * steps) as i64);
    setup.batch_execute("FLUSH").await.unwrap();
    let view = setup
        .simple_query("SELECT n, rows FROM total")
        .await
        .unwrap();
    let view: Vec<String> = view
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(format!(
                "{}|{}",
                row.get(0).unwrap_or(""),
                row.get(1).unwrap_or("")
            )),
            _ => None,
        })
        .collect();
    assert_eq!(view, [format!("{expected}|1")]);
}

/// One row of `p`'s first statement: i, b, f, s, ok.
type Row = (
    Option<i32>,
    Option<i64>,
    Option<f64>,
    Option<&'static str>,
    Option<bool>,
);

/// Prepared INSERTs whose parameters are written in as literals store
/// exactly the values bound, of every type that path takes, and leave the
/// rest (timestamps, floats into numeric) to the planner with the same
/// result.
#[tokio::test]
async fn bound_parameters_of_an_insert_land_exactly() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE p (i int, b bigint, d numeric(10,2), f float8, s text, ok boolean, \
             at timestamp)",
        )
        .await
        .unwrap();
    let insert = client
        .prepare("INSERT INTO p (i, b, f, s, ok, at) VALUES ($1, $2, $3, $4, $5, $6)")
        .await
        .unwrap();
    let at = chrono::NaiveDate::from_ymd_opt(2024, 2, 29)
        .unwrap()
        .and_hms_micro_opt(23, 59, 58, 123_456)
        .unwrap();
    let cases: [Row; 4] = [
        (
            Some(-7),
            Some(i64::MIN),
            Some(-0.5),
            Some("it's"),
            Some(true),
        ),
        (Some(0), Some(i64::MAX), Some(1e300), Some(""), Some(false)),
        (None, None, None, None, None),
        (
            Some(i32::MAX),
            Some(42),
            Some(0.1),
            Some("naïve \\ 'q'"),
            Some(true),
        ),
    ];
    for (i, b, f, s, ok) in cases {
        client
            .execute(&insert, &[&i, &b, &f, &s, &ok, &Some(at)])
            .await
            .unwrap();
    }
    // A text parameter cast to numeric (PostgreSQL types `$2::numeric`
    // itself numeric, which tokio-postgres will not bind a &str to).
    let numeric = client
        .prepare("INSERT INTO p (i, d) VALUES ($1, $2::text::numeric)")
        .await
        .unwrap();
    client
        .execute(&numeric, &[&100i32, &"12.345"])
        .await
        .unwrap();
    let rows = client
        .simple_query("SELECT i, b, d, f, s, ok, at FROM p ORDER BY i NULLS LAST, b")
        .await
        .unwrap();
    let got: Vec<String> = rows
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|c| row.get(c).unwrap_or("NULL"))
                    .collect::<Vec<_>>()
                    .join("|"),
            ),
            _ => None,
        })
        .collect();
    assert_eq!(
        got,
        [
            "-7|-9223372036854775808|NULL|-0.5|it's|t|2024-02-29 23:59:58.123456",
            "0|9223372036854775807|NULL|1e+300||f|2024-02-29 23:59:58.123456",
            "100|NULL|12.35|NULL|NULL|NULL|NULL",
            "2147483647|42|NULL|0.1|naïve \\ 'q'|t|2024-02-29 23:59:58.123456",
            "NULL|NULL|NULL|NULL|NULL|NULL|2024-02-29 23:59:58.123456",
        ]
    );
}
