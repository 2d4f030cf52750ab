//! The COPY sub-protocol: `COPY t FROM STDIN` and `COPY t|(query) TO
//! STDOUT`, in text and CSV formats (psql's `\copy`, psycopg's
//! `cursor.copy()`, psycopg2's `copy_expert`).
//!
//! COPY FROM: the statement answers CopyInResponse; the client's CopyData
//! messages are kept for the session until CopyDone, then decoded and
//! written as one statement (`Database::copy_from`), so a bad line rejects
//! the whole COPY and nothing of it lands. A CopyFail from the client drops
//! the data.
//!
//! COPY TO: the rows go out as one CopyData message each, rendered as a
//! SELECT renders them, then CopyDone and `COPY n`.

use std::fmt::Debug;
use std::sync::Mutex;

use arrow_pg::datatypes::encode_recordbatch;
use async_trait::async_trait;
use bytes::Bytes;
use datafusion::sql::sqlparser::ast::{CopySource, CopyTarget as SqlCopyTarget, Statement};
use futures::{Sink, SinkExt, StreamExt, stream};
use pgwire::api::ClientInfo;
use pgwire::api::copy::CopyHandler;
use pgwire::api::portal::Format;
use pgwire::api::results::{CopyResponse, Response, Tag};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail, CopyOutResponse};
use pgwire::types::format::FormatOptions;

use super::copy_binary;
use super::copy_format::CopyFormat;
use super::handler::{Handler, TxnSlot, fields_for, implicit_flush, rename_columns, user_error};
use super::{session, text};
use crate::database::{CopyTarget, Outcome, copy_query};
use crate::error::{Error, Result};

/// A COPY FROM waiting for its data.
struct Incoming {
    target: CopyTarget,
    format: CopyFormat,
    data: Vec<u8>,
}

/// The session's COPY FROM in progress, if any.
#[derive(Default)]
struct CopySlot(Mutex<Option<Incoming>>);

impl CopySlot {
    fn with<R>(&self, f: impl FnOnce(&mut Option<Incoming>) -> R) -> R {
        match self.0.lock() {
            Ok(mut guard) => f(&mut guard),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }
}

impl Handler {
    /// Starts a COPY statement: FROM STDIN answers CopyInResponse and waits
    /// for data; TO STDOUT sends every row and answers `COPY n`.
    pub(super) async fn copy<C>(&self, client: &mut C, statement: &Statement) -> Result<Response>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let Statement::Copy {
            source,
            to,
            target,
            options,
            legacy_options,
            ..
        } = statement
        else {
            return Err(Error::Internal("not a COPY statement".into()));
        };
        let format = CopyFormat::from_options(options, legacy_options)?;
        let schema = self.schema(client);
        match (to, target) {
            (false, SqlCopyTarget::Stdin) => {
                let CopySource::Table {
                    table_name,
                    columns,
                } = source
                else {
                    return Err(Error::Syntax {
                        message: "COPY FROM needs a table, not a query".into(),
                        position: None,
                    });
                };
                let target = self.db.copy_target(table_name, columns, &schema)?;
                let columns = target.column_count();
                let binary = format.binary;
                client
                    .session_extensions()
                    .get_or_insert_with(CopySlot::default)
                    .with(|slot| {
                        *slot = Some(Incoming {
                            target,
                            format,
                            data: Vec::new(),
                        })
                    });
                Ok(Response::CopyIn(CopyResponse::new(
                    i8::from(binary),
                    columns,
                    stream::empty::<PgWireResult<CopyData>>(),
                )))
            }
            (true, SqlCopyTarget::Stdout) => {
                // A column list names the table's columns as PostgreSQL does.
                if let CopySource::Table {
                    table_name,
                    columns,
                } = source
                    && !columns.is_empty()
                    && let Err(e @ Error::UndefinedColumn(_)) =
                        self.db.copy_target(table_name, columns, &schema)
                {
                    return Err(e);
                }
                let query = copy_query(source)?;
                let rows = self.copy_out(client, &query, &format).await?;
                Ok(Response::Execution(Tag::new("COPY").with_rows(rows)))
            }
            (false, _) => Err(Error::NotSupported(
                "COPY FROM a file or program is not supported: use COPY ... FROM STDIN (psql's \\copy)"
                    .into(),
            )),
            (true, _) => Err(Error::NotSupported(
                "COPY TO a file or program is not supported: use COPY ... TO STDOUT (psql's \\copy)"
                    .into(),
            )),
        }
    }

    /// Runs the query of a COPY TO and sends its rows; returns how many.
    async fn copy_out<C>(
        &self,
        client: &mut C,
        query: &Statement,
        format: &CopyFormat,
    ) -> Result<usize>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let scope = self.scope(client);
        let slot = client
            .session_extensions()
            .get_or_insert_with(TxnSlot::default);
        let mut txn = slot.take();
        let outcome = self.db.execute(query, &scope, txn.as_mut()).await;
        slot.put(txn);
        let Outcome::Rows {
            schema: row_schema,
            mut rows,
        } = outcome?
        else {
            return Err(Error::Internal("COPY's query returned no rows".into()));
        };
        let row_schema = rename_columns(&row_schema, query);
        // Binary COPY carries each value in its type's binary send format,
        // as a binary DataRow does.
        let row_format = if format.binary {
            Format::UnifiedBinary
        } else {
            Format::UnifiedText
        };
        let options = std::sync::Arc::new(FormatOptions::from_client_metadata(client.metadata()));
        let fields = std::sync::Arc::new(
            fields_for(&row_schema, &row_format, options)
                .map_err(|e| Error::Internal(e.to_string()))?,
        );
        let width = row_schema.fields().len();
        let forced: Vec<bool> = row_schema
            .fields()
            .iter()
            .map(|f| {
                format
                    .force_quote
                    .as_ref()
                    .is_some_and(|cols| cols.iter().any(|c| c == f.name() || c == "*"))
            })
            .collect();
        let time_zone = session::setting(client, "TimeZone").unwrap_or_default();
        let wire_format = i8::from(format.binary);
        client
            .send(PgWireBackendMessage::CopyOutResponse(CopyOutResponse::new(
                wire_format,
                width as i16,
                vec![i16::from(wire_format); width],
            )))
            .await
            .map_err(|e| Error::Internal(PgWireError::from(e).to_string()))?;
        // Binary output starts with its header in the first message, as
        // PostgreSQL's does (tokio-postgres's reader expects the first row
        // there too).
        let mut binary_header = Vec::new();
        if format.binary {
            copy_binary::header(&mut binary_header);
        }
        if format.header {
            let names: Vec<String> = row_schema
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
            let mut line = Vec::new();
            format.header_line(&names, &mut line);
            send(client, line).await?;
        }
        let mut count = 0;
        while let Some(batch) = rows.next().await {
            let batch = text::render(batch?, &row_schema, &row_format, &time_zone)?;
            for row in encode_recordbatch(fields.clone(), batch) {
                let row = row.map_err(|e| Error::Internal(e.to_string()))?;
                let values = data_row_fields(&row.data, width)?;
                let mut line = std::mem::take(&mut binary_header);
                if format.binary {
                    copy_binary::encode_row(&values, &mut line);
                } else {
                    format.encode_row(&values, &forced, &mut line);
                }
                send(client, line).await?;
                count += 1;
            }
        }
        if format.binary {
            let mut trailer = binary_header;
            copy_binary::trailer(&mut trailer);
            send(client, trailer).await?;
        }
        client
            .send(PgWireBackendMessage::CopyDone(CopyDone::new()))
            .await
            .map_err(|e| Error::Internal(PgWireError::from(e).to_string()))?;
        Ok(count)
    }
}

async fn send<C>(client: &mut C, line: Vec<u8>) -> Result<()>
where
    C: Sink<PgWireBackendMessage> + Unpin,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    client
        .feed(PgWireBackendMessage::CopyData(CopyData::new(Bytes::from(
            line,
        ))))
        .await
        .map_err(|e| Error::Internal(PgWireError::from(e).to_string()))
}

/// The fields of an encoded DataRow: a length (-1 for NULL) and the bytes,
/// each.
fn data_row_fields(data: &[u8], width: usize) -> Result<Vec<Option<&[u8]>>> {
    let broken = || Error::Internal("a row did not encode as expected".into());
    let mut fields = Vec::with_capacity(width);
    let mut at = 0;
    for _ in 0..width {
        let length = i32::from_be_bytes(
            data.get(at..at + 4)
                .ok_or_else(broken)?
                .try_into()
                .map_err(|_| broken())?,
        );
        at += 4;
        if length < 0 {
            fields.push(None);
        } else {
            let end = at + length as usize;
            fields.push(Some(data.get(at..end).ok_or_else(broken)?));
            at = end;
        }
    }
    Ok(fields)
}

#[async_trait]
impl CopyHandler for Handler {
    async fn on_copy_data<C>(&self, client: &mut C, copy_data: CopyData) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        client
            .session_extensions()
            .get_or_insert_with(CopySlot::default)
            .with(|slot| {
                if let Some(incoming) = slot {
                    incoming.data.extend_from_slice(&copy_data.data);
                }
            });
        Ok(())
    }

    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let incoming = client
            .session_extensions()
            .get_or_insert_with(CopySlot::default)
            .with(Option::take);
        let Some(incoming) = incoming else {
            return Err(user_error(&Error::Internal(
                "CopyDone without a COPY in progress".into(),
            )));
        };
        let rows = self
            .copy_in(client, incoming)
            .await
            .map_err(|e| user_error(&e))?;
        client
            .send(PgWireBackendMessage::CommandComplete(
                Tag::new("COPY").with_rows(rows).into(),
            ))
            .await?;
        Ok(())
    }

    async fn on_copy_fail<C>(&self, client: &mut C, fail: CopyFail) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        client
            .session_extensions()
            .get_or_insert_with(CopySlot::default)
            .with(Option::take);
        // The statement fails: a transaction it ran in is aborted.
        client
            .session_extensions()
            .get_or_insert_with(TxnSlot::default)
            .take();
        user_error(&Error::CopyFailed(fail.message))
    }
}

impl Handler {
    /// Decodes and writes a COPY FROM's data as one statement.
    async fn copy_in<C>(&self, client: &mut C, incoming: Incoming) -> Result<usize>
    where
        C: ClientInfo,
    {
        let table = incoming.target.table_name().to_string();
        let records = incoming
            .format
            .decode(&incoming.data, incoming.target.fields())
            .map_err(|(line, message)| Error::InCopy {
                error: Box::new(Error::Data {
                    code: "22P04",
                    message,
                }),
                context: format!("COPY {table}, line {line}"),
            })?;
        drop(incoming.data);
        let slot = client
            .session_extensions()
            .get_or_insert_with(TxnSlot::default);
        let mut txn = slot.take();
        let in_block = txn.is_some();
        let rows = self
            .db
            .copy_from(&incoming.target, records, txn.as_mut())
            .await?;
        // A failed statement aborts the block: only success keeps it.
        slot.put(txn);
        if !in_block && implicit_flush(client) {
            self.db.flush().await?;
        }
        Ok(rows)
    }
}
