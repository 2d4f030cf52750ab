//! Input that must not take the server down, tried on the real binary (its
//! own thread stacks, not the test harness's): statements nested far deeper
//! than any query needs, and statements that would recurse without end.
//! Each gets PostgreSQL's SQLSTATE; afterwards the same session, a second
//! session and a materialized view made before are all still there.

mod common;

use common::process::{Scratch, Server, exec, rows, sqlstate_of};

fn repeat(item: &str, separator: &str, n: usize) -> String {
    vec![item; n].join(separator)
}

#[tokio::test]
async fn deep_and_recursive_statements_are_refused_and_the_server_lives_on() {
    let scratch = Scratch::new("bad-input");
    let server = Server::start(&scratch).await;
    let client = server.connect().await;
    exec(
        &client,
        "CREATE TABLE t (k int, v int); \
         CREATE MATERIALIZED VIEW s AS SELECT k, sum(v) AS total FROM t GROUP BY k; \
         INSERT INTO t VALUES (1, 10), (1, 5), (2, 7); FLUSH",
    )
    .await;

    // PostgreSQL answers these; the limit must not cost ordinary queries.
    let thousand = format!("SELECT {}", repeat("1", "+", 1000));
    assert_eq!(rows(&client, &thousand).await, ["1000"]);
    let nested = format!("SELECT {}1{}", "(".repeat(40), ")".repeat(40));
    assert_eq!(rows(&client, &nested).await, ["1"]);

    let cases = [
        (format!("SELECT {}", repeat("1", "+", 20_000)), "54001"),
        (format!("SELECT {}", repeat("'a'", " || ", 20_000)), "54001"),
        (
            format!("SELECT {}1{}", "(".repeat(20_000), ")".repeat(20_000)),
            "54001",
        ),
        (
            format!(
                "SELECT * FROM {}(VALUES (1)) v{}",
                "(SELECT * FROM ".repeat(3000),
                ") s".repeat(3000)
            ),
            "54001",
        ),
        (
            format!("SELECT k FROM t WHERE {}", repeat("v > 0", " OR ", 20_000)),
            "54001",
        ),
        (
            format!(
                "CREATE MATERIALIZED VIEW deep AS SELECT {} AS x FROM t",
                repeat("v", "+", 20_000)
            ),
            "54001",
        ),
        ("PREPARE p AS EXECUTE p".to_string(), "42601"),
    ];
    for (sql, code) in &cases {
        assert_eq!(
            sqlstate_of(&client, sql).await,
            *code,
            "{}...",
            &sql[..60.min(sql.len())]
        );
        assert_eq!(rows(&client, "SELECT 1").await, ["1"]);
    }
    // EXECUTE of a name that was refused is an unknown statement, not a loop.
    assert_eq!(sqlstate_of(&client, "EXECUTE p").await, "26000");

    let other = server.connect().await;
    assert_eq!(
        rows(&other, "SELECT k, total FROM s ORDER BY k").await,
        ["1|15", "2|7"]
    );
    exec(&other, "INSERT INTO t VALUES (2, 1); FLUSH").await;
    assert_eq!(
        rows(&client, "SELECT total FROM s WHERE k = 2").await,
        ["8"]
    );
}
