//! A real Freshet server for tests: started in-process on a free port, with
//! in-memory storage, reached over a real pgwire connection.

#![allow(dead_code)] // each test binary uses a different part of this module

pub mod process;

use std::net::SocketAddr;

use freshet::Storage;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

pub struct TestServer {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(Storage::InMemory).await
    }

    pub async fn start_with(storage: Storage) -> TestServer {
        let (addr, serve) = freshet::start(storage, "127.0.0.1:0")
            .await
            .expect("server starts");
        let task = tokio::spawn(async move {
            let _ = serve.await;
        });
        TestServer { addr, task }
    }

    pub fn url(&self) -> String {
        format!(
            "host={} port={} user=test dbname=freshet",
            self.addr.ip(),
            self.addr.port()
        )
    }

    pub async fn connect(&self) -> Client {
        let (client, connection) = tokio_postgres::connect(&self.url(), NoTls)
            .await
            .expect("client connects");
        tokio::spawn(async move {
            let _ = connection.await;
        });
        client
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Rows of a simple-protocol (text format) query, NULL as `None`.
pub async fn text_rows(client: &Client, sql: &str) -> Vec<Vec<Option<String>>> {
    client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
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
