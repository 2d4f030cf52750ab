//! Runs every `sql-tests/**/*.slt` file against a fresh in-process server,
//! over a real pgwire connection (tokio-postgres, simple query protocol).
//!
//! `FRESHET_SLT=name` runs only files whose path contains `name`.
//! `FRESHET_SLT_COMPLETE=1` rewrites the expected results in place: read the
//! diff and check every answer by hand (or against PostgreSQL) before
//! committing it.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType, Runner};
use tokio_postgres::{Client, SimpleQueryMessage};

use common::TestServer;

struct Connection {
    client: Client,
}

/// tokio-postgres prints every server error as "db error"; the tests match
/// on the server's message, so show that.
#[derive(Debug)]
struct DbError(tokio_postgres::Error);

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.as_db_error() {
            Some(e) => write!(f, "{}", e.message()),
            None => write!(f, "{}", self.0),
        }
    }
}

impl std::error::Error for DbError {}

#[async_trait]
impl AsyncDB for Connection {
    type Error = DbError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, Self::Error> {
        let messages = self.client.simple_query(sql).await.map_err(DbError)?;
        let mut rows = Vec::new();
        let mut columns = None;
        let mut affected = 0;
        for message in messages {
            match message {
                SimpleQueryMessage::RowDescription(fields) => columns = Some(fields.len()),
                SimpleQueryMessage::Row(row) => {
                    columns = Some(row.len());
                    rows.push(
                        (0..row.len())
                            .map(|i| match row.get(i) {
                                None => "NULL".to_string(),
                                Some("") => "(empty)".to_string(),
                                Some(v) => v.to_string(),
                            })
                            .collect(),
                    );
                }
                SimpleQueryMessage::CommandComplete(n) => affected = n,
                _ => {}
            }
        }
        Ok(match columns {
            Some(n) => DBOutput::Rows {
                types: vec![DefaultColumnType::Any; n],
                rows,
            },
            None => DBOutput::StatementComplete(affected),
        })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "freshet"
    }

    async fn sleep(dur: Duration) {
        tokio::time::sleep(dur).await;
    }

    fn error_sql_state(err: &Self::Error) -> Option<String> {
        err.0.code().map(|c| c.code().to_string())
    }
}

fn slt_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            slt_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "slt") {
            out.push(path);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_logic_tests() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql-tests");
    let mut files = Vec::new();
    slt_files(&root, &mut files);
    files.sort();
    if let Ok(filter) = std::env::var("FRESHET_SLT") {
        files.retain(|f| f.to_string_lossy().contains(&filter));
    }
    assert!(!files.is_empty(), "no .slt files under {}", root.display());
    let complete = std::env::var("FRESHET_SLT_COMPLETE").is_ok();

    let mut failures = Vec::new();
    for file in &files {
        // Each file gets its own server: no state leaks between files.
        let server = TestServer::start().await;
        let url = server.url();
        let mut runner = Runner::new(move || {
            let url = url.clone();
            async move {
                let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .map_err(DbError)?;
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                Ok(Connection { client })
            }
        });
        // `skipif freshet` marks a record whose PostgreSQL answer Freshet
        // does not give yet; each carries a comment saying why.
        runner.add_label("freshet");
        let name = file
            .strip_prefix(&root)
            .unwrap_or(file)
            .display()
            .to_string();
        let result = if complete {
            runner
                .update_test_file(
                    file,
                    " ",
                    sqllogictest::default_validator,
                    sqllogictest::default_normalizer,
                    sqllogictest::default_column_validator,
                )
                .await
                .map_err(|e| e.to_string())
        } else {
            runner
                .run_file_async(file)
                .await
                .map_err(|e| e.display(true).to_string())
        };
        match result {
            Ok(()) => println!("ok   {name}"),
            Err(e) => {
                println!("FAIL {name}\n{e}");
                failures.push(name);
            }
        }
    }
    assert!(failures.is_empty(), "failing slt files: {failures:?}");
}
