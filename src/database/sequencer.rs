//! The order in which commits become visible and reach the epoch runtime.
//!
//! A commit takes a ticket while it still holds its tables' writer locks
//! (so two commits to one table take tickets in the order they changed it),
//! then lets the locks go and waits for its sync, then waits for its turn.
//! Writers of one table thereby share syncs (group commit) instead of each
//! syncing under the lock, while readers and the runtime still see changes
//! one at a time, in an order that agrees with every table's own.
//!
//! # Invariants
//! - Turns are served in ticket order, each exactly once.
//! - A ticket that is dropped unused still takes its turn (on a task of its
//!   own), so a failed commit never stalls the commits behind it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::watch;

pub(super) struct Sequencer {
    next: AtomicU64,
    /// The ticket whose turn it is.
    serving: watch::Sender<u64>,
}

impl Sequencer {
    pub(super) fn new() -> Arc<Sequencer> {
        Arc::new(Sequencer {
            next: AtomicU64::new(0),
            serving: watch::Sender::new(0),
        })
    }

    pub(super) fn ticket(self: &Arc<Self>) -> Ticket {
        Ticket {
            number: self.next.fetch_add(1, Ordering::AcqRel),
            sequencer: Some(self.clone()),
        }
    }

    /// A ticket and its turn, for work that has nothing to wait for first.
    pub(super) async fn turn(self: &Arc<Self>) -> Turn {
        self.ticket().wait().await
    }
}

pub(super) struct Ticket {
    number: u64,
    /// Taken by `wait`; still here when the ticket is dropped unused.
    sequencer: Option<Arc<Sequencer>>,
}

impl Ticket {
    /// Waits until every earlier ticket has had its turn. If the waiting
    /// future is dropped, the ticket still is, and takes its turn (`Drop`).
    pub(super) async fn wait(mut self) -> Turn {
        if let Some(sequencer) = &self.sequencer {
            wait_for(sequencer, self.number).await;
        }
        let sequencer = self.sequencer.take().expect("a ticket is waited for once");
        Turn { sequencer }
    }
}

async fn wait_for(sequencer: &Sequencer, number: u64) {
    let mut serving = sequencer.serving.subscribe();
    // The sender lives in `sequencer`, which we hold: this cannot fail.
    let _ = serving.wait_for(|s| *s == number).await;
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(sequencer) = self.sequencer.take() {
            let number = self.number;
            // Without a runtime (the process is ending) nobody waits.
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                return;
            };
            runtime.spawn(async move {
                wait_for(&sequencer, number).await;
                drop(Turn { sequencer });
            });
        }
    }
}

/// The right to publish; the next ticket's turn comes when it is dropped.
pub(super) struct Turn {
    sequencer: Arc<Sequencer>,
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.sequencer.serving.send_modify(|s| *s += 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn turns_follow_tickets_even_when_one_is_abandoned() {
        let sequencer = Sequencer::new();
        let first = sequencer.ticket();
        let abandoned = sequencer.ticket();
        let third = sequencer.ticket();
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = order.clone();
        let late = tokio::spawn(async move {
            let _turn = third.wait().await;
            seen.lock().unwrap().push(3);
        });
        tokio::task::yield_now().await;
        assert!(
            order.lock().unwrap().is_empty(),
            "the third went before the first"
        );
        drop(abandoned);
        {
            let _turn = first.wait().await;
            order.lock().unwrap().push(1);
        }
        late.await.unwrap();
        assert_eq!(*order.lock().unwrap(), vec![1, 3]);
        let _next = sequencer.turn().await;
    }

    #[tokio::test]
    async fn a_wait_given_up_midway_still_passes_the_turn_on() {
        let sequencer = Sequencer::new();
        let first = sequencer.ticket();
        let given_up = sequencer.ticket();
        // Waiting behind `first`, then dropped (a cancelled DDL statement).
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(10), given_up.wait());
        assert!(waiting.await.is_err());
        drop(first.wait().await);
        let _after = sequencer.turn().await;
    }
}
