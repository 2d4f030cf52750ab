//! The server's limits, tried on the real binary with its flags: sessions
//! past `--max-connections` are refused with PostgreSQL's 53300 while those
//! admitted go on, 200 sessions (the default limit) read and write at once,
//! and a query past `--memory-limit` fails with 53200 instead of taking the
//! server (and every other session and MV) down with it.

mod common;

use std::time::Duration;

use tokio_postgres::{Client, NoTls};

use common::process::{Scratch, Server, exec, rows, sqlstate_of};

/// A new session, or the SQLSTATE it was refused with.
async fn try_connect(server: &Server) -> Result<Client, String> {
    match tokio_postgres::connect(&server.url(), NoTls).await {
        Ok((client, connection)) => {
            tokio::spawn(async move {
                let _ = connection.await;
            });
            Ok(client)
        }
        Err(e) => Err(e
            .code()
            .map(|c| c.code().to_string())
            .unwrap_or_else(|| format!("{e:?}"))),
    }
}

/// A session, waiting while slots are still held by sessions that have
/// closed on the client's side but not yet on the server's (the start-up
/// probe's, or one the test just dropped).
async fn connect_when_free(server: &Server) -> Client {
    let mut last = String::new();
    for _ in 0..200 {
        match try_connect(server).await {
            Ok(client) => return client,
            Err(code) if code == "53300" => last = code,
            Err(other) => panic!("connect: {other}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no slot became free (last error {last})");
}

#[tokio::test]
async fn a_session_past_max_connections_is_refused_with_53300() {
    let scratch = Scratch::new("max-connections");
    let server = Server::start_with_flags(&scratch, &["--max-connections", "3"]).await;
    let mut sessions = Vec::new();
    for _ in 0..3 {
        sessions.push(connect_when_free(&server).await);
    }
    // All three slots are held by live sessions: the fourth is refused, as
    // PostgreSQL refuses it, with its message.
    let refused = tokio_postgres::connect(&server.url(), NoTls)
        .await
        .err()
        .expect("a fourth session is refused");
    let db_error = refused.as_db_error().expect("an ErrorResponse");
    assert_eq!(db_error.code().code(), "53300");
    assert_eq!(db_error.message(), "sorry, too many clients already");
    assert_eq!(db_error.severity(), "FATAL");
    // The admitted sessions are untouched by it.
    for (i, session) in sessions.iter().enumerate() {
        assert_eq!(
            rows(session, &format!("SELECT {i} + 1")).await,
            [format!("{}", i + 1)]
        );
    }
    // A closed session's slot goes to the next one.
    drop(sessions.pop());
    let next = connect_when_free(&server).await;
    assert_eq!(rows(&next, "SELECT 'admitted'").await, ["admitted"]);
    assert_eq!(
        try_connect(&server).await.err().as_deref(),
        Some("53300"),
        "the freed slot was taken again"
    );
}

#[tokio::test]
async fn two_hundred_sessions_read_and_write_at_once() {
    let scratch = Scratch::new("two-hundred-sessions");
    let server = Server::start(&scratch).await;
    let setup = connect_when_free(&server).await;
    exec(
        &setup,
        "CREATE TABLE t (session int, i int); \
         CREATE MATERIALIZED VIEW per_session AS \
         SELECT session, count(*) AS n, sum(i) AS total FROM t GROUP BY session",
    )
    .await;
    drop(setup);
    let mut sessions = Vec::new();
    for _ in 0..200 {
        sessions.push(connect_when_free(&server).await);
    }
    // The default limit is PostgreSQL's: the 201st is refused.
    assert_eq!(try_connect(&server).await.err().as_deref(), Some("53300"));
    let work = sessions.into_iter().enumerate().map(|(s, client)| {
        tokio::spawn(async move {
            for i in 1..=5 {
                client
                    .execute("INSERT INTO t VALUES ($1, $2)", &[&(s as i32), &(i as i32)])
                    .await
                    .unwrap_or_else(|e| panic!("session {s} insert {i}: {e:?}"));
                let mine = client
                    .query_one("SELECT count(*) FROM t WHERE session = $1", &[&(s as i32)])
                    .await
                    .unwrap_or_else(|e| panic!("session {s} count: {e:?}"));
                assert_eq!(mine.get::<_, i64>(0), i, "session {s} reads its writes");
            }
            client
                .batch_execute("FLUSH")
                .await
                .unwrap_or_else(|e| panic!("session {s} flush: {e:?}"));
            let view = client
                .query_one(
                    "SELECT n, total FROM per_session WHERE session = $1",
                    &[&(s as i32)],
                )
                .await
                .unwrap_or_else(|e| panic!("session {s} view: {e:?}"));
            assert_eq!((view.get::<_, i64>(0), view.get::<_, i64>(1)), (5, 15));
            client
        })
    });
    let mut clients = Vec::new();
    for handle in work {
        clients.push(handle.await.expect("a session's work"));
    }
    assert_eq!(
        rows(&clients[0], "SELECT count(*), sum(i) FROM t").await,
        ["1000|3000"]
    );
    assert_eq!(
        rows(
            &clients[1],
            "SELECT count(*), sum(n), sum(total) FROM per_session"
        )
        .await,
        ["200|1000|3000"]
    );
}

#[tokio::test]
async fn a_query_past_the_memory_limit_fails_with_53200_and_the_server_lives_on() {
    let scratch = Scratch::new("memory-limit");
    let server = Server::start_with_flags(&scratch, &["--memory-limit", "32MB"]).await;
    let client = connect_when_free(&server).await;
    exec(
        &client,
        "CREATE TABLE t (k int, v int); \
         CREATE MATERIALIZED VIEW s AS SELECT k, sum(v) AS total FROM t GROUP BY k; \
         INSERT INTO t VALUES (1, 10), (1, 5), (2, 7); FLUSH",
    )
    .await;
    // A hash join's build side cannot spill: 4M keys need far more than
    // 32 MB.
    let join = "SELECT count(*) FROM generate_series(1, 4000000) a(x) \
                JOIN generate_series(1, 4000000) b(y) ON a.x = b.y";
    let error = client.simple_query(join).await.expect_err("over the limit");
    let db_error = error.as_db_error().expect("an ErrorResponse");
    assert_eq!(db_error.code().code(), "53200", "{}", db_error.message());
    assert_eq!(db_error.message(), "out of memory");
    let detail = db_error.detail().unwrap_or_default();
    assert!(detail.contains("HashJoinInput"), "{detail}");
    // The same session, another session and the MV are all still there.
    assert_eq!(rows(&client, "SELECT 1").await, ["1"]);
    let other = connect_when_free(&server).await;
    exec(&other, "INSERT INTO t VALUES (2, 1); FLUSH").await;
    assert_eq!(
        rows(&other, "SELECT k, total FROM s ORDER BY k").await,
        ["1|15", "2|8"]
    );
    // What fits runs: a smaller join, and a sort or an aggregate bigger
    // than the limit, which spill to temporary files.
    assert_eq!(
        rows(
            &client,
            "SELECT count(*) FROM generate_series(1, 1000) a(x) \
             JOIN generate_series(1, 1000) b(y) ON a.x = b.y"
        )
        .await,
        ["1000"]
    );
    assert_eq!(
        rows(
            &client,
            "SELECT count(*), sum(x) FROM \
             (SELECT DISTINCT x FROM generate_series(1, 4000000) x) s"
        )
        .await,
        ["4000000|8000002000000"]
    );
    assert_eq!(
        rows(
            &client,
            "SELECT x FROM generate_series(1, 3000000) x ORDER BY x DESC OFFSET 2999999"
        )
        .await,
        ["1"]
    );
    assert_eq!(
        sqlstate_of(&client, "SELECT 1/0").await,
        "22012",
        "the session still reports ordinary errors"
    );
}

/// `freshet_catalog.mv_state`: each view's contents and each operator of
/// its dataflow, in EXPLAIN's order, with bytes that follow the state.
#[tokio::test]
async fn mv_state_reports_the_bytes_each_view_keeps() {
    let scratch = Scratch::new("mv-state");
    let server = Server::start(&scratch).await;
    let client = connect_when_free(&server).await;
    exec(
        &client,
        "CREATE TABLE t (k int, v int); CREATE TABLE d (k int, g text); \
         INSERT INTO d SELECT x, 'g' || x FROM generate_series(1, 100) x; \
         CREATE MATERIALIZED VIEW totals AS \
         SELECT k, count(*) AS n, min(v) AS lo, max(v) AS hi FROM t GROUP BY k; \
         CREATE MATERIALIZED VIEW joined AS SELECT t.k, t.v, d.g FROM t JOIN d ON d.k = t.k",
    )
    .await;
    let state = |name: &'static str| {
        let client = &client;
        async move {
            rows(
                client,
                &format!(
                    "SELECT position, operator, bytes FROM freshet_catalog.mv_state \
                     WHERE name = '{name}' ORDER BY position"
                ),
            )
            .await
            .into_iter()
            .map(|row| {
                let parts: Vec<&str> = row.split('|').collect();
                (parts[1].to_string(), parts[2].parse::<u64>().unwrap())
            })
            .collect::<Vec<_>>()
        }
    };
    let operators =
        |parts: &[(String, u64)]| parts.iter().map(|(o, _)| o.clone()).collect::<Vec<_>>();
    let bytes_of = |parts: &[(String, u64)], operator: &str| {
        parts
            .iter()
            .find(|(o, _)| o == operator)
            .map(|(_, b)| *b)
            .unwrap_or_else(|| panic!("no {operator} in {parts:?}"))
    };
    let empty = state("joined").await;
    assert_eq!(
        operators(&empty),
        ["contents", "Project", "HashJoin", "Source", "Source"]
    );
    assert_eq!(
        operators(&state("totals").await),
        ["contents", "Project", "HashAggregate", "Source"]
    );

    exec(
        &client,
        "INSERT INTO t SELECT x % 100 + 1, x FROM generate_series(1, 20000) x; FLUSH",
    )
    .await;
    let full = state("joined").await;
    let totals = state("totals").await;
    // 20,000 joined rows of three columns, and both sides kept by key.
    assert!(bytes_of(&full, "contents") > 20_000 * 12, "{full:?}");
    assert!(bytes_of(&full, "HashJoin") > 20_100 * 8, "{full:?}");
    // 100 groups, each with the multisets of its 200 values.
    assert!(
        bytes_of(&totals, "HashAggregate") > 2 * 20_000 * 8,
        "{totals:?}"
    );
    assert_eq!(bytes_of(&full, "Source"), 0);

    exec(&client, "DELETE FROM t; FLUSH").await;
    let emptied = state("joined").await;
    assert!(
        bytes_of(&emptied, "HashJoin") < bytes_of(&full, "HashJoin") / 2,
        "{emptied:?} after {full:?}"
    );
    assert!(
        bytes_of(&emptied, "contents") < bytes_of(&full, "contents") / 2,
        "{emptied:?} after {full:?}"
    );
    exec(&client, "DROP MATERIALIZED VIEW joined").await;
    assert!(state("joined").await.is_empty());
}
