//! Notices a statement raises, as PostgreSQL's NOTICE messages ("relation
//! "t" already exists, skipping"): collected while the statement runs, and
//! sent by the server before its CommandComplete. Outside `collect` (in
//! tests, at startup) a notice goes nowhere.

use std::cell::RefCell;

/// One NOTICE: its SQLSTATE and its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub code: &'static str,
    pub message: String,
}

tokio::task_local! {
    static NOTICES: RefCell<Vec<Notice>>;
}

/// Runs `statement`, and returns its output with the notices it raised.
pub async fn collect<F: Future>(statement: F) -> (F::Output, Vec<Notice>) {
    NOTICES
        .scope(RefCell::new(Vec::new()), async {
            let output = statement.await;
            let notices = NOTICES.with(|n| n.take());
            (output, notices)
        })
        .await
}

pub(super) fn raise(code: &'static str, message: String) {
    let _ = NOTICES.try_with(|n| n.borrow_mut().push(Notice { code, message }));
}

/// IF NOT EXISTS met an existing `kind` ("relation", "schema").
pub(super) fn exists_skipping(kind: &str, name: &str) {
    let code = if kind == "schema" { "42P06" } else { "42P07" };
    raise(code, format!("{kind} \"{name}\" already exists, skipping"));
}

/// IF EXISTS met no `kind` ("table", "view", "materialized view").
pub(super) fn missing_skipping(kind: &str, name: &str) {
    raise(
        "00000",
        format!("{kind} \"{name}\" does not exist, skipping"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn notices_are_collected_in_scope_and_dropped_outside() {
        missing_skipping("table", "nowhere");
        let ((), notices) = collect(async { exists_skipping("relation", "t") }).await;
        assert_eq!(
            notices,
            vec![Notice {
                code: "42P07",
                message: "relation \"t\" already exists, skipping".into()
            }]
        );
    }
}
