//! A long backfill as a user sees it: `freshet_catalog.mv_progress` shows
//! how far it has come, `backfill_rate_limit` slows or pauses it, the views
//! that already run keep advancing meanwhile, and writes to the table being
//! backfilled during the CREATE are neither lost nor counted twice.

mod common;

use std::time::Duration;

use common::TestServer;
use common::process::{exec, rows};
use tokio_postgres::Client;

const ROWS: i64 = 20_000;

async fn progress(client: &Client) -> Vec<String> {
    rows(
        client,
        "SELECT name, rows_done, rows_total, percent >= 0 AND percent <= 100 \
         FROM freshet_catalog.mv_progress",
    )
    .await
}

/// Polls until `mv_progress` shows the view part way, or panics when the
/// backfill ends first.
async fn wait_part_way(client: &Client, create: &tokio::task::JoinHandle<()>) -> u64 {
    loop {
        assert!(
            !create.is_finished(),
            "the backfill ended before any progress was seen"
        );
        let seen = progress(client).await;
        if let [row] = seen.as_slice() {
            let fields: Vec<&str> = row.split('|').collect();
            let done: u64 = fields[1].parse().expect("rows_done is a number");
            assert_eq!(fields[0], "totals");
            assert_eq!(fields[2], ROWS.to_string());
            assert_eq!(fields[3], "t");
            if done > 0 && done < ROWS as u64 {
                return done;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_backfill_shows_progress_can_be_paused_and_misses_no_write() {
    let server = TestServer::start().await;
    let admin = server.connect().await;
    exec(
        &admin,
        "CREATE TABLE big (id bigint PRIMARY KEY, g bigint, v bigint);
         CREATE TABLE other (k bigint);
         CREATE MATERIALIZED VIEW other_n AS SELECT count(*) AS n FROM other;",
    )
    .await;
    for start in (0..ROWS).step_by(1000) {
        let values: Vec<String> = (start..start + 1000)
            .map(|i| format!("({i}, {}, {})", i % 100, i % 37))
            .collect();
        exec(
            &admin,
            &format!("INSERT INTO big VALUES {}", values.join(",")),
        )
        .await;
    }

    // Paused from the start: the view waits at 0 of 20,000 rows.
    exec(&admin, "SET backfill_rate_limit = 0").await;
    let creator = server.connect().await;
    let create = tokio::spawn(async move {
        exec(
            &creator,
            "CREATE MATERIALIZED VIEW totals AS \
             SELECT g, count(*) AS n, sum(v) AS s, min(v) AS lo FROM big GROUP BY g",
        )
        .await;
    });
    loop {
        let seen = progress(&admin).await;
        if !seen.is_empty() {
            assert_eq!(seen, vec![format!("totals|0|{ROWS}|t")]);
            break;
        }
        assert!(!create.is_finished(), "a paused backfill finished");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let state = rows(
        &admin,
        "SELECT state FROM freshet_catalog.mv_status WHERE name = 'totals'",
    )
    .await;
    assert_eq!(state, vec!["backfilling"]);

    // Another session reading it meanwhile is told to wait, and how far it is.
    let error = admin
        .simple_query("SELECT * FROM totals")
        .await
        .expect_err("a view still backfilling was read");
    let error = error.as_db_error().expect("an ErrorResponse");
    assert_eq!(error.code().code(), "55000");
    assert!(
        error.message().contains("0 of 20000 rows"),
        "{}",
        error.message()
    );

    // The views that already run keep advancing while it waits.
    exec(&admin, "INSERT INTO other VALUES (1), (2), (3); FLUSH").await;
    assert_eq!(rows(&admin, "SELECT n FROM other_n").await, vec!["3"]);

    // Writes to the table being backfilled, before and during its feed.
    exec(
        &admin,
        "DELETE FROM big WHERE id < 150;
         UPDATE big SET v = v + 1000 WHERE g = 7;
         INSERT INTO big VALUES (100000, 7, -5), (100001, 500, 1);",
    )
    .await;

    // Slowed down it moves, and can be seen part way.
    exec(&admin, "SET backfill_rate_limit = 2000").await;
    wait_part_way(&admin, &create).await;
    exec(&admin, "SET backfill_rate_limit = 0").await;
    exec(
        &admin,
        "DELETE FROM big WHERE g = 11; INSERT INTO big VALUES (100002, 11, 4)",
    )
    .await;
    assert!(!create.is_finished(), "a paused backfill finished");

    exec(&admin, "SET backfill_rate_limit = DEFAULT").await;
    create.await.expect("CREATE MATERIALIZED VIEW answers");
    assert!(
        progress(&admin).await.is_empty(),
        "a finished backfill is still listed"
    );
    let state = rows(
        &admin,
        "SELECT state FROM freshet_catalog.mv_status WHERE name = 'totals'",
    )
    .await;
    assert_eq!(state, vec!["running"]);

    // Right after the CREATE the view holds every write, once.
    let view = rows(&admin, "SELECT g, n, s, lo FROM totals ORDER BY g").await;
    let query = rows(
        &admin,
        "SELECT g, count(*), sum(v), min(v) FROM big GROUP BY g ORDER BY g",
    )
    .await;
    assert_eq!(view.len(), 101);
    assert_eq!(view, query);

    // And it follows later changes as any view does.
    exec(&admin, "DELETE FROM big WHERE g = 500; FLUSH").await;
    let view = rows(&admin, "SELECT count(*) FROM totals WHERE g = 500").await;
    assert_eq!(view, vec!["0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_backfill_rate_limit_is_refused() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    let error = client
        .simple_query("SET backfill_rate_limit = 'fast'")
        .await
        .expect_err("a word is not a rate");
    assert_eq!(error.code().map(|c| c.code()), Some("22023"));
    exec(
        &client,
        "SET backfill_rate_limit = 1000; SET backfill_rate_limit = DEFAULT",
    )
    .await;
}
