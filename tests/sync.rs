//! Acknowledged means synced: the real binary, traced with strace, must
//! `fdatasync` (or `fsync`) its write-ahead log after a statement's change
//! and before the statement's CommandComplete reaches the client. The trace
//! is the only witness: a kill -9 test cannot tell a synced write from one
//! that sits in the page cache.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::process::{Scratch, Server, exec};

/// `strace` attached to every thread of a running process.
struct Tracer {
    child: Child,
}

impl Tracer {
    fn attach(pid: u32, output: &Path) -> Tracer {
        let child = Command::new("strace")
            .args(["-f", "-y", "-qq", "-s", "256", "-e"])
            .arg("trace=fsync,fdatasync,sendto")
            .arg("-o")
            .arg(output)
            .arg("-p")
            .arg(pid.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("strace runs (apt-get install strace)");
        Tracer { child }
    }

    /// Detaches (SIGINT makes strace finish its output and let go).
    fn detach(mut self) {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .expect("kill -INT runs");
        assert!(status.success());
        self.child.wait().expect("strace exits");
    }
}

/// What the trace shows, in order.
#[derive(Debug, PartialEq)]
enum Event {
    /// A sync of a write-ahead log segment returned successfully.
    LogSynced,
    /// A CommandComplete with this tag went to a client.
    Ack(String),
}

/// Reads strace's output: `pid syscall(args) = result`, where a call that
/// another thread's line interrupted appears as `<unfinished ...>` and
/// later `<... name resumed>`.
fn events(trace: &str) -> Vec<Event> {
    let mut pending_sync = std::collections::HashSet::new();
    let mut events = Vec::new();
    for line in trace.lines() {
        let Some((pid, call)) = line.split_once(' ') else {
            continue;
        };
        let call = call.trim_start();
        let is_sync = call.starts_with("fdatasync(") || call.starts_with("fsync(");
        if is_sync && call.contains(".wal>") {
            if call.ends_with("<unfinished ...>") {
                pending_sync.insert(pid.to_string());
            } else if call.ends_with("= 0") {
                events.push(Event::LogSynced);
            }
        } else if call.starts_with("<... fdatasync resumed>")
            || call.starts_with("<... fsync resumed>")
        {
            if pending_sync.remove(pid) && call.ends_with("= 0") {
                events.push(Event::LogSynced);
            }
        } else if call.starts_with("sendto(") {
            // CommandComplete: 'C', a four-byte length, the tag, a NUL.
            let mut rest = call;
            while let Some(at) = rest.find("C\\0\\0\\0") {
                rest = skip_escaped_byte(&rest[at + 7..]);
                let tag = rest.split("\\0").next().unwrap_or_default();
                if !tag.is_empty() {
                    events.push(Event::Ack(tag.to_string()));
                }
            }
        }
    }
    events
}

/// Skips one byte as strace prints it: `\\` and up to three octal digits,
/// `\\` and a letter or quote, or the character itself.
fn skip_escaped_byte(text: &str) -> &str {
    match text.strip_prefix('\\') {
        Some(escaped) => {
            let digits = escaped
                .chars()
                .take(3)
                .take_while(|c| c.is_ascii_digit())
                .count();
            &escaped[digits.max(1).min(escaped.len())..]
        }
        None => text.get(1..).unwrap_or_default(),
    }
}

#[tokio::test]
async fn every_acknowledged_write_was_synced_before_its_answer() {
    let scratch = Scratch::new("sync");
    let server = Server::start(&scratch).await;
    let client = server.connect().await;
    let trace_path = scratch.path.join("strace.txt");
    let tracer = Tracer::attach(server.pid(), &trace_path);
    // Attached once a query's answer shows in the trace (bounded wait).
    let mut attached = false;
    for _ in 0..200 {
        exec(&client, "SELECT 'tracer-ready'").await;
        if std::fs::read_to_string(&trace_path)
            .unwrap_or_default()
            .contains("tracer-ready")
        {
            attached = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(attached, "strace did not attach to the server");

    // Each statement alone, so that each answer needs a sync of its own;
    // with the tag PostgreSQL answers and whether it promises durability.
    let statements = [
        (
            "CREATE TABLE t (id int PRIMARY KEY, v text)",
            "CREATE TABLE",
            true,
        ),
        ("INSERT INTO t VALUES (1, 'a')", "INSERT 0 1", true),
        (
            "INSERT INTO t VALUES (2, 'b'), (3, 'c')",
            "INSERT 0 2",
            true,
        ),
        ("UPDATE t SET v = 'z' WHERE id = 1", "UPDATE 1", true),
        ("DELETE FROM t WHERE id = 2", "DELETE 1", true),
        (
            "CREATE MATERIALIZED VIEW m AS SELECT count(*) AS n FROM t",
            "SELECT 1",
            true,
        ),
        ("INSERT INTO t VALUES (4, 'd')", "INSERT 0 1", true),
        // Inside a block only COMMIT is acknowledged as durable.
        ("BEGIN", "BEGIN", false),
        ("INSERT INTO t VALUES (5, 'e')", "INSERT 0 1", false),
        ("COMMIT", "COMMIT", true),
        ("DROP MATERIALIZED VIEW m", "DROP MATERIALIZED VIEW", true),
        ("DROP TABLE t", "DROP TABLE", true),
    ];
    for (sql, _, _) in statements {
        exec(&client, sql).await;
    }
    exec(&client, "SELECT 'tracer-done'").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    tracer.detach();

    let trace = std::fs::read_to_string(&trace_path).expect("the trace was written");
    let events = events(&trace);
    // From the first statement's answer on (the readiness probes come before).
    let first = events
        .iter()
        .position(|e| *e == Event::Ack("CREATE TABLE".into()))
        .unwrap_or_else(|| panic!("no CREATE TABLE answer in the trace:\n{trace}"));
    let start = events[..first]
        .iter()
        .rposition(|e| matches!(e, Event::Ack(_)))
        .map_or(0, |i| i + 1);
    let mut synced_since_answer = false;
    let mut answers = statements.iter();
    for event in &events[start..] {
        match event {
            Event::LogSynced => synced_since_answer = true,
            Event::Ack(tag) => {
                let Some((sql, expected, durable)) = answers.next() else {
                    assert_eq!(tag, "SELECT 1", "an answer after the last statement");
                    break;
                };
                assert_eq!(tag, expected, "the answer to {sql}; events: {events:?}");
                assert!(
                    !durable || synced_since_answer,
                    "{sql} was acknowledged ({tag}) without a sync of the log since the \
                     previous answer; events: {events:?}"
                );
                synced_since_answer = false;
            }
        }
    }
    assert!(
        answers.next().is_none(),
        "answers missing from the trace: {events:?}"
    );
}
