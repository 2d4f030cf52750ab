//! The pgwire query handlers: simple protocol (text queries, many statements
//! per message) and extended protocol (Parse/Bind/Describe/Execute).
//!
//! Both end in `Handler::run`, which handles session statements itself and
//! hands the rest to the `Database` under the session's statement timeout,
//! with panics caught so that a bug becomes an XX000 error for one statement
//! instead of a dropped connection.

use std::ops::ControlFlow;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arrow_pg::datatypes::encode_recordbatch;
use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::ParamValues;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::sqlparser::ast::{DiscardObject, Statement, Value, visit_expressions};
use futures::future::{Either, select};
use futures::{FutureExt, Sink, SinkExt, StreamExt, stream};
use pgwire::api::copy;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{
    ExtendedQueryHandler, SimpleQueryHandler, send_describe_response, send_execution_response,
    send_query_response, send_ready_for_query,
};
use pgwire::api::results::{
    DescribePortalResponse, DescribeStatementResponse, FieldInfo, QueryResponse, Response, Tag,
};
use pgwire::api::stmt::QueryParser;
use pgwire::api::stmt::StoredStatement;
use pgwire::api::store::Entry;
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, ConnectionHandle, DEFAULT_NAME, PgWireConnectionState, Type,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::data::{DataRow, ParameterDescription};
use pgwire::messages::extendedquery::{
    Describe, Execute, TARGET_TYPE_BYTE_PORTAL, TARGET_TYPE_BYTE_STATEMENT,
};
use pgwire::messages::response::{EmptyQueryResponse, TransactionStatus};
use pgwire::messages::simplequery::Query;
use pgwire::messages::startup::ParameterStatus;
use pgwire::types::format::FormatOptions;
use tokio::time::Instant;

use super::cancel::{self, CancelSignal};
use super::cursor::{self, Cursors};
use super::errors::error_info;
use super::params;
use super::prepared;
use super::session::{self, SessionEffect};
use super::text;
use crate::database::{Database, Outcome, Scope, Transaction};
use crate::error::{Error, Result};
use crate::sql;

pub struct Handler {
    pub(super) db: Arc<Database>,
    parser: Arc<StatementParser>,
}

impl Handler {
    pub fn new(db: Arc<Database>) -> Self {
        Handler {
            parser: Arc::new(StatementParser { db: db.clone() }),
            db,
        }
    }

    /// The schema unqualified names resolve in, from the session's search_path.
    pub(super) fn schema<C: ClientInfo>(&self, client: &C) -> String {
        self.db
            .search_path_schema(&session::setting(client, "search_path").unwrap_or_default())
    }

    /// The session's search schema and TimeZone, where its statements run.
    pub(super) fn scope<C: ClientInfo>(&self, client: &C) -> Scope {
        scope_of(&self.db, client)
    }

    /// Settings that belong to the server, not the session: SET changes
    /// them for every view. `epoch_interval` is RisingWave's
    /// `barrier_interval_ms`; `backfill_rate_limit` (rows per second, 0
    /// pauses, DEFAULT lifts it) is RisingWave's, applied to every
    /// backfill, also one already running. The session also keeps the value
    /// it set, for SHOW.
    /// `SHOW epoch_interval` and `SHOW backfill_rate_limit`: the server's
    /// values, also in a session that never SET them.
    fn show_server_setting(&self, statement: &Statement) -> Result<Option<Outcome>> {
        let Statement::ShowVariable { variable } = statement else {
            return Ok(None);
        };
        let [name] = variable.as_slice() else {
            return Ok(None);
        };
        let name = sql::ident_name(name);
        let value = match name.as_str() {
            "epoch_interval" => format!("{}ms", self.db.epoch_interval().as_millis()),
            "backfill_rate_limit" => self
                .db
                .backfill_rate_limit()
                .map_or_else(|| "default".to_string(), |rows| rows.to_string()),
            _ => return Ok(None),
        };
        session::shown(&name, &value).map(Some)
    }

    /// `SET name = DEFAULT` and `RESET name` restore the server's start
    /// value (`RESET ALL` and `DISCARD ALL` stay the session's own: a
    /// connection pool's DISCARD must not change every view's epochs).
    fn server_setting(&self, statement: &Statement) -> Result<()> {
        use datafusion::sql::sqlparser::ast::{Reset, Set};
        let (name, value) = match statement {
            Statement::Set(Set::SingleAssignment {
                variable, values, ..
            }) => (
                variable.to_string(),
                values
                    .iter()
                    .map(|v| v.to_string().trim_matches('\'').to_string())
                    .collect::<Vec<_>>()
                    .join(""),
            ),
            Statement::Reset(reset) => match &reset.reset {
                Reset::ConfigurationParameter(name) => (name.to_string(), "default".to_string()),
                Reset::ALL => return Ok(()),
            },
            _ => return Ok(()),
        };
        if name.eq_ignore_ascii_case("epoch_interval") {
            if value.eq_ignore_ascii_case("default") {
                self.db.set_epoch_interval(self.db.default_epoch_interval());
                return Ok(());
            }
            let interval = session::parse_duration("epoch_interval", &value)?;
            if interval.is_zero() {
                return Err(Error::InvalidParameter(
                    "epoch_interval must be greater than zero".into(),
                ));
            }
            self.db.set_epoch_interval(interval);
        } else if name.eq_ignore_ascii_case("backfill_rate_limit") {
            let rows = if value.eq_ignore_ascii_case("default") {
                None
            } else {
                Some(value.parse::<u64>().map_err(|_| {
                    Error::InvalidParameter(format!(
                        "backfill_rate_limit must be a number of rows per second or DEFAULT, not \"{value}\""
                    ))
                })?)
            };
            self.db.set_backfill_rate_limit(rows);
        }
        Ok(())
    }

    /// Runs one statement. `plan` is the statement's plan with parameters
    /// bound, when the extended protocol supplied it.
    async fn run<C>(
        &self,
        client: &mut C,
        statement: &Statement,
        plan: Option<LogicalPlan>,
        format: &Format,
    ) -> Result<Response>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        // After an error inside BEGIN, PostgreSQL ignores everything but the
        // end of the block; drivers rely on it (psycopg expects 25P02).
        let aborted = client.transaction_status() == TransactionStatus::Error;
        if aborted
            && !matches!(
                statement,
                Statement::Rollback {
                    savepoint: Some(_),
                    ..
                }
            )
        {
            if matches!(
                statement,
                Statement::Rollback { .. } | Statement::Commit { .. }
            ) {
                // Nothing of an aborted block is ever committed.
                drop(
                    client
                        .session_extensions()
                        .get_or_insert_with(TxnSlot::default)
                        .take(),
                );
                cursors(client).end_block(false);
            }
            match statement {
                Statement::Rollback { .. } => {}
                Statement::Commit { .. } => {
                    return Ok(Response::TransactionEnd(Tag::new("ROLLBACK")));
                }
                _ => return Err(Error::TransactionAborted),
            }
        }
        match statement {
            Statement::Prepare {
                name, statement, ..
            } => {
                prepared::prepare(client, &sql::ident_name(name), statement)?;
                return Ok(Response::Execution(Tag::new("PREPARE")));
            }
            Statement::Execute {
                name: Some(name),
                parameters,
                ..
            } => {
                let name = sql::object_name_parts(name)?.pop().unwrap_or_default();
                let bound = prepared::bind(client, &name, parameters)?;
                return Box::pin(self.run(client, &bound, None, format)).await;
            }
            Statement::Deallocate { name, .. } => {
                let all = name.quote_style.is_none() && name.value.eq_ignore_ascii_case("all");
                let name = sql::ident_name(name);
                prepared::deallocate(client, (!all).then_some(name.as_str()));
                let tag = if all { "DEALLOCATE ALL" } else { "DEALLOCATE" };
                return Ok(Response::Execution(Tag::new(tag)));
            }
            _ => {}
        }
        self.server_setting(statement)?;
        if matches!(statement, Statement::Copy { .. }) {
            return self.copy(client, statement).await;
        }
        let slot = client
            .session_extensions()
            .get_or_insert_with(TxnSlot::default);
        if let Some(response) = savepoint(&slot, statement)? {
            if aborted {
                client
                    .session_extensions()
                    .get_or_insert_with(Reentered::default)
                    .0
                    .store(true, std::sync::atomic::Ordering::SeqCst);
            }
            return Ok(response);
        }
        match statement {
            Statement::StartTransaction { .. } => slot.begin(),
            Statement::Rollback { .. } => {
                drop(slot.take());
                cursors(client).end_block(false);
            }
            Statement::Commit { .. } => {
                if let Some(txn) = slot.take() {
                    let committed = self.db.commit_transaction(txn).await;
                    cursors(client).end_block(committed.is_ok());
                    committed?;
                    if implicit_flush(client) {
                        self.db.flush().await?;
                    }
                }
            }
            _ => {}
        }
        if let Some(outcome) = self.show_server_setting(statement)? {
            return encode(client, statement, outcome, format, Stop::default());
        }
        if let Statement::Discard {
            object_type: DiscardObject::ALL,
        } = statement
        {
            // Also inside a multi-statement string's implicit block.
            if client.transaction_status() != TransactionStatus::Idle || slot.holds_block() {
                return Err(Error::ActiveTransaction("DISCARD ALL"));
            }
            cursors(client).clear();
            prepared::deallocate(client, None);
        }
        if let Some(effect) = session::apply(client, statement) {
            return match effect? {
                SessionEffect::Response(response) => Ok(response),
                SessionEffect::Rows(outcome) => {
                    encode(client, statement, outcome, format, Stop::default())
                }
                SessionEffect::Changed { name, value, tag } => {
                    client
                        .feed(PgWireBackendMessage::ParameterStatus(ParameterStatus::new(
                            name.to_string(),
                            value,
                        )))
                        .await
                        .map_err(|e| Error::Internal(PgWireError::from(e).to_string()))?;
                    Ok(tag)
                }
            };
        }
        let scope = self.scope(client);
        let mut txn = slot.take();
        let in_block = txn.is_some();
        let flush_after = !in_block && is_write(statement) && implicit_flush(client);
        let cursors = cursors(client);
        let declared = cursor::declared(statement);
        // A multi-statement string's implicit block is a block for DECLARE,
        // as in PostgreSQL; its cursors close when the string ends.
        if let Some(declared) = &declared {
            declared.allowed(in_block)?;
        }
        let work = async {
            let result = match (sql::cursor::step(statement), statement, &declared, plan) {
                (Some(step), ..) => cursors.step(&step).await.map(cursor::Stepped::outcome),
                (None, Statement::Close { cursor }, ..) => cursors.close(cursor),
                (None, _, Some(declared), plan) => {
                    let outcome = match plan {
                        Some(plan) => self.db.execute_plan(plan, txn.as_mut()).await,
                        None => {
                            let query = declared.query();
                            self.db.execute(&query, &scope, txn.as_mut()).await
                        }
                    };
                    outcome.and_then(|outcome| cursors.declare(declared, outcome, in_block))
                }
                (None, _, None, Some(plan)) => {
                    let returning = sql::returning::of(statement);
                    self.db
                        .execute_plan_returning(plan, returning.as_ref(), txn.as_mut())
                        .await
                }
                (None, _, None, None) => self.db.execute(statement, &scope, txn.as_mut()).await,
            };
            // A failed statement aborts the block (25P02 until it ends), but
            // the block is kept, as its locks are in PostgreSQL: ROLLBACK TO
            // a savepoint resumes it. A failed statement staged nothing.
            slot.put(txn);
            if flush_after && result.is_ok() {
                self.db.flush().await?;
            }
            result
        };
        let stop = Stop {
            signal: client
                .session_extensions()
                .get::<Arc<CancelSignal>>()
                .map(|signal| {
                    let signal: Arc<CancelSignal> = Arc::clone(&signal);
                    let epoch = signal.epoch();
                    (signal, epoch)
                }),
            deadline: session::statement_timeout(client).map(|limit| Instant::now() + limit),
        };
        let committing = Arc::new(AtomicBool::new(false));
        // Boxed: the statement's future is large (the whole execute path,
        // more so in a debug build), and every wrapper that moves it by
        // value would put another copy on the worker's stack.
        let work = crate::database::notice::collect(Box::pin(work));
        let guarded = AssertUnwindSafe(crate::database::watch_commit(committing.clone(), work))
            .catch_unwind();
        tokio::pin!(guarded);
        let outcome = tokio::select! {
            outcome = &mut guarded => outcome,
            error = cancel::stopped(stop.signal.clone(), stop.deadline) => {
                if !committing.load(Ordering::Acquire) {
                    return Err(error);
                }
                // Past its commit point the change lands whatever we do:
                // finish, and answer what was done.
                guarded.await
            }
        }
        .map_err(|panic| {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            tracing::error!(%what, "statement panicked");
            Error::Internal(format!("the statement failed unexpectedly: {what}"))
        })?;
        let (outcome, notices) = outcome;
        for notice in notices {
            let info = ErrorInfo::new("NOTICE".into(), notice.code.into(), notice.message);
            client
                .feed(PgWireBackendMessage::NoticeResponse(info.into()))
                .await
                .map_err(|e| Error::Internal(PgWireError::from(e).to_string()))?;
        }
        encode(client, statement, outcome?, format, stop)
    }
}

/// SAVEPOINT, RELEASE SAVEPOINT and ROLLBACK TO SAVEPOINT, answered here;
/// `None` for any other statement.
fn savepoint(slot: &TxnSlot, statement: &Statement) -> Result<Option<Response>> {
    let (what, name) = match statement {
        Statement::Savepoint { name } => ("SAVEPOINT", name),
        Statement::ReleaseSavepoint { name } => ("RELEASE SAVEPOINT", name),
        Statement::Rollback {
            savepoint: Some(name),
            ..
        } => ("ROLLBACK TO SAVEPOINT", name),
        _ => return Ok(None),
    };
    let name = sql::ident_name(name);
    let mut guard = slot.lock();
    let txn = guard.as_mut().ok_or(Error::NoTransactionBlock(what))?;
    let tag = match what {
        "SAVEPOINT" => {
            txn.savepoint(&name)?;
            "SAVEPOINT"
        }
        "RELEASE SAVEPOINT" => {
            txn.release(&name)?;
            "RELEASE"
        }
        _ => {
            txn.rollback_to(&name)?;
            "ROLLBACK"
        }
    };
    Ok(Some(Response::Execution(Tag::new(tag))))
}

/// Set when ROLLBACK TO SAVEPOINT resumed an aborted block: the wire status
/// goes back from failed to in-transaction, which pgwire's responses cannot
/// say (`Handler::resume_block`).
#[derive(Default)]
pub(super) struct Reentered(std::sync::atomic::AtomicBool);

/// Whether ROLLBACK TO just resumed an aborted block (and forgets it).
fn reentered<C: ClientInfo>(client: &C) -> bool {
    client
        .session_extensions()
        .get::<Reentered>()
        .is_some_and(|flag| flag.0.swap(false, std::sync::atomic::Ordering::SeqCst))
}

/// The session's open transaction block, if any. A statement takes it out
/// while it runs and puts it back when done, also when it fails (the block
/// is then aborted: 25P02 until ROLLBACK, or ROLLBACK TO a savepoint). A
/// statement cancelled midway drops it, so nothing of it is ever
/// committed.
#[derive(Default)]
pub(super) struct TxnSlot(std::sync::Mutex<Option<Transaction>>);

impl TxnSlot {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Transaction>> {
        match self.0.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn begin(&self) {
        self.lock().get_or_insert_with(Transaction::default);
    }

    pub(super) fn take(&self) -> Option<Transaction> {
        self.lock().take()
    }

    fn holds_block(&self) -> bool {
        self.lock().is_some()
    }

    pub(super) fn put(&self, txn: Option<Transaction>) {
        *self.lock() = txn;
    }
}

/// The session's cursors (`cursor.rs`).
pub(super) fn cursors<C: ClientInfo>(client: &C) -> Arc<Cursors> {
    client
        .session_extensions()
        .get_or_insert_with(Cursors::default)
}

/// RisingWave's `implicit_flush`: a write returns only once every MV shows it.
pub(super) fn implicit_flush<C: ClientInfo>(client: &C) -> bool {
    session::setting(client, "implicit_flush")
        .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "on" | "true" | "1" | "yes"))
}

fn is_write(statement: &Statement) -> bool {
    matches!(
        statement,
        Statement::Insert(_) | Statement::Update(_) | Statement::Delete(_) | Statement::Truncate(_)
    )
}

fn error_response(error: &Error) -> Response {
    Response::Error(Box::new(error_info(error)))
}

pub(super) fn user_error(error: &Error) -> PgWireError {
    PgWireError::UserError(Box::new(error_info(error)))
}

/// Result fields with their PostgreSQL types (declared types included, see
/// `params::pg_type`).
pub(super) fn fields_for(
    schema: &Schema,
    format: &Format,
    options: Arc<FormatOptions>,
) -> PgWireResult<Vec<FieldInfo>> {
    schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, field)| {
            Ok(FieldInfo::new(
                field.name().clone(),
                None,
                None,
                params::pg_type(field)?,
                format.format_for(i),
            )
            .with_format_options(options.clone()))
        })
        .collect()
}

/// Gives result columns PostgreSQL's names where DataFusion's differ
/// (`?column?`, `upper`, `int8`).
pub(super) fn rename_columns(schema: &SchemaRef, statement: &Statement) -> SchemaRef {
    match sql::output_names(statement, schema.fields().len()) {
        Some(names) => renamed(schema, names),
        None => schema.clone(),
    }
}

/// `schema` with its columns named `names`, one per column (`None` keeps a
/// column's name).
fn renamed(schema: &SchemaRef, names: Vec<Option<String>>) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .zip(names)
        .map(|(field, name)| match name {
            Some(name) => field.as_ref().clone().with_name(name),
            None => field.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// What may stop a statement while its rows stream: a cancel request that
/// arrives after the statement started (`epoch`), or its deadline.
#[derive(Default)]
struct Stop {
    signal: Option<(Arc<CancelSignal>, u64)>,
    deadline: Option<Instant>,
}

fn encode<C: ClientInfo>(
    client: &C,
    statement: &Statement,
    outcome: Outcome,
    format: &Format,
    stop: Stop,
) -> Result<Response> {
    match outcome {
        Outcome::Command { tag, rows } => {
            let insert = tag == "INSERT";
            let mut tag = Tag::new(&tag);
            if let Some(rows) = rows {
                if insert {
                    tag = tag.with_oid(0);
                }
                tag = tag.with_rows(rows);
            }
            Ok(Response::Execution(tag))
        }
        Outcome::Rows { schema, rows } => {
            let tag = matches!(statement, Statement::Fetch { .. }).then_some("FETCH");
            rows_response(client, statement, schema, rows, format, stop, tag)
        }
        Outcome::Returned {
            tag,
            schema,
            batches,
        } => {
            let Outcome::Rows { schema, rows } = Outcome::batches(schema, batches) else {
                return Err(Error::Internal("rows did not stay rows".into()));
            };
            rows_response(client, statement, schema, rows, format, stop, Some(tag))
        }
    }
}

/// Rows as the client reads them, encoded as they stream. `tag` is the
/// command the row count completes, when it is not SELECT.
fn rows_response<C: ClientInfo>(
    client: &C,
    statement: &Statement,
    schema: SchemaRef,
    rows: SendableRecordBatchStream,
    format: &Format,
    stop: Stop,
    tag: Option<&str>,
) -> Result<Response> {
    let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
    let schema = rename_columns(&schema, statement);
    let fields =
        Arc::new(fields_for(&schema, format, options).map_err(|e| Error::Internal(e.to_string()))?);
    let time_zone = session::setting(client, "TimeZone").unwrap_or_default();
    let format = format.clone();
    let row_fields = fields.clone();
    // An error while rows are being produced (division by zero in row
    // 10,000) ends the result with a proper ErrorResponse.
    let batches = cancel::guard(
        rows.map(|b| b.map_err(Error::from)),
        stop.signal,
        stop.deadline,
    );
    let rows = batches.flat_map(move |batch| {
        let encoded: Box<dyn Iterator<Item = PgWireResult<DataRow>> + Send> =
            match batch.and_then(|b| Ok(text::render(b, &schema, &format, &time_zone)?)) {
                Ok(batch) => Box::new(encode_recordbatch(row_fields.clone(), batch)),
                Err(e) => Box::new(std::iter::once(Err(user_error(&e)))),
            };
        stream::iter(encoded)
    });
    let mut response = QueryResponse::new(fields, rows);
    if let Some(tag) = tag {
        response.set_command_tag(tag);
    }
    Ok(Response::Query(response))
}

#[async_trait]
impl SimpleQueryHandler for Handler {
    /// pgwire's default, except that the transaction status is the one
    /// `do_query` leaves, statement by statement: pgwire's own fold over
    /// the responses cannot take a failed block back to in-transaction,
    /// which ROLLBACK TO SAVEPOINT does.
    async fn on_query<C>(&self, client: &mut C, query: Query) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if !matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
            return Err(PgWireError::NotReadyForQuery);
        }
        client.set_state(PgWireConnectionState::QueryInProgress);
        let responses = if query.query.chars().all(|c| c == ';' || c.is_whitespace()) {
            vec![Response::EmptyQuery]
        } else {
            let handle = client.session_extensions().get::<Arc<ConnectionHandle>>();
            match handle {
                Some(handle) => {
                    let cancelled = handle.start_query().await;
                    match select(
                        SimpleQueryHandler::do_query(self, client, &query.query),
                        cancelled,
                    )
                    .await
                    {
                        Either::Left((result, _)) => result?,
                        Either::Right(_) => return Err(PgWireError::QueryCanceled),
                    }
                }
                None => SimpleQueryHandler::do_query(self, client, &query.query).await?,
            }
        };
        for response in responses {
            match response {
                Response::EmptyQuery => {
                    client
                        .feed(PgWireBackendMessage::EmptyQueryResponse(
                            EmptyQueryResponse::new(),
                        ))
                        .await?;
                }
                Response::Query(results) => send_query_response(client, results, true).await?,
                Response::Execution(tag)
                | Response::TransactionStart(tag)
                | Response::TransactionEnd(tag) => send_execution_response(client, tag).await?,
                Response::Error(e) => {
                    client
                        .feed(PgWireBackendMessage::ErrorResponse((*e).into()))
                        .await?;
                }
                Response::CopyIn(result) => {
                    copy::send_copy_in_response(client, result).await?;
                    client.set_state(PgWireConnectionState::CopyInProgress(false));
                }
                Response::CopyOut(result) => copy::send_copy_out_response(client, result).await?,
                Response::CopyBoth(result) => {
                    copy::send_copy_both_response(client, result).await?;
                    client.set_state(PgWireConnectionState::CopyInProgress(false));
                }
            }
        }
        // During COPY FROM the CopyDone handler sends ReadyForQuery.
        if !matches!(client.state(), PgWireConnectionState::CopyInProgress(_)) {
            client.set_state(PgWireConnectionState::ReadyForQuery);
            send_ready_for_query(client, client.transaction_status()).await?;
        }
        Ok(())
    }

    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let statements = match sql::parse(query) {
            Ok(statements) => statements,
            Err(e) => {
                // A statement that does not parse fails its block too.
                let status = client.transaction_status();
                client.set_transaction_status(status.to_error_state());
                return Ok(vec![error_response(&e)]);
            }
        };
        // PostgreSQL runs a string of several statements as one implicit
        // transaction unless it controls transactions itself: an error
        // anywhere leaves nothing of it.
        let implicit = statements.len() > 1
            && client.transaction_status() == TransactionStatus::Idle
            && !statements.iter().any(controls_transactions);
        let slot = client
            .session_extensions()
            .get_or_insert_with(TxnSlot::default);
        if implicit {
            slot.begin();
        }
        let mut failed = false;
        let mut responses = Vec::with_capacity(statements.len());
        for (i, statement) in statements.iter().enumerate() {
            // DDL takes effect at once (it is not transactional here): what
            // the string wrote before it is committed first, so that a
            // CREATE MATERIALIZED VIEW after an INSERT sees its rows, as it
            // would in PostgreSQL's one transaction.
            if implicit && !runs_in_implicit_block(statement) {
                if let Some(txn) = slot.take() {
                    let committed = match self.db.commit_transaction(txn).await {
                        Ok(()) if implicit_flush(client) => self.db.flush().await,
                        other => other,
                    };
                    if let Err(e) = committed {
                        responses.push(error_response(&e));
                        failed = true;
                        break;
                    }
                }
                slot.begin();
            }
            let status = client.transaction_status();
            let more = i + 1 < statements.len();
            match self
                .run(client, statement, None, &Format::UnifiedText)
                .await
            {
                Ok(response) => {
                    // The rows of all but the last statement are read now:
                    // an error while they are produced (division by zero in
                    // row 10,000) stops the statements after it.
                    let response = match response {
                        Response::Query(results) if more || implicit => {
                            match read_rows(results).await {
                                Ok(response) => response,
                                Err(error) => {
                                    client.set_transaction_status(status.to_error_state());
                                    responses.push(Response::Error(Box::new(error)));
                                    failed = true;
                                    break;
                                }
                            }
                        }
                        response => response,
                    };
                    // Each statement sees the status the ones before it left
                    // (`on_query` reports the last one).
                    let status = match &response {
                        _ if reentered(client) => TransactionStatus::Transaction,
                        Response::TransactionStart(_) => status.to_in_transaction_state(),
                        Response::TransactionEnd(_) => status.to_idle_state(),
                        _ => status,
                    };
                    client.set_transaction_status(status);
                    responses.push(response);
                }
                Err(e) => {
                    // PostgreSQL stops a multi-statement query at the first error.
                    client.set_transaction_status(status.to_error_state());
                    responses.push(error_response(&e));
                    failed = true;
                    break;
                }
            }
        }
        if implicit {
            cursors(client).end_block(!failed);
        }
        if implicit && let Some(txn) = slot.take() {
            // Every statement's rows have been read: nothing can fail after
            // the commit.
            if !failed {
                let committed = match self.db.commit_transaction(txn).await {
                    Ok(()) if implicit_flush(client) => self.db.flush().await,
                    other => other,
                };
                if let Err(e) = committed {
                    responses.push(error_response(&e));
                }
            }
        }
        if responses.is_empty() {
            responses.push(Response::EmptyQuery);
        }
        Ok(responses)
    }
}

/// BEGIN, COMMIT, ROLLBACK, savepoints; COPY, whose data arrives after its
/// statement string has ended; FLUSH, which waits for what was committed
/// before it.
fn controls_transactions(statement: &Statement) -> bool {
    matches!(
        statement,
        Statement::StartTransaction { .. }
            | Statement::Commit { .. }
            | Statement::Rollback { .. }
            | Statement::Savepoint { .. }
            | Statement::ReleaseSavepoint { .. }
            | Statement::Copy { .. }
            | Statement::Flush { .. }
    )
}

/// Reads, writes and session statements stay in a multi-statement string's
/// implicit block; anything else (DDL) commits it first.
fn runs_in_implicit_block(statement: &Statement) -> bool {
    matches!(
        statement,
        Statement::Query(_)
            | Statement::Insert(_)
            | Statement::Update(_)
            | Statement::Delete(_)
            | Statement::Set(_)
            | Statement::ShowVariable { .. }
            | Statement::Declare { .. }
            | Statement::Fetch { .. }
            | Statement::Close { .. }
            | Statement::Prepare { .. }
            | Statement::Execute { .. }
            | Statement::Deallocate { .. }
            | Statement::Truncate(_)
            | Statement::Explain { .. }
    )
}

/// A statement's rows, all read: the response to send, or the error that
/// stopped them.
async fn read_rows(mut results: QueryResponse) -> Result<Response, ErrorInfo> {
    let fields = results.row_schema();
    let tag = results.command_tag().to_string();
    let mut rows = Vec::new();
    while let Some(row) = results.data_rows().next().await {
        match row {
            Ok(row) => rows.push(row),
            Err(PgWireError::UserError(info)) => return Err(*info),
            Err(other) => {
                return Err(ErrorInfo::new(
                    "ERROR".into(),
                    "XX000".into(),
                    other.to_string(),
                ));
            }
        }
    }
    let mut response = QueryResponse::new(fields, stream::iter(rows.into_iter().map(Ok)));
    response.set_command_tag(&tag);
    Ok(Response::Query(response))
}

/// A statement as the extended protocol keeps it between Parse and Execute.
/// `plan` (for statements DataFusion plans) answers Describe; Execute plans
/// again so that it sees the catalog as it is then.
#[derive(Clone)]
pub struct Prepared {
    statement: Statement,
    plan: Option<LogicalPlan>,
    /// The plan's result columns as the rows will carry them
    /// (`Database::result_schema`).
    columns: Option<SchemaRef>,
    /// The catalog version and scope the plan was made at: Execute reuses
    /// the plan while both still hold.
    version: u64,
    scope: Scope,
}

pub struct StatementParser {
    db: Arc<Database>,
}

impl StatementParser {
    /// `declared`: the parameter types the client sent in Parse.
    async fn prepare(
        &self,
        sql: &str,
        scope: &Scope,
        declared: &[Option<Type>],
    ) -> Result<Option<Prepared>> {
        let mut statements = sql::parse(sql)?;
        if statements.len() > 1 {
            return Err(Error::Syntax {
                message: "cannot insert multiple commands into a prepared statement".into(),
                position: None,
            });
        }
        let Some(statement) = statements.pop() else {
            return Ok(None);
        };
        let version = self.db.catalog_version();
        // An INSERT without parameters describes as nothing and executes
        // like a simple query (which may skip the planner for literal
        // VALUES): planning it here would be wasted work.
        let literal_insert = matches!(statement, Statement::Insert(_))
            && !has_parameters(&statement)
            && !sql::returning::has(&statement);
        let planned = planned_form(&statement);
        let plan = if Database::is_planned(&planned) && !literal_insert {
            let plan = self.db.plan(&planned, scope).await?;
            let plan = params::type_declared_parameters(plan, declared)?;
            Some(params::type_cast_parameters(plan)?)
        } else {
            None
        };
        let columns = match (&plan, sql::returning::of(&statement)) {
            // The rows of a RETURNING are those of the equivalent SELECT.
            (Some(_), Some(returning)) => {
                let described = sql::returning::described(&returning)?;
                let plan = self.db.plan(&described, scope).await?;
                let columns = self.db.result_schema(&plan);
                let names = returning.column_names(columns.fields().len());
                Some(renamed(&columns, names))
            }
            (plan, _) => plan.as_ref().map(|plan| self.db.result_schema(plan)),
        };
        Ok(Some(Prepared {
            statement,
            plan,
            columns,
            version,
            scope: scope.clone(),
        }))
    }
}

/// The statement whose plan stands for `statement` in the extended
/// protocol. An upsert is planned as its plain INSERT: that plan gives the
/// parameters their types; Execute binds them into the statement
/// (`bound_literal_insert`), which the upsert path runs. A DECLARE is its
/// cursor's query; a DML statement is planned without its RETURNING.
fn planned_form(statement: &Statement) -> Statement {
    if sql::returning::has(statement) {
        // Planned without its RETURNING, which runs over the written rows.
        let mut plain = statement.clone();
        if let Ok(Some(_)) = sql::returning::take(&mut plain) {
            return plain;
        }
    }
    match statement {
        Statement::Insert(insert) if insert.on.is_some() => {
            let mut plain = insert.clone();
            plain.on = None;
            Statement::Insert(plain)
        }
        _ => match cursor::declared(statement) {
            Some(declared) => declared.query(),
            None => statement.clone(),
        },
    }
}

/// The columns a FETCH returns: its cursor's (none if there is no such
/// cursor yet; the FETCH itself then fails). `None` for other statements.
fn fetched_columns<C: ClientInfo>(
    client: &C,
    prepared: &Prepared,
    format: &Format,
) -> Option<PgWireResult<Vec<FieldInfo>>> {
    let step = sql::cursor::step(&prepared.statement).filter(|step| !step.is_move)?;
    Some(match cursors(client).columns(&step.cursor) {
        Some(columns) => fields_for(&columns, format, Arc::new(FormatOptions::default())),
        None => Ok(Vec::new()),
    })
}

fn has_parameters(statement: &Statement) -> bool {
    let mut found = false;
    let _ = visit_expressions(statement, |expr| {
        if let datafusion::sql::sqlparser::ast::Expr::Value(v) = expr
            && matches!(v.value, Value::Placeholder(_))
        {
            found = true;
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    });
    found
}

/// The columns a statement returns, known before it runs (for Describe).
fn result_schema(prepared: &Prepared) -> Option<SchemaRef> {
    if let (Some(plan), Some(columns)) = (&prepared.plan, &prepared.columns) {
        return match plan {
            LogicalPlan::Dml(_) if sql::returning::has(&prepared.statement) => {
                Some(columns.clone())
            }
            LogicalPlan::Dml(_) => None,
            _ if matches!(prepared.statement, Statement::Declare { .. }) => None,
            _ => Some(rename_columns(columns, &prepared.statement)),
        };
    }
    let text = |names: &[&str]| {
        Some(Arc::new(Schema::new(
            names
                .iter()
                .map(|n| Field::new(*n, DataType::Utf8, true))
                .collect::<Vec<_>>(),
        )))
    };
    match &prepared.statement {
        Statement::ShowVariable { variable } => {
            let name = variable
                .iter()
                .map(|i| i.value.clone())
                .collect::<Vec<_>>()
                .join(" ");
            match session::shown_name(&name) {
                None => text(&["name", "setting"]),
                Some(column) => text(&[column.as_str()]),
            }
        }
        Statement::ShowTables { .. } => text(&["Name"]),
        Statement::ShowColumns { .. } | Statement::ExplainTable { .. } => {
            text(&crate::query::show::COLUMN_LISTING)
        }
        _ => None,
    }
}

#[async_trait]
impl QueryParser for StatementParser {
    type Statement = Prepared;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<Prepared>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let scope = scope_of(&self.db, client);
        self.prepare(sql, &scope, types)
            .await
            .map_err(|e| user_error(&e))
    }

    fn get_parameter_types(&self, prepared: &Prepared) -> PgWireResult<Vec<Type>> {
        let Some(plan) = &prepared.plan else {
            return Ok(Vec::new());
        };
        params::parameter_types(plan).map_err(|e| user_error(&e))
    }

    fn get_result_schema(
        &self,
        prepared: &Prepared,
        format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        match result_schema(prepared) {
            Some(schema) => fields_for(
                &schema,
                format.unwrap_or(&Format::UnifiedText),
                Arc::new(FormatOptions::default()),
            ),
            None => Ok(Vec::new()),
        }
    }
}

#[async_trait]
impl ExtendedQueryHandler for Handler {
    type Statement = Prepared;
    type QueryParser = StatementParser;

    fn query_parser(&self) -> Arc<StatementParser> {
        self.parser.clone()
    }

    /// A cursor's name is also a portal's (PostgreSQL keeps both in one
    /// namespace): psycopg describes the portal its DECLARE opened. A
    /// statement that returns no rows describes as its parameters and
    /// NoData, as PostgreSQL's does (pgwire sends an empty RowDescription
    /// when there are parameters, and pgJDBC then counts 0 rows for every
    /// INSERT of a batch).
    async fn on_describe<C>(&self, client: &mut C, message: Describe) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if message.target_type == TARGET_TYPE_BYTE_STATEMENT
            && let Some(Entry::Value(statement)) = client
                .portal_store()
                .get_statement(message.name.as_deref().unwrap_or(DEFAULT_NAME))
        {
            let response = self.do_describe_statement(client, &statement).await?;
            let types = response.parameters.iter().map(Type::oid).collect();
            client
                .send(PgWireBackendMessage::ParameterDescription(
                    ParameterDescription::new(types),
                ))
                .await?;
            let rows = DescribePortalResponse::new(response.fields);
            return send_describe_response(client, &rows).await;
        }
        if message.target_type == TARGET_TYPE_BYTE_PORTAL
            && let Some(name) = message.name.as_deref()
            && client.portal_store().get_portal(name).is_none()
            && let Some(columns) = cursors(client).columns(name)
        {
            let fields = fields_for(
                &columns,
                &Format::UnifiedText,
                Arc::new(FormatOptions::default()),
            )?;
            return send_describe_response(client, &DescribePortalResponse::new(fields)).await;
        }
        self._on_describe(client, message).await
    }

    /// pgwire's, except that a FETCH describes as its cursor's columns.
    async fn do_describe_statement<C>(
        &self,
        client: &mut C,
        target: &StoredStatement<Prepared>,
    ) -> PgWireResult<DescribeStatementResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let fields = match fetched_columns(client, &target.statement, &Format::UnifiedText) {
            Some(fields) => fields?,
            None => self.parser.get_result_schema(&target.statement, None)?,
        };
        let server_types = self.parser.get_parameter_types(&target.statement)?;
        let count = target.parameter_types.len().max(server_types.len());
        let types = (0..count)
            .map(|i| {
                target
                    .parameter_types
                    .get(i)
                    .cloned()
                    .flatten()
                    .or_else(|| server_types.get(i).cloned())
                    .unwrap_or(Type::UNKNOWN)
            })
            .collect();
        Ok(DescribeStatementResponse::new(types, fields))
    }

    /// pgwire's, except that a FETCH describes as its cursor's columns.
    async fn do_describe_portal<C>(
        &self,
        client: &mut C,
        target: &Portal<Prepared>,
    ) -> PgWireResult<DescribePortalResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let format = &target.result_column_format;
        let fields = match fetched_columns(client, &target.statement.statement, format) {
            Some(fields) => fields?,
            None => self
                .parser
                .get_result_schema(&target.statement.statement, Some(format))?,
        };
        Ok(DescribePortalResponse::new(fields))
    }

    /// After the statement, a block resumed by ROLLBACK TO is in-transaction
    /// again; the next Sync reports it so.
    async fn on_execute<C>(&self, client: &mut C, message: Execute) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self._on_execute(client, message).await?;
        if reentered(client) {
            client.set_transaction_status(TransactionStatus::Transaction);
        }
        Ok(())
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Prepared>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let prepared = &portal.statement.statement;
        let scope = self.scope(client);
        if let Some(bound) = self
            .bound_literal_insert(portal, &scope)
            .map_err(|e| user_error(&e))?
        {
            return self
                .run(client, &bound, None, &portal.result_column_format)
                .await
                .map_err(|e| user_error(&e));
        }
        let plan = match &prepared.plan {
            Some(_) => Some(
                self.bind(portal, &scope)
                    .await
                    .map_err(|e| user_error(&e))?,
            ),
            None => None,
        };
        self.run(
            client,
            &prepared.statement,
            plan,
            &portal.result_column_format,
        )
        .await
        .map_err(|e| user_error(&e))
    }
}

impl Handler {
    /// `INSERT ... VALUES` of literals and parameters, with the bound
    /// parameters written in as literals, so that the literal fast path
    /// writes it without DataFusion (which was most of a single-row INSERT's
    /// time). `None` for any other statement, a changed catalog, or a
    /// parameter whose type has no exact literal: those take the plan.
    /// `INSERT ... ON CONFLICT` is always bound this way (see `prepare`).
    fn bound_literal_insert(
        &self,
        portal: &Portal<Prepared>,
        scope: &Scope,
    ) -> Result<Option<Statement>> {
        let prepared = &portal.statement.statement;
        let (Statement::Insert(insert), Some(plan)) = (&prepared.statement, &prepared.plan) else {
            return Ok(None);
        };
        // An upsert always runs as a statement: its plan is the plain
        // INSERT's, good for parameter types only.
        let upsert = insert.on.is_some();
        if !upsert
            && (prepared.version != self.db.catalog_version()
                || prepared.scope != *scope
                || !sql::is_literal_insert(&prepared.statement))
        {
            return Ok(None);
        }
        let ParamValues::List(values) = params::bind(portal, plan)? else {
            return Ok(None);
        };
        let literals: Option<Vec<_>> = values
            .iter()
            .map(|v| crate::query::values::scalar_literal(&v.value))
            .collect();
        match literals {
            Some(literals) => Ok(Some(prepared::with_literals(
                &prepared.statement,
                &literals,
            )?)),
            None if upsert => Err(Error::NotSupported(
                "a parameter of this type in INSERT ... ON CONFLICT".into(),
            )),
            None => Ok(None),
        }
    }

    /// The portal's plan with its parameters bound: the plan made at Parse
    /// while the catalog and search path are unchanged, a fresh one if not.
    async fn bind(&self, portal: &Portal<Prepared>, scope: &Scope) -> Result<LogicalPlan> {
        let prepared = &portal.statement.statement;
        let plan = match &prepared.plan {
            Some(plan)
                if prepared.version == self.db.catalog_version() && prepared.scope == *scope =>
            {
                plan.clone()
            }
            _ => {
                let plan = self
                    .db
                    .plan(&planned_form(&prepared.statement), scope)
                    .await?;
                let plan =
                    params::type_declared_parameters(plan, &portal.statement.parameter_types)?;
                params::type_cast_parameters(plan)?
            }
        };
        let values = params::bind(portal, &plan)?;
        params::bound(plan, &values)
    }
}

/// Where a session's statements run (`Database`'s `Scope`).
fn scope_of<C: ClientInfo>(db: &Database, client: &C) -> Scope {
    let schema =
        db.search_path_schema(&session::setting(client, "search_path").unwrap_or_default());
    Scope::new(schema).with_time_zone(&session::setting(client, "TimeZone").unwrap_or_default())
}
