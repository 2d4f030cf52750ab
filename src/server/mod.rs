//! The PostgreSQL wire protocol front door: accepts connections, runs the
//! startup handshake (no password, as documented), and hands queries to the
//! handlers in `handler`.
//!
//! Each connection is its own tokio task; a connection that fails or drops in
//! the middle of a result ends that task only.

mod cancel;
mod copy;
mod copy_binary;
mod copy_format;
mod cursor;
mod errors;
mod handler;
mod params;
mod prepared;
mod session;
mod text;

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use futures::Sink;
use pgwire::api::auth::{
    ServerParameterProvider, StartupHandler, finish_authentication, protocol_negotiation,
    save_startup_parameters_to_metadata,
};
use pgwire::api::cancel::CancelHandler;
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::{
    ClientInfo, PgWireServerHandlers, PidSecretKeyGenerator, RandomPidSecretKeyGenerator,
};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{debug, warn};

use crate::database::Database;
use crate::error::Error;
use crate::query;
use cancel::{Canceller, Signals};
use handler::Handler;

/// Serves `db` on `listener` until the task is dropped, at most
/// `max_connections` sessions at once.
pub async fn serve(
    db: Arc<Database>,
    listener: TcpListener,
    max_connections: usize,
) -> std::io::Result<()> {
    let handlers = Arc::new(Handlers::new(db));
    let slots = Arc::new(Semaphore::new(max_connections));
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                warn!(error = %e, "accept failed");
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        // Held by the connection's task until it ends. A connection without
        // one still runs the handshake, so that it can be told why (and a
        // cancel request, which comes on a connection of its own, still
        // reaches its session).
        let slot = slots.clone().try_acquire_owned().ok();
        let connection = Connection {
            handlers: handlers.clone(),
            admitted: slot.is_some(),
        };
        tokio::spawn(async move {
            debug!(%peer, "connection opened");
            if let Err(e) = pgwire::tokio::process_socket(socket, None, connection).await {
                debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(slot);
            debug!(%peer, "connection closed");
        });
    }
}

/// One connection's view of the shared handlers: whether it got a slot.
struct Connection {
    handlers: Arc<Handlers>,
    admitted: bool,
}

impl PgWireServerHandlers for Connection {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.handlers.queries.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.handlers.queries.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        Arc::new(Admission {
            startup: self.handlers.startup.clone(),
            admitted: self.admitted,
        })
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        self.handlers.cancel.clone()
    }

    fn copy_handler(&self) -> Arc<impl pgwire::api::copy::CopyHandler> {
        self.handlers.queries.clone()
    }
}

struct Handlers {
    queries: Arc<Handler>,
    startup: Arc<Startup>,
    cancel: Arc<Canceller>,
}

impl Handlers {
    fn new(db: Arc<Database>) -> Self {
        let signals = Arc::new(Signals::default());
        Handlers {
            queries: Arc::new(Handler::new(db)),
            startup: Arc::new(Startup {
                signals: signals.clone(),
                keys: RandomPidSecretKeyGenerator::default(),
            }),
            cancel: Arc::new(Canceller { signals }),
        }
    }
}

/// Trust authentication, like a fresh PostgreSQL on localhost; registers the
/// connection so that cancel requests (Ctrl-C in psql) reach it.
struct Startup {
    signals: Arc<Signals>,
    keys: RandomPidSecretKeyGenerator,
}

struct Parameters;

impl ServerParameterProvider for Parameters {
    fn server_parameters<C: ClientInfo>(&self, client: &C) -> Option<HashMap<String, String>> {
        let mut params: HashMap<String, String> = [
            ("server_version", query::server_version()),
            ("server_encoding", "UTF8".into()),
            ("client_encoding", "UTF8".into()),
            (
                "DateStyle",
                session::setting(client, "DateStyle").unwrap_or_else(|| "ISO, MDY".into()),
            ),
            (
                "IntervalStyle",
                session::setting(client, "IntervalStyle").unwrap_or_else(|| "postgres".into()),
            ),
            (
                "TimeZone",
                session::setting(client, "TimeZone").unwrap_or_else(|| "UTC".into()),
            ),
            ("integer_datetimes", "on".into()),
            ("standard_conforming_strings", "on".into()),
            ("is_superuser", "on".into()),
            ("in_hot_standby", "off".into()),
            ("default_transaction_read_only", "off".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        if let Some(name) = client
            .metadata()
            .get(pgwire::api::METADATA_APPLICATION_NAME)
        {
            params.insert("application_name".into(), name.clone());
        }
        Some(params)
    }
}

/// The startup handler of one connection: a connection past
/// `max_connections` is refused at its startup message, as PostgreSQL does.
struct Admission {
    startup: Arc<Startup>,
    admitted: bool,
}

#[async_trait]
impl StartupHandler for Admission {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if !self.admitted && matches!(message, PgWireFrontendMessage::Startup(_)) {
            return Err(PgWireError::UserError(Box::new(errors::fatal_info(
                &Error::TooManyConnections,
            ))));
        }
        self.startup.on_startup(client, message).await
    }
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let PgWireFrontendMessage::Startup(startup) = &message {
            protocol_negotiation(client, startup).await?;
            save_startup_parameters_to_metadata(client, startup);
            session::adopt_startup_settings(client);
            let (pid, key) = self.keys.generate(client);
            client.set_pid_and_secret_key(pid, key.clone());
            let (signal, signal_guard) = self.signals.register(pid, key);
            client.session_extensions().insert(signal);
            client.session_extensions().insert(signal_guard);
            finish_authentication(client, &Parameters).await?;
        }
        Ok(())
    }
}
