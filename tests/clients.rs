//! Client compatibility with tokio-postgres: prepared statements with `$n`
//! parameters, binary and text result formats with PostgreSQL's type OIDs,
//! pipelining, SQLSTATE codes, session settings, large statements, clients
//! that vanish mid-result and concurrent writers. Every test talks to a real
//! in-process server over pgwire; expectations are PostgreSQL's.

mod common;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use futures::future::{join_all, try_join_all};
use futures::{StreamExt, pin_mut};
use serde_json::json;
use tokio_postgres::error::ErrorPosition;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use common::TestServer;

/// The SQLSTATE of a server error; panics (with the error) on anything else.
fn sqlstate(error: &tokio_postgres::Error) -> String {
    match error.code() {
        Some(code) => code.code().to_string(),
        None => panic!("expected a server error with a SQLSTATE, got: {error:?}"),
    }
}

/// Rows of a simple-protocol (text format) query, NULL as `None`.
async fn text_rows(client: &Client, sql: &str) -> Vec<Vec<Option<String>>> {
    let messages = client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    messages
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_string))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

/// The single value of a one-row, one-column text query.
async fn text_value(client: &Client, sql: &str) -> Option<String> {
    let rows = text_rows(client, sql).await;
    assert_eq!(rows.len(), 1, "{sql}: expected one row, got {rows:?}");
    assert_eq!(rows[0].len(), 1, "{sql}: expected one column, got {rows:?}");
    rows[0][0].clone()
}

async fn count(client: &Client, table: &str) -> i64 {
    client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap_or_else(|e| panic!("count of {table}: {e:?}"))
        .get(0)
}

/// The connection still answers after an error.
async fn assert_alive(client: &Client) {
    let rows = text_rows(client, "SELECT 41 + 1").await;
    assert_eq!(
        rows,
        vec![vec![Some("42".to_string())]],
        "the connection answers after an error"
    );
}

const SCALARS: &str = "CREATE TABLE scalars (
    id integer PRIMARY KEY,
    b boolean,
    s smallint,
    i integer,
    l bigint,
    r real,
    d double precision,
    t text,
    v varchar(20),
    by bytea
)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_round_trip_of_scalar_types() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client.batch_execute(SCALARS).await.unwrap();

    let insert = client
        .prepare("INSERT INTO scalars (id, b, s, i, l, r, d, t, v, by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
        .await
        .expect("INSERT with parameters prepares");
    let bytes: Vec<u8> = vec![0, 1, 2, 0xfe, 0xff, b'\\', b'x'];
    let inserted = client
        .execute(
            &insert,
            &[
                &1i32,
                &true,
                &-32768i16,
                &2147483647i32,
                &-9223372036854775808i64,
                &1.5f32,
                &-2.25e300f64,
                &"héllo, wörld ✓".to_string(),
                &"varchar value",
                &bytes,
            ],
        )
        .await
        .expect("INSERT with parameters runs");
    assert_eq!(inserted, 1);
    // NULL in every nullable column.
    let nulls: [&(dyn ToSql + Sync); 10] = [
        &2i32,
        &None::<bool>,
        &None::<i16>,
        &None::<i32>,
        &None::<i64>,
        &None::<f32>,
        &None::<f64>,
        &None::<String>,
        &None::<String>,
        &None::<Vec<u8>>,
    ];
    assert_eq!(client.execute(&insert, &nulls).await.unwrap(), 1);

    let select = client
        .prepare("SELECT b, s, i, l, r, d, t, v, by FROM scalars WHERE id = $1")
        .await
        .unwrap();
    let row = client.query_one(&select, &[&1i32]).await.unwrap();
    assert!(row.get::<_, bool>(0));
    assert_eq!(row.get::<_, i16>(1), -32768);
    assert_eq!(row.get::<_, i32>(2), 2147483647);
    assert_eq!(row.get::<_, i64>(3), i64::MIN);
    assert_eq!(row.get::<_, f32>(4), 1.5);
    assert_eq!(row.get::<_, f64>(5), -2.25e300);
    assert_eq!(row.get::<_, String>(6), "héllo, wörld ✓");
    assert_eq!(row.get::<_, String>(7), "varchar value");
    assert_eq!(row.get::<_, Vec<u8>>(8), bytes);

    let row = client.query_one(&select, &[&2i32]).await.unwrap();
    assert_eq!(row.get::<_, Option<bool>>(0), None);
    assert_eq!(row.get::<_, Option<i16>>(1), None);
    assert_eq!(row.get::<_, Option<i32>>(2), None);
    assert_eq!(row.get::<_, Option<i64>>(3), None);
    assert_eq!(row.get::<_, Option<f32>>(4), None);
    assert_eq!(row.get::<_, Option<f64>>(5), None);
    assert_eq!(row.get::<_, Option<String>>(6), None);
    assert_eq!(row.get::<_, Option<String>>(7), None);
    assert_eq!(row.get::<_, Option<Vec<u8>>>(8), None);

    // A parameter in a WHERE clause on every type finds the row.
    let found = client
        .query(
            "SELECT id FROM scalars WHERE s = $1 AND l = $2 AND t = $3 AND by = $4",
            &[&-32768i16, &i64::MIN, &"héllo, wörld ✓", &bytes],
        )
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].get::<_, i32>(0), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_round_trip_of_dates_and_times() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE times (id int PRIMARY KEY, d date, t time, ts timestamp, tz timestamptz)",
        )
        .await
        .unwrap();
    let date = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
    let time = NaiveTime::from_hms_micro_opt(23, 59, 58, 123_456).unwrap();
    let stamp = NaiveDateTime::new(
        NaiveDate::from_ymd_opt(1999, 12, 31).unwrap(),
        NaiveTime::from_hms_micro_opt(1, 2, 3, 4).unwrap(),
    );
    let zoned: DateTime<Utc> = Utc.with_ymd_and_hms(2030, 6, 15, 12, 0, 1).unwrap();
    let old_date = NaiveDate::from_ymd_opt(1900, 1, 1).unwrap();
    let insert = client
        .prepare("INSERT INTO times VALUES ($1, $2, $3, $4, $5)")
        .await
        .unwrap();
    client
        .execute(&insert, &[&1i32, &date, &time, &stamp, &zoned])
        .await
        .unwrap();
    client
        .execute(
            &insert,
            &[
                &2i32,
                &old_date,
                &NaiveTime::from_hms_opt(0, 0, 0).unwrap(),
                &old_date.and_hms_opt(0, 0, 0).unwrap(),
                &Utc.with_ymd_and_hms(1969, 12, 31, 23, 59, 59).unwrap(),
            ],
        )
        .await
        .unwrap();

    let rows = client
        .query("SELECT id, d, t, ts, tz FROM times ORDER BY id", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].get::<_, NaiveDate>(1), date);
    assert_eq!(rows[0].get::<_, NaiveTime>(2), time);
    assert_eq!(rows[0].get::<_, NaiveDateTime>(3), stamp);
    assert_eq!(rows[0].get::<_, DateTime<Utc>>(4), zoned);
    assert_eq!(rows[1].get::<_, NaiveDate>(1), old_date);
    assert_eq!(
        rows[1].get::<_, DateTime<Utc>>(4),
        Utc.with_ymd_and_hms(1969, 12, 31, 23, 59, 59).unwrap()
    );

    // Parameters compare against stored values.
    let found = client
        .query(
            "SELECT id FROM times WHERE d = $1 AND ts = $2 AND tz = $3",
            &[&date, &stamp, &zoned],
        )
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].get::<_, i32>(0), 1);
    let later = client
        .query(
            "SELECT id FROM times WHERE tz > $1 ORDER BY id",
            &[&Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap()],
        )
        .await
        .unwrap();
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].get::<_, i32>(0), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_round_trip_of_json() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute("CREATE TABLE docs (id int PRIMARY KEY, j json, jb jsonb)")
        .await
        .unwrap();
    let doc =
        json!({"name": "ada", "tags": ["x", "y"], "n": 1.5, "nested": {"ok": true, "none": null}});
    let list = json!([1, "two", 3.0]);
    client
        .execute(
            "INSERT INTO docs VALUES ($1, $2, $3)",
            &[&1i32, &doc, &list],
        )
        .await
        .expect("serde_json::Value parameters bind to json and jsonb columns");
    let row = client
        .query_one("SELECT j, jb FROM docs WHERE id = $1", &[&1i32])
        .await
        .unwrap();
    assert_eq!(row.get::<_, serde_json::Value>(0), doc);
    assert_eq!(row.get::<_, serde_json::Value>(1), list);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_literals_read_back_in_binary() {
    // The same values as above, inserted as SQL literals, so that reading
    // json back is tested even if json parameters are not accepted.
    let server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute(
            r#"CREATE TABLE docs (id int PRIMARY KEY, j json, jb jsonb);
               INSERT INTO docs VALUES (1, '{"a": [1, 2], "b": null}', '{"c": "d"}')"#,
        )
        .await
        .unwrap();
    let row = client
        .query_one("SELECT j, jb FROM docs WHERE id = 1", &[])
        .await
        .unwrap();
    assert_eq!(
        row.get::<_, serde_json::Value>(0),
        json!({"a": [1, 2], "b": null})
    );
    assert_eq!(row.get::<_, serde_json::Value>(1), json!({"c": "d"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numeric_reads_back_as_text() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE money (id int PRIMARY KEY, amount numeric(10,2));
             INSERT INTO money VALUES (1, 12.5), (2, -0.01), (3, 99999999.99), (4, NULL)",
        )
        .await
        .unwrap();
    // Binary format, through a text cast.
    let rows = client
        .query("SELECT amount::text FROM money ORDER BY id", &[])
        .await
        .unwrap();
    let amounts: Vec<Option<String>> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(
        amounts,
        vec![
            Some("12.50".to_string()),
            Some("-0.01".to_string()),
            Some("99999999.99".to_string()),
            None
        ]
    );
    // Text format.
    let rows = text_rows(&client, "SELECT amount FROM money ORDER BY id").await;
    assert_eq!(
        rows,
        vec![
            vec![Some("12.50".to_string())],
            vec![Some("-0.01".to_string())],
            vec![Some("99999999.99".to_string())],
            vec![None],
        ]
    );
    assert_eq!(
        text_value(&client, "SELECT sum(amount) FROM money")
            .await
            .as_deref(),
        Some("100000012.48")
    );
    // A numeric parameter compared by a prepared statement (sent as text by
    // the cast, as a driver without a decimal type does).
    let rows = client
        .query(
            "SELECT id FROM money WHERE amount > CAST(CAST($1 AS text) AS numeric) ORDER BY id",
            &[&"0"],
        )
        .await
        .expect("a text parameter cast to numeric");
    let ids: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(ids, vec![1, 3]);
}

const ALL_TYPES: &str = "CREATE TABLE every (
    i int PRIMARY KEY, b bool, s int2, l int8, r float4, d float8, n numeric(10,2),
    t text, v varchar(20), c char(3), dt date, tm time, ts timestamp, tz timestamptz,
    j json, jb jsonb, by bytea, u uuid, iv interval
)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn result_columns_carry_postgres_type_oids() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client.batch_execute(ALL_TYPES).await.unwrap();
    let stmt = client
        .prepare("SELECT i, b, s, l, r, d, n, t, v, c, dt, tm, ts, tz, j, jb, by, u, iv FROM every")
        .await
        .unwrap();
    let expected = [
        ("i", Type::INT4),
        ("b", Type::BOOL),
        ("s", Type::INT2),
        ("l", Type::INT8),
        ("r", Type::FLOAT4),
        ("d", Type::FLOAT8),
        ("n", Type::NUMERIC),
        ("t", Type::TEXT),
        ("v", Type::VARCHAR),
        ("c", Type::BPCHAR),
        ("dt", Type::DATE),
        ("tm", Type::TIME),
        ("ts", Type::TIMESTAMP),
        ("tz", Type::TIMESTAMPTZ),
        ("j", Type::JSON),
        ("jb", Type::JSONB),
        ("by", Type::BYTEA),
        ("u", Type::UUID),
        ("iv", Type::INTERVAL),
    ];
    let mut wrong = Vec::new();
    for (column, (name, ty)) in stmt.columns().iter().zip(&expected) {
        if column.name() != *name || column.type_() != ty {
            wrong.push(format!(
                "column {name}: expected {ty}, got {} {}",
                column.name(),
                column.type_()
            ));
        }
    }
    assert_eq!(stmt.columns().len(), expected.len());

    // Expressions get PostgreSQL's result types too. Known difference, not
    // checked here (docs/sql.md): integer literals are bigint, so `1` and
    // `41 + 1` are int8 where PostgreSQL says int4.
    let stmt = client
        .prepare(
            "SELECT count(*), 1.5::float8, 'x'::text, true, now(), CAST(1 AS bigint) + 1, 41::int4",
        )
        .await
        .unwrap();
    let expected = [
        ("count(*)", Type::INT8),
        ("1.5::float8", Type::FLOAT8),
        ("'x'::text", Type::TEXT),
        ("true", Type::BOOL),
        ("now()", Type::TIMESTAMPTZ),
        ("CAST(1 AS bigint) + 1", Type::INT8),
        ("41::int4", Type::INT4),
    ];
    assert_eq!(stmt.columns().len(), expected.len());
    for (column, (expr, ty)) in stmt.columns().iter().zip(&expected) {
        if column.type_() != ty {
            wrong.push(format!("{expr}: expected {ty}, got {}", column.type_()));
        }
    }
    assert!(
        wrong.is_empty(),
        "type OIDs differ from PostgreSQL:\n{}",
        wrong.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameters_carry_postgres_type_oids() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client.batch_execute(ALL_TYPES).await.unwrap();
    let stmt = client
        .prepare(
            "INSERT INTO every (i, b, s, l, r, d, n, t, v, dt, tm, ts, tz, j, jb, by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        )
        .await
        .unwrap();
    assert_eq!(
        stmt.params(),
        &[
            Type::INT4,
            Type::BOOL,
            Type::INT2,
            Type::INT8,
            Type::FLOAT4,
            Type::FLOAT8,
            Type::NUMERIC,
            Type::TEXT,
            Type::VARCHAR,
            Type::DATE,
            Type::TIME,
            Type::TIMESTAMP,
            Type::TIMESTAMPTZ,
            Type::JSON,
            Type::JSONB,
            Type::BYTEA,
        ]
    );
    let stmt = client
        .prepare("SELECT i FROM every WHERE l = $1 AND t = $2")
        .await
        .unwrap();
    assert_eq!(stmt.params(), &[Type::INT8, Type::TEXT]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_format_matches_postgres() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client.batch_execute(ALL_TYPES).await.unwrap();
    client
        .batch_execute(
            r#"INSERT INTO every VALUES (1, true, -2, 9000000000, 1.5, 2.25, 12.3, 'text', 'var', 'ab',
               '2024-01-02', '03:04:05', '2024-01-02 03:04:05', '2024-01-02 03:04:05+00',
               '{"a":1}', '{"b": [1, 2]}', '\x0102ff', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
               INTERVAL '1 day 2 hours');
               INSERT INTO every (i, b) VALUES (2, false)"#,
        )
        .await
        .unwrap();
    let rows = text_rows(
        &client,
        "SELECT i, b, s, l, r, d, n, t, v, c, dt, tm, ts, tz, j, jb, by, u, iv FROM every ORDER BY i",
    )
    .await;
    let expected: Vec<Option<&str>> = vec![
        Some("1"),
        Some("t"),
        Some("-2"),
        Some("9000000000"),
        Some("1.5"),
        Some("2.25"),
        Some("12.30"),
        Some("text"),
        Some("var"),
        Some("ab "),
        Some("2024-01-02"),
        Some("03:04:05"),
        Some("2024-01-02 03:04:05"),
        Some("2024-01-02 03:04:05+00"),
        Some(r#"{"a":1}"#),
        Some(r#"{"b": [1, 2]}"#),
        Some(r"\x0102ff"),
        Some("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
        Some("1 day 02:00:00"),
    ];
    let expected: Vec<Option<String>> = expected
        .into_iter()
        .map(|v| v.map(str::to_string))
        .collect();
    assert_eq!(rows.len(), 2);
    let mismatches: Vec<String> = rows[0]
        .iter()
        .zip(&expected)
        .enumerate()
        .filter(|(_, (a, e))| a != e)
        .map(|(i, (a, e))| format!("column {i}: expected {e:?}, got {a:?}"))
        .collect();
    assert!(
        mismatches.is_empty(),
        "text format differs from PostgreSQL:\n{}",
        mismatches.join("\n")
    );
    assert_eq!(rows[1][1].as_deref(), Some("f"));
    assert!(
        rows[1][2..].iter().all(Option::is_none),
        "NULLs: {:?}",
        rows[1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_and_delete_with_parameters() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute("CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL, qty int)")
        .await
        .unwrap();
    let insert = client
        .prepare("INSERT INTO items (id, name, qty) VALUES ($1, $2, $3)")
        .await
        .unwrap();
    for id in 1..=10i64 {
        let qty = id as i32 * 10;
        let n = client
            .execute(&insert, &[&id, &format!("item-{id}"), &qty])
            .await
            .unwrap();
        assert_eq!(n, 1);
    }
    let update = client
        .prepare("UPDATE items SET qty = qty + $1, name = $2 WHERE id <= $3")
        .await
        .unwrap();
    assert_eq!(
        client
            .execute(&update, &[&5i32, &"cheap", &3i64])
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        client
            .execute(&update, &[&1i32, &"none", &0i64])
            .await
            .unwrap(),
        0
    );
    let delete = client
        .prepare("DELETE FROM items WHERE id = $1 OR name = $2")
        .await
        .unwrap();
    assert_eq!(
        client.execute(&delete, &[&10i64, &"cheap"]).await.unwrap(),
        4
    );
    assert_eq!(
        client
            .execute(&delete, &[&10i64, &"nothing"])
            .await
            .unwrap(),
        0
    );

    let rows = client
        .query(
            "SELECT id, name, qty FROM items WHERE qty >= $1 ORDER BY id",
            &[&0i32],
        )
        .await
        .unwrap();
    let got: Vec<(i64, String, i32)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let expected: Vec<(i64, String, i32)> = (4..=9)
        .map(|id| (id, format!("item-{id}"), id as i32 * 10))
        .collect();
    assert_eq!(got, expected);

    // The same through the simple protocol.
    let messages = client
        .simple_query("UPDATE items SET qty = 0 WHERE id IN (4, 5); DELETE FROM items WHERE id = 9")
        .await
        .unwrap();
    let affected: Vec<u64> = messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::CommandComplete(n) => Some(*n),
            _ => None,
        })
        .collect();
    assert_eq!(affected, vec![2, 1]);
    assert_eq!(
        text_rows(&client, "SELECT id, qty FROM items ORDER BY id").await,
        vec![
            vec![Some("4".into()), Some("0".into())],
            vec![Some("5".into()), Some("0".into())],
            vec![Some("6".into()), Some("60".into())],
            vec![Some("7".into()), Some("70".into())],
            vec![Some("8".into()), Some("80".into())],
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_queries_on_one_connection() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE p (id int PRIMARY KEY, v text);
             INSERT INTO p SELECT n, 'v' || n FROM generate_series(1, 200) AS g(n)",
        )
        .await
        .unwrap();
    assert_eq!(count(&client, "p").await, 200);
    let stmt = client
        .prepare("SELECT v FROM p WHERE id = $1")
        .await
        .unwrap();

    // 100 executions of one prepared statement in flight at once.
    let ids: Vec<i32> = (1..=100).rev().collect();
    let results = try_join_all(ids.iter().map(|id| {
        let (client, stmt) = (&client, &stmt);
        async move { client.query_one(stmt, &[id]).await }
    }))
    .await
    .unwrap();
    for (id, row) in ids.iter().zip(&results) {
        assert_eq!(row.get::<_, String>(0), format!("v{id}"));
    }

    // Different statements, prepared and executed concurrently, with writes
    // between reads: one connection runs them in the order they were sent.
    let (a, b, c, d, e) = futures::join!(
        client.query_one("SELECT count(*) FROM p", &[]),
        client.execute("INSERT INTO p VALUES ($1, $2)", &[&1000i32, &"late"]),
        client.query_one("SELECT count(*) FROM p", &[]),
        client.query("SELECT id FROM p WHERE id > $1 ORDER BY id", &[&198i32]),
        client.query_one("SELECT v FROM p WHERE id = $1", &[&1000i32]),
    );
    assert_eq!(a.unwrap().get::<_, i64>(0), 200);
    assert_eq!(b.unwrap(), 1);
    assert_eq!(c.unwrap().get::<_, i64>(0), 201);
    let ids: Vec<i32> = d.unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(ids, vec![199, 200, 1000]);
    assert_eq!(e.unwrap().get::<_, String>(0), "late");

    // An error in the middle of a pipeline fails only its own query.
    let results = join_all(vec![
        client.query("SELECT v FROM p WHERE id = $1", &[&1i32]),
        client.query("SELECT v FROM no_such_table WHERE id = $1", &[&1i32]),
        client.query("SELECT v FROM p WHERE id = $1", &[&2i32]),
    ])
    .await;
    assert_eq!(results[0].as_ref().unwrap()[0].get::<_, String>(0), "v1");
    assert_eq!(sqlstate(results[1].as_ref().unwrap_err()), "42P01");
    assert_eq!(results[2].as_ref().unwrap()[0].get::<_, String>(0), "v2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_carry_postgres_sqlstates() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE e (id int PRIMARY KEY, name text NOT NULL, small smallint);
             INSERT INTO e VALUES (1, 'one', 1)",
        )
        .await
        .unwrap();
    let cases: &[(&str, &str)] = &[
        ("SELEC 1", "42601"),
        ("SELECT * FROM no_such_table", "42P01"),
        ("INSERT INTO no_such_table VALUES (1)", "42P01"),
        ("SELECT no_such_column FROM e", "42703"),
        ("UPDATE e SET no_such_column = 1", "42703"),
        ("INSERT INTO e VALUES (1, 'again', 2)", "23505"),
        ("INSERT INTO e (id, small) VALUES (2, 2)", "23502"),
        ("INSERT INTO e VALUES (3, NULL, 3)", "23502"),
        ("UPDATE e SET name = NULL", "23502"),
        ("SELECT 1 / 0", "22012"),
        ("SELECT id / (small - 1) FROM e", "22012"),
        ("INSERT INTO e VALUES (4, 'big', 100000)", "22003"),
        ("SELECT CAST(100000 AS smallint)", "22003"),
        ("SELECT 'abc'::int", "22P02"),
        ("CREATE TABLE e (x int)", "42P07"),
        ("SELECT no_such_function(1)", "42883"),
    ];
    let mut wrong = Vec::new();
    for (sql, expected) in cases {
        for protocol in ["simple", "extended"] {
            let result = match protocol {
                "simple" => client.simple_query(sql).await.map(|_| ()),
                _ => client.query(*sql, &[]).await.map(|_| ()),
            };
            match result {
                Ok(()) => wrong.push(format!("{protocol} {sql}: succeeded, expected {expected}")),
                Err(e) => match e.code() {
                    Some(code) if code.code() == *expected => {}
                    _ => wrong.push(format!(
                        "{protocol} {sql}: expected {expected}, got {:?} ({})",
                        e.code().map(|c| c.code()),
                        e.as_db_error()
                            .map(|d| d.message())
                            .unwrap_or("no server error")
                    )),
                },
            }
            assert_alive(&client).await;
        }
    }
    // Nothing the failed statements tried to write landed.
    assert_eq!(
        text_rows(&client, "SELECT id, name, small FROM e ORDER BY id").await,
        vec![vec![Some("1".into()), Some("one".into()), Some("1".into())]]
    );
    assert!(wrong.is_empty(), "wrong SQLSTATEs:\n{}", wrong.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syntax_errors_report_their_position() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    // PostgreSQL 15: "syntax error at or near "SELEC"", position 1;
    // "syntax error at or near ";"", position 11; the position is 1-based
    // in characters.
    for (sql, position) in [
        ("SELEC 1", 1u32),
        ("SELECT 1 +;", 11),
        ("SELECT 'é', 1 +;", 16),
    ] {
        for protocol in ["simple", "extended"] {
            let error = match protocol {
                "simple" => client.simple_query(sql).await.map(|_| ()),
                _ => client.prepare(sql).await.map(|_| ()),
            }
            .expect_err(sql);
            assert_eq!(sqlstate(&error), "42601", "{protocol} {sql}");
            let db = error.as_db_error().unwrap();
            assert!(
                db.message().contains("syntax error"),
                "{protocol} {sql}: {}",
                db.message()
            );
            assert_eq!(
                db.position(),
                Some(&ErrorPosition::Original(position)),
                "{protocol} {sql}: {}",
                db.message()
            );
            assert_alive(&client).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_multi_row_insert_lands_no_row() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE m (id int PRIMARY KEY, name text NOT NULL, small smallint, v varchar(3));
             INSERT INTO m VALUES (1, 'a', 1, 'x')",
        )
        .await
        .unwrap();
    let cases = [
        (
            "INSERT INTO m VALUES (2, 'b', 2, 'y'), (3, 'c', 3, 'z'), (1, 'dup', 4, 'w')",
            "23505",
        ),
        (
            "INSERT INTO m VALUES (2, 'b', 2, 'y'), (2, 'c', 3, 'z')",
            "23505",
        ),
        (
            "INSERT INTO m VALUES (2, 'b', 2, 'y'), (3, NULL, 3, 'z')",
            "23502",
        ),
        (
            "INSERT INTO m VALUES (2, 'b', 2, 'y'), (3, 'c', 40000, 'z')",
            "22003",
        ),
        (
            "INSERT INTO m VALUES (2, 'b', 2, 'y'), (3, 'c', 3, 'toolong')",
            "22001",
        ),
        (
            "INSERT INTO m SELECT n, 'g', (100 / (5 - n))::smallint, 'q' FROM generate_series(2, 5) AS g(n)",
            "22012",
        ),
    ];
    for (sql, expected) in cases {
        let error = client.simple_query(sql).await.expect_err(sql);
        assert_eq!(sqlstate(&error), expected, "{sql}: {error:?}");
        assert_eq!(count(&client, "m").await, 1, "after {sql}");
    }
    // An UPDATE that fails on one of its rows changes none.
    client
        .execute("INSERT INTO m VALUES (2, 'b', 2, 'y')", &[])
        .await
        .unwrap();
    let error = client
        .simple_query("UPDATE m SET small = small * 20000")
        .await
        .expect_err("smallint overflow on the second row");
    assert_eq!(sqlstate(&error), "22003");
    assert_eq!(
        text_rows(&client, "SELECT id, small FROM m ORDER BY id").await,
        vec![
            vec![Some("1".into()), Some("1".into())],
            vec![Some("2".into()), Some("2".into())]
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_and_show_session_settings() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    let cases = [
        ("SET search_path TO public", "search_path", "public"),
        (
            "SET search_path = public, pg_catalog",
            "search_path",
            "public, pg_catalog",
        ),
        ("SET client_encoding TO 'UTF8'", "client_encoding", "UTF8"),
        ("SET DateStyle = 'ISO, DMY'", "DateStyle", "ISO, DMY"),
        ("SET TimeZone = 'Europe/Paris'", "TimeZone", "Europe/Paris"),
        ("SET TIME ZONE 'UTC'", "TimeZone", "UTC"),
        (
            "SET application_name = 'freshet-tests'",
            "application_name",
            "freshet-tests",
        ),
        ("SET statement_timeout = '30s'", "statement_timeout", "30s"),
        ("SET extra_float_digits = 3", "extra_float_digits", "3"),
    ];
    for (set, name, value) in cases {
        client
            .simple_query(set)
            .await
            .unwrap_or_else(|e| panic!("{set}: {e:?}"));
        assert_eq!(
            text_value(&client, &format!("SHOW {name}"))
                .await
                .as_deref(),
            Some(value),
            "SHOW {name} after {set}"
        );
        // SHOW through the extended protocol too (tokio-postgres `query`).
        let row = client
            .query_one(&format!("SHOW {name}"), &[])
            .await
            .unwrap();
        assert_eq!(row.get::<_, String>(0), value, "extended SHOW {name}");
        assert_eq!(row.columns()[0].name().to_lowercase(), name.to_lowercase());
    }
    // Settings belong to one session.
    let other = server.connect().await;
    assert_eq!(
        text_value(&other, "SHOW application_name").await.as_deref(),
        Some("")
    );
    assert_eq!(
        text_value(&other, "SHOW statement_timeout")
            .await
            .as_deref(),
        Some("0")
    );
    let error = client
        .simple_query("SHOW no_such_setting")
        .await
        .expect_err("unknown setting");
    assert_eq!(sqlstate(&error), "42704");
    assert_alive(&client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_restores_defaults() {
    // Connection poolers and drivers send RESET / RESET ALL between clients.
    let server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute("SET statement_timeout = '30s'; SET application_name = 'x'")
        .await
        .unwrap();
    client
        .simple_query("RESET statement_timeout")
        .await
        .expect("RESET statement_timeout");
    assert_eq!(
        text_value(&client, "SHOW statement_timeout")
            .await
            .as_deref(),
        Some("0")
    );
    client.simple_query("RESET ALL").await.expect("RESET ALL");
    assert_eq!(
        text_value(&client, "SHOW application_name")
            .await
            .as_deref(),
        Some("")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn driver_housekeeping_statements_are_accepted() {
    // psycopg sends DEALLOCATE ALL after a rollback once it has prepared
    // statements; poolers send DISCARD ALL; both must answer like PostgreSQL.
    let server = TestServer::start().await;
    let client = server.connect().await;
    let mut wrong = Vec::new();
    for sql in ["DEALLOCATE ALL", "DISCARD ALL", "DEALLOCATE PREPARE ALL"] {
        if let Err(e) = client.simple_query(sql).await {
            wrong.push(format!(
                "{sql}: {:?} {}",
                e.code(),
                e.as_db_error().map(|d| d.message()).unwrap_or("")
            ));
        }
        assert_alive(&client).await;
    }
    // A prepared statement named in SQL can be deallocated by name.
    match client
        .simple_query("PREPARE two AS SELECT 2; EXECUTE two; DEALLOCATE two")
        .await
    {
        Ok(messages) => {
            let values: Vec<String> = messages
                .iter()
                .filter_map(|m| match m {
                    SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
                    _ => None,
                })
                .collect();
            if values != ["2"] {
                wrong.push(format!("EXECUTE two returned {values:?}"));
            }
        }
        Err(e) => wrong.push(format!(
            "PREPARE/EXECUTE/DEALLOCATE: {:?} {}",
            e.code(),
            e.as_db_error().map(|d| d.message()).unwrap_or("")
        )),
    }
    assert_alive(&client).await;
    assert!(wrong.is_empty(), "not accepted:\n{}", wrong.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_blocks_commit() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    client
        .batch_execute("CREATE TABLE tx (id int PRIMARY KEY, v text)")
        .await
        .unwrap();
    client
        .batch_execute(
            "BEGIN; INSERT INTO tx VALUES (1, 'a'); INSERT INTO tx VALUES (2, 'b'); COMMIT",
        )
        .await
        .unwrap();
    client.simple_query("BEGIN").await.unwrap();
    client
        .execute("INSERT INTO tx VALUES ($1, $2)", &[&3i32, &"c"])
        .await
        .unwrap();
    client.simple_query("COMMIT").await.unwrap();
    // tokio-postgres's transaction API sends BEGIN and COMMIT itself.
    let transaction = client.transaction().await.unwrap();
    transaction
        .execute("INSERT INTO tx VALUES ($1, $2)", &[&4i32, &"d"])
        .await
        .unwrap();
    transaction
        .execute("UPDATE tx SET v = upper(v) WHERE id = $1", &[&1i32])
        .await
        .unwrap();
    transaction.commit().await.unwrap();
    client
        .batch_execute(
            "START TRANSACTION ISOLATION LEVEL READ COMMITTED; DELETE FROM tx WHERE id = 2; END",
        )
        .await
        .unwrap();
    assert_eq!(
        text_rows(&client, "SELECT id, v FROM tx ORDER BY id").await,
        vec![
            vec![Some("1".into()), Some("A".into())],
            vec![Some("3".into()), Some("c".into())],
            vec![Some("4".into()), Some("d".into())],
        ]
    );
    // Another session sees what was committed.
    let other = server.connect().await;
    assert_eq!(count(&other, "tx").await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_timeout_leaves_normal_queries_alone() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute(
            "SET statement_timeout = '60s'; CREATE TABLE st (id int PRIMARY KEY, v text)",
        )
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO st SELECT n, 'x' FROM generate_series(1, 1000) AS g(n)",
            &[],
        )
        .await
        .unwrap();
    client
        .execute("UPDATE st SET v = 'y' WHERE id % 2 = 0", &[])
        .await
        .unwrap();
    client
        .execute("DELETE FROM st WHERE id > $1", &[&900i32])
        .await
        .unwrap();
    let row = client
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE v = 'y') FROM st",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 900);
    assert_eq!(row.get::<_, i64>(1), 450);
    client
        .batch_execute("SET statement_timeout = 5000")
        .await
        .unwrap();
    assert_eq!(count(&client, "st").await, 900);
    client
        .batch_execute("SET statement_timeout TO 0")
        .await
        .unwrap();
    assert_eq!(count(&client, "st").await, 900);
    // A value PostgreSQL rejects is rejected, and the session goes on.
    let error = client
        .batch_execute("SET statement_timeout = 'soon'")
        .await
        .expect_err("bad statement_timeout");
    assert_eq!(sqlstate(&error), "22023");
    assert_eq!(count(&client, "st").await, 900);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_over_one_mebibyte() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute("CREATE TABLE big (id int PRIMARY KEY, pad text)")
        .await
        .unwrap();
    // One INSERT of 20,000 rows, about 1.3 MiB of SQL.
    let pad = "p".repeat(50);
    let mut sql = String::from("INSERT INTO big VALUES ");
    for i in 0..20_000 {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!("({i}, '{pad}{i}')"));
    }
    assert!(sql.len() > 1024 * 1024, "{} bytes", sql.len());
    let messages = client.simple_query(&sql).await.expect("a 1.3 MiB INSERT");
    assert!(
        messages
            .iter()
            .any(|m| matches!(m, SimpleQueryMessage::CommandComplete(20_000)))
    );
    assert_eq!(count(&client, "big").await, 20_000);

    // One 2 MiB string literal, and one 2 MiB parameter.
    let long = "ab".repeat(1024 * 1024);
    client
        .simple_query(&format!("INSERT INTO big VALUES (-1, '{long}')"))
        .await
        .expect("a 2 MiB literal");
    client
        .execute("INSERT INTO big VALUES ($1, $2)", &[&-2i32, &long])
        .await
        .expect("a 2 MiB parameter");
    let rows = client
        .query(
            "SELECT id, length(pad), pad = $1 FROM big WHERE id < 0 ORDER BY id",
            &[&long],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    for row in &rows {
        assert_eq!(row.get::<_, i32>(1), 2 * 1024 * 1024);
        assert!(row.get::<_, bool>(2));
    }
    // Reading it back whole.
    let row = client
        .query_one("SELECT pad FROM big WHERE id = -2", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), long);
    // The session goes on.
    assert_alive(&client).await;
    assert_eq!(count(&client, "big").await, 20_002);
}

/// Starts a query with a large result on its own connection, reads a few
/// rows (or none), then drops the connection.
async fn abandon_large_result(server: &TestServer, rows_to_read: usize) {
    let (client, connection) = tokio_postgres::connect(&server.url(), NoTls).await.unwrap();
    let conn_task = tokio::spawn(connection);
    let sql = "SELECT a.n, b.n, repeat('x', 40) FROM generate_series(1, 500) AS a(n), generate_series(1, 400) AS b(n)";
    if rows_to_read == 0 {
        // Send the query and disconnect without waiting for anything.
        let query = tokio::spawn(async move {
            let _ = client.simple_query(sql).await;
        });
        tokio::task::yield_now().await;
        query.abort();
        conn_task.abort();
        let _ = query.await;
    } else {
        let params: [&(dyn ToSql + Sync); 0] = [];
        let stream = client
            .query_raw(sql, params.iter().copied())
            .await
            .expect("the large query starts");
        pin_mut!(stream);
        for _ in 0..rows_to_read {
            let row = stream
                .next()
                .await
                .expect("a row")
                .expect("a row, not an error");
            assert_eq!(row.len(), 3);
        }
        conn_task.abort();
        drop(client);
    }
    let _ = conn_task.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_mid_result_does_not_hurt_the_server() {
    let server = TestServer::start().await;
    let writer = server.connect().await;
    writer
        .batch_execute("CREATE TABLE survivors (id int PRIMARY KEY, v text)")
        .await
        .unwrap();
    for (round, rows_to_read) in [10usize, 0, 1000, 10].into_iter().enumerate() {
        abandon_large_result(&server, rows_to_read).await;
        // The existing session and new ones can read and write.
        writer
            .execute(
                "INSERT INTO survivors VALUES ($1, $2)",
                &[&(round as i32), &"ok"],
            )
            .await
            .unwrap();
        let fresh = server.connect().await;
        assert_eq!(count(&fresh, "survivors").await, round as i64 + 1);
        fresh
            .execute(
                "UPDATE survivors SET v = $1 WHERE id = $2",
                &[&"updated", &(round as i32)],
            )
            .await
            .unwrap();
    }
    // The large query itself still runs to completion for a patient client.
    let reader = server.connect().await;
    let row = reader
        .query_one(
            "SELECT count(*), sum(a.n * b.n) FROM generate_series(1, 500) AS a(n), generate_series(1, 400) AS b(n)",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 200_000);
    assert_eq!(row.get::<_, i64>(1), (500 * 501 / 2) * (400 * 401 / 2));
    let rows = reader
        .query(
            "SELECT a.n, b.n FROM generate_series(1, 500) AS a(n), generate_series(1, 400) AS b(n)",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 200_000);
    assert_eq!(
        text_rows(
            &reader,
            "SELECT count(*) FROM survivors WHERE v = 'updated'"
        )
        .await,
        vec![vec![Some("4".into())]]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sessions_writing_one_table_add_up() {
    let server = TestServer::start().await;
    let setup = server.connect().await;
    setup
        .batch_execute(
            "CREATE TABLE events (session int NOT NULL, seq int NOT NULL, payload text);
             CREATE TABLE counter (id int PRIMARY KEY, n bigint NOT NULL);
             INSERT INTO counter VALUES (1, 0)",
        )
        .await
        .unwrap();
    const SESSIONS: i32 = 6;
    const INSERTS: i32 = 40;
    let mut tasks = Vec::new();
    for session in 0..SESSIONS {
        let client = server.connect().await;
        tasks.push(tokio::spawn(async move {
            let insert = client
                .prepare("INSERT INTO events VALUES ($1, $2, $3)")
                .await
                .unwrap();
            for seq in 0..INSERTS {
                client
                    .execute(&insert, &[&session, &seq, &format!("s{session}-{seq}")])
                    .await
                    .unwrap();
                // Read-modify-write in one statement: no increment is lost.
                client
                    .execute("UPDATE counter SET n = n + 1 WHERE id = 1", &[])
                    .await
                    .unwrap();
            }
            // A multi-row insert too.
            client
                .simple_query(&format!(
                    "INSERT INTO events SELECT {session}, 1000 + n, 'bulk' FROM generate_series(1, 100) AS g(n)"
                ))
                .await
                .unwrap();
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let total = (SESSIONS * (INSERTS + 100)) as i64;
    assert_eq!(count(&setup, "events").await, total);
    let rows = setup
        .query(
            "SELECT session, count(*), count(DISTINCT seq) FROM events GROUP BY session ORDER BY session",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), SESSIONS as usize);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row.get::<_, i32>(0), i as i32);
        assert_eq!(row.get::<_, i64>(1), (INSERTS + 100) as i64);
        assert_eq!(row.get::<_, i64>(2), (INSERTS + 100) as i64);
    }
    let n: i64 = setup
        .query_one("SELECT n FROM counter WHERE id = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, (SESSIONS * INSERTS) as i64);
}

/// A query far longer than any machine finishes in a second: 3 billion rows.
const ENDLESS_QUERY: &str = "SELECT count(*) FROM generate_series(1, 3000000000) AS a";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_timeout_cancels_a_long_statement() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client
        .batch_execute("SET statement_timeout = '200ms'")
        .await
        .unwrap();
    let error = client
        .simple_query(ENDLESS_QUERY)
        .await
        .expect_err("the statement outlives its timeout");
    assert_eq!(sqlstate(&error), "57014");
    assert_alive(&client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_request_stops_the_running_statement() {
    // What psql sends on Ctrl-C: a CancelRequest on a second connection.
    let server = TestServer::start().await;
    let client = server.connect().await;
    let cancel = client.cancel_token();
    let canceller = tokio::spawn(async move {
        // Retry until the statement is running and the cancel lands (the
        // task is aborted then); an attempt before the statement starts is
        // ignored by the server. Bounded: at most 1,000 attempts.
        for _ in 0..1000 {
            let _ = cancel.cancel_query(NoTls).await;
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    });
    let error = client
        .simple_query(ENDLESS_QUERY)
        .await
        .expect_err("the statement is cancelled");
    assert_eq!(sqlstate(&error), "57014");
    canceller.abort();
    assert_alive(&client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_transaction_block_ignores_commands_until_it_ends() {
    let server = TestServer::start().await;
    let client = server.connect().await;
    client.batch_execute("BEGIN").await.unwrap();
    let error = client
        .simple_query("SELECT * FROM no_such_table")
        .await
        .expect_err("unknown table");
    assert_eq!(sqlstate(&error), "42P01");
    let error = client
        .simple_query("SELECT 1")
        .await
        .expect_err("the block is aborted");
    assert_eq!(sqlstate(&error), "25P02");
    let tags = client.simple_query("COMMIT").await.unwrap();
    assert!(
        tags.iter()
            .any(|m| matches!(m, SimpleQueryMessage::CommandComplete(_))),
        "COMMIT of an aborted block completes (as ROLLBACK)"
    );
    assert_alive(&client).await;
}
