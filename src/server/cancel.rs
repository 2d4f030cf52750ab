//! Stopping a statement: a cancel request (psql's Ctrl-C) or the session's
//! `statement_timeout`.
//!
//! Each connection has a `CancelSignal`, fired by the cancel handler. The
//! handler races a running statement against it and the deadline (unless
//! the statement has passed its commit point: then it finishes), and the
//! result stream, which flows after the handler returns, stops with 57014
//! when the signal fires or the timeout passes. Dropping the stream stops
//! DataFusion's work.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::{Stream, StreamExt, future};
use pgwire::api::cancel::CancelHandler;
use pgwire::messages::cancel::CancelRequest;
use pgwire::messages::startup::SecretKey;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::error::Error;

/// One connection's cancel signal. `epoch` counts cancel requests, so a
/// statement is stopped only by requests that arrive while it runs.
#[derive(Default)]
pub struct CancelSignal {
    epoch: AtomicU64,
    notify: Notify,
}

impl CancelSignal {
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    fn cancel(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// Resolves once a cancel request arrives after `epoch`.
    async fn cancelled_since(&self, epoch: u64) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.epoch() != epoch {
                return;
            }
            notified.await;
        }
    }
}

/// The live connections' signals, by the (pid, secret key) a cancel request
/// names; keys compare as bytes (a client may echo an int key as bytes).
#[derive(Default)]
pub struct Signals(Mutex<HashMap<(i32, Bytes), Arc<CancelSignal>>>);

impl Signals {
    /// Registers a connection; the registration ends when the guard drops.
    pub fn register(
        self: &Arc<Self>,
        pid: i32,
        key: SecretKey,
    ) -> (Arc<CancelSignal>, SignalGuard) {
        let signal = Arc::new(CancelSignal::default());
        self.0
            .lock()
            .expect("cancel signals lock poisoned")
            .insert((pid, key.to_bytes()), signal.clone());
        (
            signal,
            SignalGuard {
                signals: self.clone(),
                key: (pid, key.to_bytes()),
            },
        )
    }
}

/// Removes a connection's signal when the connection ends.
pub struct SignalGuard {
    signals: Arc<Signals>,
    key: (i32, Bytes),
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        if let Ok(mut map) = self.signals.0.lock() {
            map.remove(&self.key);
        }
    }
}

/// Fires the connection's signal. pgwire's own cancel (which drops the
/// running handler) is not used: a statement past its commit point must
/// finish and answer what it did, which only the handler can decide.
pub struct Canceller {
    pub signals: Arc<Signals>,
}

#[async_trait]
impl CancelHandler for Canceller {
    async fn on_cancel_request(&self, request: CancelRequest) {
        let signal = self
            .signals
            .0
            .lock()
            .expect("cancel signals lock poisoned")
            .get(&(request.pid, request.secret_key.to_bytes()))
            .cloned();
        if let Some(signal) = signal {
            signal.cancel();
        }
    }
}

/// Resolves when the statement is cancelled (a request after `epoch`) or
/// its deadline passes, with the error to answer.
pub async fn stopped(signal: Option<(Arc<CancelSignal>, u64)>, deadline: Option<Instant>) -> Error {
    let cancelled = async {
        match &signal {
            Some((signal, epoch)) => signal.cancelled_since(*epoch).await,
            None => future::pending().await,
        }
    };
    let timed_out = async {
        match deadline {
            Some(deadline) => tokio::time::sleep_until(deadline).await,
            None => future::pending().await,
        }
    };
    tokio::select! {
        _ = cancelled => Error::Cancelled,
        _ = timed_out => Error::StatementTimeout,
    }
}

/// Ends `rows` with an error when the statement is cancelled or its
/// deadline passes.
pub fn guard<T: Send + 'static>(
    rows: impl Stream<Item = Result<T, Error>> + Send + 'static,
    signal: Option<(Arc<CancelSignal>, u64)>,
    deadline: Option<Instant>,
) -> Pin<Box<dyn Stream<Item = Result<T, Error>> + Send>> {
    let stop = stopped(signal, deadline);
    let state = (Box::pin(rows), Box::pin(stop), false);
    Box::pin(futures::stream::unfold(
        state,
        |(mut rows, mut stop, stopped)| async move {
            if stopped {
                return None;
            }
            tokio::select! {
                error = &mut stop => Some((Err(error), (rows, stop, true))),
                item = rows.next() => item.map(|item| (item, (rows, stop, false))),
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_cancel_during_the_stream_ends_it_with_an_error() {
        let signal = Arc::new(CancelSignal::default());
        let epoch = signal.epoch();
        let rows =
            futures::stream::iter(vec![Ok::<_, Error>(1), Ok(2)]).chain(futures::stream::pending());
        let mut guarded = guard(rows, Some((signal.clone(), epoch)), None);
        assert_eq!(guarded.next().await.unwrap().unwrap(), 1);
        assert_eq!(guarded.next().await.unwrap().unwrap(), 2);
        signal.cancel();
        assert!(matches!(guarded.next().await, Some(Err(Error::Cancelled))));
        assert!(guarded.next().await.is_none());
    }

    #[tokio::test]
    async fn a_cancel_before_the_statement_does_not_stop_it() {
        let signal = Arc::new(CancelSignal::default());
        signal.cancel();
        let epoch = signal.epoch();
        let rows = futures::stream::iter(vec![Ok::<_, Error>(1), Ok(2)]);
        let guarded = guard(rows, Some((signal, epoch)), None);
        let all: Vec<i32> = guarded.map(|r| r.unwrap()).collect().await;
        assert_eq!(all, vec![1, 2]);
    }

    #[tokio::test]
    async fn the_deadline_stops_a_slow_stream() {
        let rows = futures::stream::pending::<Result<i32, Error>>();
        let mut guarded = guard(rows, None, Some(Instant::now()));
        assert!(matches!(
            guarded.next().await,
            Some(Err(Error::StatementTimeout))
        ));
        assert!(guarded.next().await.is_none());
    }
}
