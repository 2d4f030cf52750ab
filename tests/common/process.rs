//! The real `freshet` binary as a child process, for tests that need what
//! only a process has: kill -9, signals, its own stack and syscalls. Each
//! server runs on its own data directory under the system temp directory
//! and its own port.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

/// A scratch directory removed when the test passes (kept for a look when
/// it fails).
pub struct Scratch {
    pub path: PathBuf,
}

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let path = std::env::temp_dir().join(format!(
            "freshet-durability-{name}-{}-{nanos}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        Scratch { path }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.path.join("data")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "kept the data directory for inspection: {}",
                self.path.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A running `freshet` child process.
pub struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Every thread's stack of a process that hangs, by gdb when the machine
/// has it: what a hang in CI needs to be understood.
fn stacks_of(pid: u32) -> String {
    match Command::new("gdb")
        .args([
            "-batch",
            "-ex",
            "thread apply all bt",
            "-p",
            &pid.to_string(),
        ])
        .output()
    {
        Ok(out) => String::from_utf8_lossy(&out.stdout).into_owned(),
        Err(e) => format!("(gdb did not run: {e})"),
    }
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

impl Server {
    /// Starts the binary on `scratch`'s data directory and waits until it
    /// answers a query (bounded retries).
    pub async fn start(scratch: &Scratch) -> Server {
        Self::start_under(scratch, &[]).await
    }

    /// `start`, with the binary run by `wrapper` (a program and its
    /// arguments, as `strace -f -o file`).
    pub async fn start_under(scratch: &Scratch, wrapper: &[&str]) -> Server {
        Self::launch(scratch, wrapper, &[]).await
    }

    /// `start`, with more command-line flags for the binary.
    pub async fn start_with_flags(scratch: &Scratch, flags: &[&str]) -> Server {
        Self::launch(scratch, &[], flags).await
    }

    async fn launch(scratch: &Scratch, wrapper: &[&str], flags: &[&str]) -> Server {
        static STARTS: AtomicUsize = AtomicUsize::new(0);
        for _attempt in 0..3 {
            let port = free_port();
            let log = scratch.path.join(format!(
                "server-{}.log",
                STARTS.fetch_add(1, Ordering::Relaxed)
            ));
            let log_file = std::fs::File::create(&log).unwrap();
            let binary = env!("CARGO_BIN_EXE_freshet");
            let mut command = match wrapper {
                [program, args @ ..] => {
                    let mut command = Command::new(program);
                    command.args(args).arg(binary);
                    command
                }
                [] => Command::new(binary),
            };
            let child = command
                .arg("--data-dir")
                .arg(scratch.data_dir())
                .arg("--listen")
                .arg(format!("127.0.0.1:{port}"))
                .arg("--log-level")
                .arg("info")
                .args(flags)
                .env("NO_COLOR", "1")
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().unwrap())
                .stderr(log_file)
                .spawn()
                .expect("the freshet binary starts");
            let mut server = Server { child, port, log };
            // Up to 600 tries, 50 ms apart: 30 s for a debug build to open
            // its data directory and replay the logs.
            for _ in 0..600 {
                if let Some(status) = server.child.try_wait().unwrap() {
                    let log = read_log(&server.log);
                    if log.contains("cannot listen") {
                        break; // someone took the port: try another
                    }
                    panic!("freshet exited with {status} before answering; log:\n{log}");
                }
                if let Ok((client, connection)) =
                    tokio_postgres::connect(&server.url(), NoTls).await
                {
                    tokio::spawn(async move {
                        let _ = connection.await;
                    });
                    if client.simple_query("SELECT 1").await.is_ok() {
                        return server;
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if server.child.try_wait().unwrap().is_none() {
                panic!(
                    "freshet did not answer on port {port}; log:\n{}\nits threads:\n{}",
                    read_log(&server.log),
                    stacks_of(server.child.id())
                );
            }
        }
        panic!("could not find a free port for freshet");
    }

    pub fn url(&self) -> String {
        format!("host=127.0.0.1 port={} user=test dbname=freshet", self.port)
    }

    pub async fn connect(&self) -> Client {
        let (client, connection) = tokio_postgres::connect(&self.url(), NoTls)
            .await
            .unwrap_or_else(|e| panic!("connect: {e}; log:\n{}", read_log(&self.log)));
        tokio::spawn(async move {
            let _ = connection.await;
        });
        client
    }

    /// The server's process id (of the wrapper, when there is one).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_text(&self) -> String {
        read_log(&self.log)
    }

    /// `kill -9`: no chance to flush or clean up.
    pub fn kill_9(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().unwrap();
    }

    /// SIGINT, as Ctrl-C in a terminal, then waits for the exit (bounded).
    pub async fn interrupt(mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .expect("kill -INT runs");
        assert!(status.success());
        for _ in 0..600 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "freshet did not exit within 30 s of SIGINT; log:\n{}",
            read_log(&self.log)
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Every row of a simple-protocol query, as text, one string per row.
pub async fn rows(client: &Client, sql: &str) -> Vec<String> {
    client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).unwrap_or("NULL").to_string())
                    .collect::<Vec<_>>()
                    .join("|"),
            ),
            _ => None,
        })
        .collect()
}

pub async fn exec(client: &Client, sql: &str) {
    client
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
}

pub async fn sqlstate_of(client: &Client, sql: &str) -> String {
    let error = client.simple_query(sql).await.expect_err(sql);
    error
        .code()
        .unwrap_or_else(|| panic!("{sql}: {error:?}"))
        .code()
        .to_string()
}
