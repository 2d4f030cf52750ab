//! Durability of the real `freshet` binary: acknowledged writes survive
//! `kill -9`, a clean shutdown (SIGINT) and restarts that replay compacted
//! table logs. Each test runs the server as a child process on its own data
//! directory under the system temp directory and its own port, and talks to
//! it over pgwire.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio_postgres::Client;

use common::process::{Scratch, Server, exec, rows, sqlstate_of};

/// What the first test's tables and catalog hold, as text.
async fn shop_snapshot(client: &Client) -> Vec<(String, Vec<String>)> {
    let queries = [
        "SELECT id, name, balance, joined, seen, doc, avatar, vip FROM customers ORDER BY id",
        "SELECT id, customer, amount, note, at FROM shop.orders ORDER BY id",
        "SELECT count(*), sum(n), sum(sq), count(*) FILTER (WHERE label = 'even'), min(n), max(n) FROM shop.big",
        "SELECT n, sq, label FROM shop.big WHERE n IN (1, 2, 9, 10, 11, 49999, 50000) ORDER BY n",
        "SELECT table_schema, table_name FROM information_schema.tables \
         WHERE table_schema IN ('public', 'shop') ORDER BY 1, 2",
        "SELECT table_schema, table_name, column_name, ordinal_position, is_nullable, data_type \
         FROM information_schema.columns WHERE table_schema IN ('public', 'shop') ORDER BY 1, 2, 4",
    ];
    let mut snapshot = Vec::new();
    for sql in queries {
        snapshot.push((sql.to_string(), rows(client, sql).await));
    }
    snapshot
}

fn assert_same(before: &[(String, Vec<String>)], after: &[(String, Vec<String>)]) {
    assert_eq!(before.len(), after.len());
    for ((sql, b), (_, a)) in before.iter().zip(after) {
        assert_eq!(b, a, "after restart, {sql} differs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_after_acknowledged_statements_loses_nothing() {
    let scratch = Scratch::new("kill9");
    let server = Server::start(&scratch).await;
    let client = server.connect().await;
    exec(
        &client,
        "CREATE SCHEMA shop;
         CREATE TABLE customers (id bigint PRIMARY KEY, name varchar(20) NOT NULL,
             balance numeric(10,2), joined date, seen timestamptz, doc jsonb, avatar bytea,
             vip boolean DEFAULT false);
         CREATE TABLE shop.orders (id int PRIMARY KEY, customer bigint NOT NULL,
             amount double precision, note text, at timestamp);
         CREATE TABLE shop.big (n bigint PRIMARY KEY, sq bigint, label text);
         CREATE TABLE doomed (x int);
         INSERT INTO doomed VALUES (1), (2);",
    )
    .await;
    exec(&client, "DROP TABLE doomed").await;
    exec(
        &client,
        r#"INSERT INTO customers (id, name, balance, joined, seen, doc, avatar) VALUES
             (1, 'ada', 12.50, '1815-12-10', '2024-01-02 03:04:05+00', '{"k": [1, 2]}', '\x00ff'),
             (2, 'bob', 0.10, '2000-02-29', '1999-12-31 23:59:59.5+00', '{}', '\x'),
             (3, 'cy', NULL, NULL, NULL, NULL, NULL)"#,
    )
    .await;
    let insert = client
        .prepare("INSERT INTO customers (id, name, balance, vip) VALUES ($1, $2, CAST(CAST($3 AS text) AS numeric(10,2)), $4)")
        .await
        .unwrap();
    for (id, name) in [(4i64, "dee"), (5, "eve")] {
        let n = client
            .execute(&insert, &[&id, &name, &"7.25", &true])
            .await
            .unwrap();
        assert_eq!(n, 1);
    }
    exec(
        &client,
        "UPDATE customers SET balance = balance + 10 WHERE id <= 2",
    )
    .await;
    exec(&client, "DELETE FROM customers WHERE id = 3").await;
    exec(
        &client,
        "INSERT INTO shop.orders VALUES
             (1, 1, 9.5, 'first', '2024-01-02 03:04:05'),
             (2, 2, 0.25, NULL, '2024-01-03 00:00:00.123456'),
             (3, 1, -1, 'refund', NULL)",
    )
    .await;
    exec(
        &client,
        "UPDATE shop.orders SET note = 'edited' WHERE id = 2",
    )
    .await;
    let inserted = client
        .execute(
            "INSERT INTO shop.big SELECT n, n * n, 'row ' || n FROM generate_series(1, 50000) AS g(n)",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(inserted, 50_000);
    let updated = client
        .execute("UPDATE shop.big SET label = 'even' WHERE n % 2 = 0", &[])
        .await
        .unwrap();
    assert_eq!(updated, 25_000);
    let deleted = client
        .execute("DELETE FROM shop.big WHERE n % 10 = 0", &[])
        .await
        .unwrap();
    assert_eq!(deleted, 5_000);
    // The last acknowledged statement before the kill.
    assert_eq!(
        client
            .execute(&insert, &[&6i64, &"fay", &"1.00", &false])
            .await
            .unwrap(),
        1
    );

    let before = shop_snapshot(&client).await;
    // The snapshot is what the statements above say it must be.
    assert_eq!(
        before[0].1,
        vec![
            r#"1|ada|22.50|1815-12-10|2024-01-02 03:04:05+00|{"k": [1, 2]}|\x00ff|f"#,
            r"2|bob|10.10|2000-02-29|1999-12-31 23:59:59.5+00|{}|\x|f",
            "4|dee|7.25|NULL|NULL|NULL|NULL|t",
            "5|eve|7.25|NULL|NULL|NULL|NULL|t",
            "6|fay|1.00|NULL|NULL|NULL|NULL|f",
        ]
    );
    assert_eq!(
        before[1].1,
        vec![
            "1|1|9.5|first|2024-01-02 03:04:05",
            "2|2|0.25|edited|2024-01-03 00:00:00.123456",
            "3|1|-1|refund|NULL",
        ]
    );
    let sum_n: i64 = (1..=50_000i64).filter(|n| n % 10 != 0).sum();
    let sum_sq: i64 = (1..=50_000i64).filter(|n| n % 10 != 0).map(|n| n * n).sum();
    assert_eq!(
        before[2].1,
        vec![format!("45000|{sum_n}|{sum_sq}|20000|1|49999")]
    );
    assert_eq!(
        before[3].1,
        vec![
            "1|1|row 1",
            "2|4|even",
            "9|81|row 9",
            "11|121|row 11",
            "49999|2499900001|row 49999"
        ]
    );
    assert_eq!(
        before[4].1,
        vec!["public|customers", "shop|big", "shop|orders"]
    );

    drop(client);
    server.kill_9();

    let server = Server::start(&scratch).await;
    let client = server.connect().await;
    let after = shop_snapshot(&client).await;
    assert_same(&before, &after);

    // The catalog kept its constraints, defaults and dropped tables.
    assert_eq!(
        sqlstate_of(
            &client,
            "INSERT INTO customers (id, name) VALUES (1, 'again')"
        )
        .await,
        "23505"
    );
    assert_eq!(
        sqlstate_of(&client, "INSERT INTO customers (id) VALUES (100)").await,
        "23502"
    );
    assert_eq!(
        sqlstate_of(
            &client,
            "INSERT INTO customers (id, name) VALUES (101, 'a name that is far too long')"
        )
        .await,
        "22001"
    );
    assert_eq!(
        sqlstate_of(&client, "INSERT INTO shop.big VALUES (1, 1, 'dup')").await,
        "23505"
    );
    assert_eq!(sqlstate_of(&client, "SELECT * FROM doomed").await, "42P01");
    assert_eq!(sqlstate_of(&client, "CREATE SCHEMA shop").await, "42P06");
    exec(&client, "CREATE TABLE doomed (y text)").await;
    assert_eq!(
        rows(&client, "SELECT count(*) FROM doomed").await,
        vec!["0"]
    );

    // New writes after the restart: fresh row ids, nothing old disturbed.
    exec(
        &client,
        "INSERT INTO customers (id, name) VALUES (7, 'gus')",
    )
    .await;
    assert_eq!(
        rows(&client, "SELECT vip, balance FROM customers WHERE id = 7").await,
        vec!["f|NULL"]
    );
    exec(
        &client,
        "INSERT INTO shop.big VALUES (50001, 0, 'new'), (50002, 0, 'new')",
    )
    .await;
    exec(&client, "DELETE FROM shop.big WHERE n = 50001").await;
    exec(
        &client,
        "UPDATE shop.big SET label = 'changed' WHERE n = 50002",
    )
    .await;
    assert_eq!(
        rows(&client, "SELECT count(*), sum(n) FROM shop.big").await,
        vec![format!("45001|{}", sum_n + 50_002)]
    );
    exec(&client, "DELETE FROM customers WHERE id = 1").await;
    let before_second = shop_snapshot(&client).await;
    let doomed = rows(&client, "SELECT count(*) FROM doomed").await;
    drop(client);
    server.kill_9();

    // A second crash and restart replays both generations of writes.
    let server = Server::start(&scratch).await;
    let client = server.connect().await;
    assert_same(&before_second, &shop_snapshot(&client).await);
    assert_eq!(rows(&client, "SELECT count(*) FROM doomed").await, doomed);
    assert_eq!(
        rows(&client, "SELECT id FROM customers ORDER BY id").await,
        vec!["2", "4", "5", "6", "7"]
    );
    assert_eq!(
        rows(&client, "SELECT label FROM shop.big WHERE n > 50000").await,
        vec!["changed"]
    );
    drop(client);
    server.kill_9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_after_concurrent_small_inserts_keeps_them_all() {
    let scratch = Scratch::new("concurrent");
    let server = Server::start(&scratch).await;
    let setup = server.connect().await;
    exec(
        &setup,
        "CREATE TABLE ticks (writer int NOT NULL, seq int NOT NULL, payload text, PRIMARY KEY (writer, seq))",
    )
    .await;
    const WRITERS: i32 = 4;
    const PER_WRITER: i32 = 150;
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let client = server.connect().await;
        tasks.push(tokio::spawn(async move {
            let insert = client
                .prepare("INSERT INTO ticks VALUES ($1, $2, $3)")
                .await
                .unwrap();
            for seq in 0..PER_WRITER {
                let n = client
                    .execute(&insert, &[&writer, &seq, &format!("w{writer}s{seq}")])
                    .await
                    .unwrap();
                assert_eq!(n, 1);
            }
            // A few deletes and updates among the inserts.
            client
                .execute(
                    "DELETE FROM ticks WHERE writer = $1 AND seq < 5",
                    &[&writer],
                )
                .await
                .unwrap();
            client
                .execute(
                    "UPDATE ticks SET payload = 'updated' WHERE writer = $1 AND seq >= $2",
                    &[&writer, &(PER_WRITER - 5)],
                )
                .await
                .unwrap();
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let summary = "SELECT writer, count(*), min(seq), max(seq), count(*) FILTER (WHERE payload = 'updated') \
                   FROM ticks GROUP BY writer ORDER BY writer";
    let expected: Vec<String> = (0..WRITERS)
        .map(|w| format!("{w}|{}|5|{}|5", PER_WRITER - 5, PER_WRITER - 1))
        .collect();
    assert_eq!(rows(&setup, summary).await, expected);
    drop(setup);
    server.kill_9();

    let server = Server::start(&scratch).await;
    let client = server.connect().await;
    assert_eq!(rows(&client, summary).await, expected);
    assert_eq!(
        rows(
            &client,
            "SELECT count(*), count(DISTINCT payload) FROM ticks"
        )
        .await,
        vec![format!(
            "{}|{}",
            WRITERS * (PER_WRITER - 5),
            WRITERS * (PER_WRITER - 10) + 1
        )]
    );
    // The primary key index was rebuilt from the log.
    assert_eq!(
        sqlstate_of(&client, "INSERT INTO ticks VALUES (0, 100, 'dup')").await,
        "23505"
    );
    exec(
        &client,
        "INSERT INTO ticks VALUES (0, 0, 'deleted before, fine now')",
    )
    .await;
    drop(client);
    server.kill_9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_concurrent_writes_keeps_every_acknowledged_row() {
    let scratch = Scratch::new("inflight");
    let server = Server::start(&scratch).await;
    let setup = server.connect().await;
    exec(
        &setup,
        "CREATE TABLE acks (writer int NOT NULL, seq int NOT NULL)",
    )
    .await;
    drop(setup);
    const WRITERS: usize = 4;
    const ATTEMPTS: i32 = 2_000;
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let progress = Arc::new(tokio::sync::Notify::new());
    let mut tasks = Vec::new();
    for writer in 0..WRITERS as i32 {
        let client = server.connect().await;
        let acknowledged = acknowledged.clone();
        let progress = progress.clone();
        tasks.push(tokio::spawn(async move {
            // Returns how many of this writer's inserts were acknowledged:
            // seq 0..n, in order, one at a time.
            let mut acked = 0;
            for seq in 0..ATTEMPTS {
                match client
                    .execute("INSERT INTO acks VALUES ($1, $2)", &[&writer, &seq])
                    .await
                {
                    Ok(1) => {
                        acked += 1;
                        acknowledged.fetch_add(1, Ordering::SeqCst);
                        progress.notify_one();
                    }
                    Ok(n) => panic!("INSERT reported {n} rows"),
                    Err(_) => break, // the server is gone
                }
            }
            acked
        }));
    }
    // Kill once 300 inserts have been acknowledged, with writers still busy.
    while acknowledged.load(Ordering::SeqCst) < 300 {
        progress.notified().await;
    }
    server.kill_9();
    let mut acked = Vec::new();
    for task in tasks {
        acked.push(task.await.unwrap());
    }
    assert!(
        acked.iter().all(|&n| n < ATTEMPTS),
        "the writers should have been cut off: {acked:?}"
    );

    let server = Server::start(&scratch).await;
    let client = server.connect().await;
    let found = rows(
        &client,
        "SELECT writer, count(*), count(DISTINCT seq), min(seq), max(seq) FROM acks GROUP BY writer ORDER BY writer",
    )
    .await;
    let mut missing = Vec::new();
    for (writer, &n) in acked.iter().enumerate() {
        let line = found
            .iter()
            .find(|l| l.starts_with(&format!("{writer}|")))
            .cloned()
            .unwrap_or_else(|| format!("{writer}|0|0|NULL|NULL"));
        let fields: Vec<&str> = line.split('|').collect();
        let count: i32 = fields[1].parse().unwrap();
        let distinct: i32 = fields[2].parse().unwrap();
        // Every acknowledged insert is there; at most the one in flight at
        // the kill is there besides; no duplicates, no gaps.
        if count < n || count > n + 1 || distinct != count {
            missing.push(format!("writer {writer}: {n} acknowledged, found {line}"));
        }
        if count > 0 {
            assert_eq!(fields[3], "0", "{line}");
            assert_eq!(fields[4], (count - 1).to_string(), "{line}");
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
    drop(client);
    server.kill_9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_shutdown_on_sigint_and_restart() {
    let scratch = Scratch::new("sigint");
    let server = Server::start(&scratch).await;
    let client = server.connect().await;
    exec(
        &client,
        "CREATE SCHEMA app;
         CREATE TABLE app.settings (key text PRIMARY KEY, value text, changed timestamp);
         INSERT INTO app.settings VALUES ('a', '1', '2024-01-01 00:00:00'), ('b', '2', NULL), ('c', '3', NULL);
         UPDATE app.settings SET value = 'two' WHERE key = 'b';
         DELETE FROM app.settings WHERE key = 'c';
         CREATE TABLE numbers AS SELECT n FROM generate_series(1, 1000) AS g(n);",
    )
    .await;
    drop(client);
    let status = server.interrupt().await;
    assert!(status.success(), "exit status after SIGINT: {status}");

    let server = Server::start(&scratch).await;
    let client = server.connect().await;
    assert_eq!(
        rows(
            &client,
            "SELECT key, value, changed FROM app.settings ORDER BY key"
        )
        .await,
        vec!["a|1|2024-01-01 00:00:00", "b|two|NULL"]
    );
    assert_eq!(
        rows(&client, "SELECT count(*), sum(n) FROM numbers").await,
        vec!["1000|500500"]
    );
    exec(&client, "INSERT INTO app.settings VALUES ('d', '4', NULL)").await;
    drop(client);
    let status = server.interrupt().await;
    assert!(status.success(), "exit status after SIGINT: {status}");

    let server = Server::start(&scratch).await;
    let client = server.connect().await;
    assert_eq!(
        rows(&client, "SELECT key FROM app.settings ORDER BY key").await,
        vec!["a", "b", "d"]
    );
    drop(client);
    let status = server.interrupt().await;
    assert!(status.success(), "exit status after SIGINT: {status}");
}

async fn churn_snapshot(client: &Client) -> Vec<String> {
    let mut out = rows(client, "SELECT id, v, note FROM churn ORDER BY id").await;
    out.extend(rows(client, "SELECT k, v FROM quiet ORDER BY k").await);
    out.extend(rows(client, "SELECT count(*), sum(id) FROM churn").await);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_replay_compacted_logs() {
    let scratch = Scratch::new("compaction");
    let server = Server::start(&scratch).await;
    let client = server.connect().await;
    exec(
        &client,
        "CREATE TABLE churn (id int PRIMARY KEY, v bigint NOT NULL, note text);
         CREATE TABLE quiet (k int, v text);
         INSERT INTO quiet VALUES (1, 'only'), (2, 'rows')",
    )
    .await;
    // 150 single-row inserts, 40 deletes, 20 updates (a delete and an
    // insert each): over 200 log entries for 110 rows in one chunk.
    let insert = client
        .prepare("INSERT INTO churn VALUES ($1, $2, $3)")
        .await
        .unwrap();
    for id in 1..=150i32 {
        client
            .execute(&insert, &[&id, &(id as i64 * 100), &format!("n{id}")])
            .await
            .unwrap();
    }
    for id in (1..=150i32).filter(|id| id % 3 == 0).take(40) {
        assert_eq!(
            client
                .execute("DELETE FROM churn WHERE id = $1", &[&id])
                .await
                .unwrap(),
            1
        );
    }
    for id in (1..=150i32).filter(|id| id % 3 == 1).take(20) {
        assert_eq!(
            client
                .execute(
                    "UPDATE churn SET v = v + 1, note = 'upd' WHERE id = $1",
                    &[&id]
                )
                .await
                .unwrap(),
            1
        );
    }
    let expected_ids: Vec<i32> = (1..=150)
        .filter(|id| !(id % 3 == 0 && *id <= 120))
        .collect();
    let first = churn_snapshot(&client).await;
    assert_eq!(first.len(), expected_ids.len() + 3);
    assert_eq!(first[0], "1|101|upd");
    assert_eq!(first[1], "2|200|n2");
    assert_eq!(
        first.last().unwrap(),
        &format!(
            "{}|{}",
            expected_ids.len(),
            expected_ids.iter().sum::<i32>()
        )
    );
    // The churn log outgrew the table and was compacted while running.
    assert!(
        server.log_text().contains("compacted table log"),
        "expected the churn log to be compacted; log:\n{}",
        server.log_text()
    );
    drop(client);
    server.kill_9();

    // Restart 1: the compacted log replays to the same rows.
    let server = Server::start(&scratch).await;
    let client = server.connect().await;
    assert_eq!(churn_snapshot(&client).await, first);
    // Keys survive compaction: duplicates still caught, deleted keys free.
    assert_eq!(
        sqlstate_of(&client, "INSERT INTO churn VALUES (1, 0, 'dup')").await,
        "23505"
    );
    // More churn on top of the compacted log.
    let insert = client
        .prepare("INSERT INTO churn VALUES ($1, $2, $3)")
        .await
        .unwrap();
    for id in 151..=180i32 {
        client
            .execute(&insert, &[&id, &(id as i64), &"late"])
            .await
            .unwrap();
    }
    exec(&client, "INSERT INTO churn VALUES (3, 3, 'back')").await;
    exec(&client, "DELETE FROM churn WHERE id BETWEEN 151 AND 160").await;
    exec(&client, "UPDATE churn SET note = 'second' WHERE id % 5 = 0").await;
    exec(&client, "INSERT INTO quiet VALUES (3, 'more')").await;
    let second = churn_snapshot(&client).await;
    assert_eq!(
        rows(&client, "SELECT v, note FROM churn WHERE id = 3").await,
        vec!["3|back"]
    );
    drop(client);
    server.kill_9();

    // Restart 2: replays the compacted entries and the new ones.
    let server = Server::start(&scratch).await;
    let client = server.connect().await;
    assert_eq!(churn_snapshot(&client).await, second);
    let insert = client
        .prepare("INSERT INTO churn VALUES ($1, $2, $3)")
        .await
        .unwrap();
    for id in 181..=300i32 {
        client
            .execute(&insert, &[&id, &0i64, &"third"])
            .await
            .unwrap();
        if id % 2 == 0 {
            client
                .execute("DELETE FROM churn WHERE id = $1", &[&id])
                .await
                .unwrap();
        }
    }
    let third = churn_snapshot(&client).await;
    drop(client);
    let status = server.interrupt().await;
    assert!(status.success(), "exit status after SIGINT: {status}");

    // Restart 3, after a clean shutdown.
    let server = Server::start(&scratch).await;
    let client = server.connect().await;
    assert_eq!(churn_snapshot(&client).await, third);
    assert_eq!(
        rows(&client, "SELECT count(*) FROM churn WHERE note = 'third'").await,
        vec!["60"]
    );
    drop(client);
    server.kill_9();
}

/// Every row of `sql`, as text, sorted: a view's rows and its query's rows
/// compare equal whatever order each comes in.
async fn sorted_rows(client: &Client, sql: &str) -> Vec<String> {
    let mut out = rows(client, sql).await;
    out.sort();
    out
}

/// Each materialized view of the sales test and the plain query it stands
/// for (the MV on an MV spelled out over the tables).
const SALES_VIEWS: [(&str, &str); 4] = [
    (
        "SELECT region, n, total, lo, hi FROM by_region",
        "SELECT region, count(*), sum(amount), min(amount), max(amount) FROM sales GROUP BY region",
    ),
    (
        "SELECT id, amount, manager FROM managed",
        "SELECT s.id, s.amount, r.manager FROM sales s JOIN regions r ON s.region = r.name",
    ),
    (
        "SELECT region, spread FROM spreads",
        "SELECT region, max(amount) - min(amount) FROM sales GROUP BY region HAVING count(*) >= 2",
    ),
    (
        "SELECT manager, total FROM per_manager",
        "SELECT r.manager, sum(s.amount) FROM sales s JOIN regions r ON s.region = r.name \
         GROUP BY r.manager",
    ),
];

/// Every view of SALES_VIEWS holds exactly its query's rows; returns them.
async fn assert_sales_views_match(client: &Client, when: &str) -> Vec<Vec<String>> {
    let mut all = Vec::new();
    for (view, query) in SALES_VIEWS {
        let from_view = sorted_rows(client, view).await;
        let from_query = sorted_rows(client, query).await;
        assert_eq!(
            from_view, from_query,
            "{when}: `{view}` differs from `{query}`"
        );
        all.push(from_view);
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn materialized_views_are_rebuilt_after_kill_9() {
    let scratch = Scratch::new("mv-kill9");
    let server = Server::start(&scratch).await;
    let client = server.connect().await;
    exec(
        &client,
        "CREATE TABLE sales (id int PRIMARY KEY, region text NOT NULL, amount int);
         CREATE TABLE regions (name text PRIMARY KEY, manager text NOT NULL);
         INSERT INTO regions VALUES ('north', 'ann'), ('south', 'bob'), ('east', 'ann');
         INSERT INTO sales SELECT n, CASE n % 4 WHEN 0 THEN 'north' WHEN 1 THEN 'south' \
             WHEN 2 THEN 'east' ELSE 'west' END, n * 7 % 101 FROM generate_series(1, 400) AS g(n);
         CREATE MATERIALIZED VIEW by_region (region, n, total, lo, hi) AS
             SELECT region, count(*), sum(amount), min(amount), max(amount) FROM sales GROUP BY region;
         CREATE MATERIALIZED VIEW managed AS
             SELECT s.id, s.amount, r.manager FROM sales s JOIN regions r ON s.region = r.name;
         CREATE MATERIALIZED VIEW spreads AS
             SELECT region, hi - lo AS spread FROM by_region WHERE n >= 2;
         CREATE MATERIALIZED VIEW per_manager AS
             SELECT manager, sum(amount) AS total FROM managed GROUP BY manager;",
    )
    .await;
    // Changes the views follow incrementally: delete each region's current
    // maximum and minimum, update, move rows between regions, add a region.
    exec(
        &client,
        "DELETE FROM sales WHERE amount = (SELECT max(amount) FROM sales);
         DELETE FROM sales WHERE amount = (SELECT min(amount) FROM sales);
         UPDATE sales SET amount = amount + 1000 WHERE id % 50 = 0;
         UPDATE sales SET region = 'north' WHERE id BETWEEN 101 AND 110;
         INSERT INTO regions VALUES ('west', 'cy');
         INSERT INTO sales VALUES (1001, 'north', NULL), (1002, 'lonely', 3);",
    )
    .await;
    exec(&client, "FLUSH").await;
    let flushed = assert_sales_views_match(&client, "before the kill").await;
    // The views are not trivial: every region, manager and join row is there.
    assert_eq!(flushed[0].len(), 5, "{:?}", flushed[0]);
    assert_eq!(flushed[2].len(), 4, "{:?}", flushed[2]);
    assert_eq!(
        flushed[3]
            .iter()
            .map(|r| r.split('|').next().unwrap())
            .collect::<Vec<_>>(),
        vec!["ann", "bob", "cy"]
    );
    // Acknowledged after the last FLUSH, perhaps in no view yet at the kill.
    exec(&client, "DELETE FROM sales WHERE id = 1002").await;
    exec(&client, "UPDATE sales SET amount = 5000 WHERE id = 3").await;
    exec(
        &client,
        "UPDATE regions SET manager = 'dee' WHERE name = 'east'",
    )
    .await;
    let tables = sorted_rows(&client, "SELECT id, region, amount FROM sales").await;
    drop(client);
    server.kill_9();

    let server = Server::start(&scratch).await;
    let client = server.connect().await;
    assert_eq!(
        sorted_rows(&client, "SELECT id, region, amount FROM sales").await,
        tables
    );
    assert_eq!(
        sorted_rows(&client, "SHOW MATERIALIZED VIEWS").await,
        vec!["by_region", "managed", "per_manager", "spreads"]
    );
    let rebuilt = assert_sales_views_match(&client, "after the restart").await;
    assert_eq!(
        rebuilt[0].len(),
        4,
        "the region 'lonely' is gone: {:?}",
        rebuilt[0]
    );
    assert!(
        rebuilt[0]
            .iter()
            .any(|r| r.starts_with("west|") && r.ends_with("|5000")),
        "the last update before the kill is in the view: {:?}",
        rebuilt[0]
    );
    assert!(
        rebuilt[3].iter().any(|r| r.starts_with("dee|")),
        "{:?}",
        rebuilt[3]
    );
    assert_eq!(
        rows(
            &client,
            "SELECT name, state, row_errors FROM freshet_catalog.mv_status ORDER BY name"
        )
        .await,
        vec![
            "by_region|running|0",
            "managed|running|0",
            "per_manager|running|0",
            "spreads|running|0"
        ]
    );
    // The dependencies were persisted too.
    assert_eq!(sqlstate_of(&client, "DROP TABLE sales").await, "2BP01");
    assert_eq!(
        sqlstate_of(&client, "DROP MATERIALIZED VIEW managed").await,
        "2BP01"
    );

    // The rebuilt views keep following new writes.
    exec(
        &client,
        "INSERT INTO sales SELECT n, 'west', n % 13 FROM generate_series(2001, 2100) AS g(n);
         DELETE FROM sales WHERE id = 3;
         UPDATE sales SET amount = -1 WHERE id = 4;
         DELETE FROM regions WHERE name = 'south';
         FLUSH",
    )
    .await;
    let followed = assert_sales_views_match(&client, "after writes on the rebuilt views").await;
    assert_ne!(followed, rebuilt);
    assert!(
        followed[3].iter().all(|r| !r.starts_with("bob|")),
        "{:?}",
        followed[3]
    );
    // A second kill after a DROP: the dropped view stays dropped, the others
    // are rebuilt again.
    exec(&client, "DROP MATERIALIZED VIEW spreads").await;
    exec(&client, "INSERT INTO sales VALUES (3000, 'north', 42)").await;
    drop(client);
    server.kill_9();

    let server = Server::start(&scratch).await;
    let client = server.connect().await;
    assert_eq!(
        sorted_rows(&client, "SHOW MATERIALIZED VIEWS").await,
        vec!["by_region", "managed", "per_manager"]
    );
    assert_eq!(sqlstate_of(&client, "SELECT * FROM spreads").await, "42P01");
    for (view, query) in SALES_VIEWS {
        if view.contains("spreads") {
            continue;
        }
        assert_eq!(
            sorted_rows(&client, view).await,
            sorted_rows(&client, query).await,
            "after the second restart, `{view}` differs from `{query}`"
        );
    }
    assert_eq!(
        rows(
            &client,
            "SELECT amount, manager FROM managed WHERE id = 3000"
        )
        .await,
        vec!["42|ann"]
    );
    drop(client);
    server.kill_9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_before_commit_leaves_nothing_of_the_transaction() {
    let scratch = Scratch::new("txn-kill9");
    let server = Server::start(&scratch).await;
    let setup = server.connect().await;
    exec(
        &setup,
        "CREATE TABLE ledger (id int PRIMARY KEY, v int NOT NULL);
         CREATE TABLE audit (id int PRIMARY KEY, note text);
         CREATE TABLE bystander (x int);
         INSERT INTO ledger SELECT n AS id, n AS v FROM generate_series(1, 10) AS g(n);
         CREATE MATERIALIZED VIEW ledger_total AS SELECT count(*) AS n, sum(v) AS s FROM ledger;",
    )
    .await;

    // Committed, through tokio-postgres's transaction API (BEGIN ... COMMIT
    // around extended-protocol statements with parameters).
    let mut committer = server.connect().await;
    let transaction = committer.transaction().await.unwrap();
    let inserted = transaction
        .execute(
            "INSERT INTO ledger SELECT n, 2 * n FROM generate_series(101, 200) AS g(n)",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(inserted, 100);
    transaction
        .execute("UPDATE ledger SET v = v + 1 WHERE id <= $1", &[&5i32])
        .await
        .unwrap();
    transaction
        .execute("DELETE FROM ledger WHERE id = $1", &[&10i32])
        .await
        .unwrap();
    transaction
        .execute("INSERT INTO audit VALUES ($1, $2)", &[&1i32, &"committed"])
        .await
        .unwrap();
    transaction.commit().await.unwrap();
    let committed_ledger = sorted_rows(&setup, "SELECT id, v FROM ledger").await;
    assert_eq!(committed_ledger.len(), 109);
    let committed_sum: i64 =
        (1..=9i64).sum::<i64>() + 5 + (101..=200i64).map(|n| 2 * n).sum::<i64>();
    exec(&setup, "FLUSH").await;
    assert_eq!(
        rows(&setup, "SELECT n, s FROM ledger_total").await,
        vec![format!("109|{committed_sum}")]
    );

    // Open, never committed: inserts, an update of every row, deletes, and
    // a second table.
    let open = server.connect().await;
    exec(
        &open,
        "BEGIN;
         INSERT INTO ledger SELECT n, 1 FROM generate_series(1001, 3000) AS g(n);
         UPDATE ledger SET v = 0;
         DELETE FROM ledger WHERE id <= 3;
         INSERT INTO audit VALUES (2, 'never');",
    )
    .await;
    // The block sees its own writes; nobody else does, nor does any view.
    assert_eq!(
        rows(&open, "SELECT count(*), sum(v) FROM ledger").await,
        vec!["2106|0"]
    );
    assert_eq!(
        sorted_rows(&setup, "SELECT id, v FROM ledger").await,
        committed_ledger
    );
    exec(&setup, "FLUSH").await;
    assert_eq!(
        rows(&setup, "SELECT n, s FROM ledger_total").await,
        vec![format!("109|{committed_sum}")]
    );
    // A write elsewhere, acknowledged while the block is open.
    exec(&setup, "INSERT INTO bystander VALUES (7)").await;
    drop(setup);
    drop(committer);
    server.kill_9();
    drop(open);

    let server = Server::start(&scratch).await;
    let client = server.connect().await;
    assert_eq!(
        sorted_rows(&client, "SELECT id, v FROM ledger").await,
        committed_ledger
    );
    assert_eq!(
        rows(&client, "SELECT id, note FROM audit ORDER BY id").await,
        vec!["1|committed"]
    );
    assert_eq!(rows(&client, "SELECT x FROM bystander").await, vec!["7"]);
    assert_eq!(
        rows(&client, "SELECT n, s FROM ledger_total").await,
        vec![format!("109|{committed_sum}")]
    );
    // The keys the open block inserted are free; the committed ones taken.
    exec(&client, "INSERT INTO ledger VALUES (1001, 1)").await;
    exec(&client, "INSERT INTO audit VALUES (2, 'now')").await;
    assert_eq!(
        sqlstate_of(&client, "INSERT INTO ledger VALUES (200, 0)").await,
        "23505"
    );
    exec(&client, "FLUSH").await;
    assert_eq!(
        rows(&client, "SELECT n, s FROM ledger_total").await,
        vec![format!("110|{}", committed_sum + 1)]
    );
    drop(client);
    server.kill_9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_committing_transactions_keeps_each_whole_or_absent() {
    let scratch = Scratch::new("txn-inflight");
    let server = Server::start(&scratch).await;
    let setup = server.connect().await;
    exec(
        &setup,
        "CREATE TABLE parts (writer int NOT NULL, txn int NOT NULL, part int NOT NULL,
             PRIMARY KEY (writer, txn, part));
         CREATE TABLE tally (writer int PRIMARY KEY, n int NOT NULL);
         INSERT INTO tally VALUES (0, 0), (1, 0), (2, 0);
         CREATE MATERIALIZED VIEW per_writer AS
             SELECT p.writer, count(*) AS parts, count(DISTINCT p.txn) AS txns, t.n
             FROM parts p JOIN tally t ON p.writer = t.writer GROUP BY p.writer, t.n;",
    )
    .await;
    drop(setup);
    const WRITERS: i32 = 3;
    const PARTS: i32 = 4;
    const ATTEMPTS: i32 = 1_000;
    let committed = Arc::new(AtomicUsize::new(0));
    let progress = Arc::new(tokio::sync::Notify::new());
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let client = server.connect().await;
        let committed = committed.clone();
        let progress = progress.clone();
        tasks.push(tokio::spawn(async move {
            // Transaction txn writes PARTS rows, one statement each, and adds
            // PARTS to the writer's tally; returns how many COMMITs were
            // acknowledged (txn 0..n, in order).
            let mut acked = 0;
            for txn in 0..ATTEMPTS {
                let mut sql = String::from("BEGIN;");
                for part in 0..PARTS {
                    sql.push_str(&format!(
                        "INSERT INTO parts VALUES ({writer}, {txn}, {part});"
                    ));
                }
                sql.push_str(&format!(
                    "UPDATE tally SET n = n + {PARTS} WHERE writer = {writer}; COMMIT"
                ));
                if client.batch_execute(&sql).await.is_err() {
                    break; // the server is gone
                }
                acked += 1;
                committed.fetch_add(1, Ordering::SeqCst);
                progress.notify_one();
            }
            acked
        }));
    }
    while committed.load(Ordering::SeqCst) < 60 {
        progress.notified().await;
    }
    server.kill_9();
    let mut acked = Vec::new();
    for task in tasks {
        acked.push(task.await.unwrap());
    }
    assert!(
        acked.iter().all(|&n| n < ATTEMPTS),
        "the writers should have been cut off: {acked:?}"
    );

    let server = Server::start(&scratch).await;
    let client = server.connect().await;
    let mut wrong = Vec::new();
    for (writer, &n) in acked.iter().enumerate() {
        // Every transaction present has all its parts, and the tally agrees.
        let per_txn = rows(
            &client,
            &format!(
                "SELECT count(*), min(c), max(c), min(txn), max(txn) FROM \
                 (SELECT txn, count(*) AS c FROM parts WHERE writer = {writer} GROUP BY txn) x"
            ),
        )
        .await;
        let fields: Vec<&str> = per_txn[0].split('|').collect();
        let txns: i32 = fields[0].parse().unwrap();
        if txns < n || txns > n + 1 {
            wrong.push(format!(
                "writer {writer}: {n} COMMITs acknowledged, {txns} transactions found"
            ));
        }
        if txns > 0 {
            let expected = format!("{txns}|{PARTS}|{PARTS}|0|{}", txns - 1);
            if per_txn[0] != expected {
                wrong.push(format!(
                    "writer {writer}: expected {expected}, found {}",
                    per_txn[0]
                ));
            }
        }
        let tally = rows(
            &client,
            &format!("SELECT n FROM tally WHERE writer = {writer}"),
        )
        .await;
        if tally != vec![(txns * PARTS).to_string()] {
            wrong.push(format!(
                "writer {writer}: {txns} transactions but tally {tally:?}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    let query = "SELECT p.writer, count(*), count(DISTINCT p.txn), t.n \
                 FROM parts p JOIN tally t ON p.writer = t.writer GROUP BY p.writer, t.n";
    let view = sorted_rows(&client, "SELECT writer, parts, txns, n FROM per_writer").await;
    assert_eq!(view, sorted_rows(&client, query).await);
    assert_eq!(view.len(), WRITERS as usize);
    drop(client);
    server.kill_9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_views_and_the_views_over_them_survive_kill_9() {
    let scratch = Scratch::new("views-kill9");
    let server = Server::start(&scratch).await;
    let client = server.connect().await;
    // Created interleaved: a view, an MV over it, a view over the MV. A
    // restart must bring them back in that order.
    exec(
        &client,
        "CREATE TABLE t (k int PRIMARY KEY, g text, v int);
         INSERT INTO t VALUES (1, 'a', 10), (2, 'a', 20), (3, 'b', 5), (4, NULL, 7);
         CREATE VIEW big (key, grp, val) AS SELECT k, g, v FROM t WHERE v > 6;
         CREATE MATERIALIZED VIEW per_group AS SELECT grp, count(*) AS n, sum(val) AS s FROM big GROUP BY grp;
         CREATE VIEW busy AS SELECT grp, s FROM per_group WHERE n >= 2;
         CREATE OR REPLACE VIEW later AS SELECT count(*) AS rows FROM t;
         CREATE OR REPLACE VIEW later AS SELECT count(*) AS rows, max(v) AS top FROM t;",
    )
    .await;
    drop(client);
    server.kill_9();

    let server = Server::start(&scratch).await;
    let client = server.connect().await;
    exec(&client, "INSERT INTO t VALUES (5, 'b', 9); FLUSH").await;
    assert_eq!(
        sorted_rows(&client, "SELECT key, grp, val FROM big").await,
        sorted_rows(&client, "SELECT k, g, v FROM t WHERE v > 6").await
    );
    assert_eq!(
        sorted_rows(&client, "SELECT grp, s FROM busy").await,
        vec!["a|30"]
    );
    assert_eq!(
        rows(&client, "SELECT rows, top FROM later").await,
        vec!["5|20"]
    );
    assert_eq!(
        sorted_rows(
            &client,
            "SELECT viewname FROM pg_views WHERE schemaname = 'public'"
        )
        .await,
        vec!["big", "busy", "later"]
    );
    // The dependencies were persisted too.
    assert_eq!(sqlstate_of(&client, "DROP VIEW big").await, "2BP01");
    assert_eq!(
        sqlstate_of(&client, "DROP MATERIALIZED VIEW per_group").await,
        "2BP01"
    );
    assert_eq!(
        sqlstate_of(
            &client,
            "CREATE OR REPLACE VIEW big AS SELECT k, g, v, 1 AS one FROM t"
        )
        .await,
        "0A000"
    );
    exec(&client, "DROP TABLE t CASCADE").await;
    assert_eq!(
        rows(
            &client,
            "SELECT count(*) FROM pg_views WHERE schemaname = 'public'"
        )
        .await,
        vec!["0"]
    );
    assert_eq!(sqlstate_of(&client, "SELECT * FROM busy").await, "42P01");
    drop(client);
    server.kill_9();

    let server = Server::start(&scratch).await;
    let client = server.connect().await;
    exec(
        &client,
        "CREATE TABLE t (k int); CREATE VIEW big AS SELECT k FROM t",
    )
    .await;
    assert_eq!(rows(&client, "SELECT count(*) FROM big").await, vec!["0"]);
    drop(client);
    server.kill_9();
}

/// An MV whose rebuild fails at start (its data now overflows) does not
/// keep the server from starting: it reports its error, the others run,
/// and it can be dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_that_fails_to_rebuild_does_not_stop_the_start() {
    let scratch = Scratch::new("mv-fails-at-start");
    let server = Server::start(&scratch).await;
    let client = server.connect().await;
    exec(
        &client,
        "CREATE TABLE ov (id int PRIMARY KEY, y numeric(38,0));
         CREATE MATERIALIZED VIEW ov_sum AS SELECT sum(y) AS s FROM ov;
         CREATE MATERIALIZED VIEW ov_n AS SELECT count(*) AS n FROM ov;
         INSERT INTO ov VALUES (1, 99999999999999999999999999999999999999),
             (2, 99999999999999999999999999999999999999);
         FLUSH;",
    )
    .await;
    drop(client);
    server.kill_9();

    let server = Server::start(&scratch).await;
    let client = server.connect().await;
    assert_eq!(rows(&client, "SELECT n FROM ov_n").await, vec!["2"]);
    assert_eq!(
        rows(
            &client,
            "SELECT name, state FROM freshet_catalog.mv_status ORDER BY name"
        )
        .await,
        vec!["ov_n|running", "ov_sum|failed"]
    );
    let error = client
        .simple_query("SELECT * FROM ov_sum")
        .await
        .expect_err("a failed view was read");
    let message = error.as_db_error().expect("an ErrorResponse").message();
    assert!(
        message.contains("could not be rebuilt at start"),
        "{message}"
    );
    exec(
        &client,
        "DROP MATERIALIZED VIEW ov_sum; INSERT INTO ov VALUES (3, 1); FLUSH",
    )
    .await;
    assert_eq!(rows(&client, "SELECT n FROM ov_n").await, vec!["3"]);
    drop(client);
    server.kill_9();
}

/// A SERIAL column's numbers never repeat across a `kill -9`: the numbers
/// handed out before the kill, and acknowledged with their rows, are not
/// handed out again (numbers may be skipped, as in PostgreSQL), also after
/// a second restart and for numbers drawn by COPY.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_numbers_never_repeat_after_kill_9() {
    let scratch = Scratch::new("serial");
    let server = Server::start(&scratch).await;
    let client = server.connect().await;
    exec(
        &client,
        "CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL)",
    )
    .await;
    for name in ["a", "b", "c"] {
        exec(
            &client,
            &format!("INSERT INTO items (name) VALUES ('{name}')"),
        )
        .await;
    }
    assert_eq!(
        rows(&client, "SELECT id FROM items ORDER BY id").await,
        ["1", "2", "3"]
    );
    drop(client);
    server.kill_9();

    for round in ["d", "e"] {
        let server = Server::start(&scratch).await;
        let client = server.connect().await;
        exec(
            &client,
            &format!("INSERT INTO items (name) VALUES ('{round}')"),
        )
        .await;
        let ids = rows(&client, "SELECT id FROM items ORDER BY id").await;
        let numbers: Vec<i64> = ids.iter().map(|id| id.parse().unwrap()).collect();
        assert!(
            numbers.windows(2).all(|w| w[0] < w[1]),
            "ids after a restart: {numbers:?}"
        );
        drop(client);
        server.kill_9();
    }
    let server = Server::start(&scratch).await;
    let client = server.connect().await;
    assert_eq!(
        rows(&client, "SELECT count(*), count(DISTINCT id) FROM items").await,
        ["5|5"]
    );
    drop(client);
    server.kill_9();
}
