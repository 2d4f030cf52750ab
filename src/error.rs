//! The library's error type, sorted by who is at fault.
//!
//! Every layer raises one of these; only `server/` turns them into a
//! PostgreSQL SQLSTATE (see `server::errors`). Variants carry what a person
//! needs to fix the problem, not how we found it.

use datafusion::error::DataFusionError;

use crate::state::StorageError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The SQL text does not parse. `position` is a 1-based character offset
    /// into the statement text, as PostgreSQL reports it.
    #[error("{message}")]
    Syntax {
        message: String,
        position: Option<usize>,
    },

    #[error("relation \"{0}\" does not exist")]
    UndefinedTable(String),

    /// DROP TABLE of a missing table: PostgreSQL words it differently.
    /// DROP of a name that is not there: `table "t" does not exist`.
    #[error("{kind} \"{name}\" does not exist")]
    DropMissing { kind: &'static str, name: String },

    #[error("schema \"{0}\" does not exist")]
    UndefinedSchema(String),

    #[error("{0}")]
    UndefinedColumn(String),

    #[error("relation \"{0}\" already exists")]
    DuplicateTable(String),

    #[error("schema \"{0}\" already exists")]
    DuplicateSchema(String),

    /// A column is named twice in one CREATE TABLE.
    #[error("column \"{0}\" specified more than once")]
    DuplicateColumn(String),

    #[error(
        "null value in column \"{column}\" of relation \"{table}\" violates not-null constraint"
    )]
    NotNullViolation { table: String, column: String },

    #[error("duplicate key value violates unique constraint \"{constraint}\"")]
    UniqueViolation {
        schema: String,
        table: String,
        constraint: String,
        detail: String,
    },

    /// A value that does not fit its type (22xxx). `code` is the SQLSTATE,
    /// chosen where the failure is understood best.
    #[error("{message}")]
    Data { code: &'static str, message: String },

    /// The statement is valid SQL but refers to a type we do not know.
    #[error("type \"{0}\" does not exist")]
    UndefinedType(String),

    /// A named object (a setting, a prepared statement) that does not exist.
    #[error("{0}")]
    UndefinedObject(String),

    #[error("prepared statement \"{0}\" does not exist")]
    UndefinedPrepared(String),

    #[error("prepared statement \"{0}\" already exists")]
    DuplicatePrepared(String),

    /// DROP of a relation that materialized views still read (2BP01).
    #[error("cannot drop {what} because other objects depend on it")]
    DependentObjects { what: String, detail: String },

    /// The statement names an object of another kind (DROP MATERIALIZED
    /// VIEW of a table).
    #[error("{0}")]
    WrongObjectType(String),

    /// A definition that contradicts the one it replaces (42P16).
    #[error("{0}")]
    InvalidDefinition(String),

    /// A plan node the engine cannot maintain incrementally; names it.
    #[error("{0}")]
    NotIncremental(String),

    /// Valid SQL that Freshet does not do (yet). The message names the feature.
    #[error("{0}")]
    NotSupported(String),

    /// The statement cannot run in the session's current state.
    #[error("{0}")]
    InvalidParameter(String),

    /// SET of a setting that only the server decides (server_version).
    #[error("parameter \"{0}\" cannot be changed")]
    CantChangeParameter(String),

    /// A relation that exists but cannot be read yet: a materialized view
    /// still computing its first contents (55000).
    #[error("{0}")]
    NotReady(String),

    #[error("canceling statement due to statement timeout")]
    StatementTimeout,

    #[error("canceling statement due to user request")]
    Cancelled,

    /// A transaction waited too long for another writer's table.
    #[error("could not obtain lock on relation \"{0}\"")]
    LockNotAvailable(String),

    /// A statement nested deeper than the parser and planner descend
    /// (PostgreSQL: max_stack_depth).
    #[error("stack depth limit exceeded: the statement is nested too deeply")]
    TooDeep,

    /// A connection past `--max-connections` (PostgreSQL's wording).
    #[error("sorry, too many clients already")]
    TooManyConnections,

    #[error("current transaction is aborted, commands ignored until end of transaction block")]
    TransactionAborted,

    /// SAVEPOINT, RELEASE, ROLLBACK TO or DECLARE CURSOR outside BEGIN ...
    /// COMMIT.
    #[error("{0} can only be used in transaction blocks")]
    NoTransactionBlock(&'static str),

    #[error("savepoint \"{0}\" does not exist")]
    UndefinedSavepoint(String),

    #[error("{0} cannot run inside a transaction block")]
    ActiveTransaction(&'static str),

    /// FETCH or MOVE backward in a NO SCROLL cursor.
    #[error("cursor can only scan forward")]
    ForwardOnlyCursor,

    #[error("cursor \"{0}\" does not exist")]
    UndefinedCursor(String),

    #[error("cursor \"{0}\" already exists")]
    DuplicateCursor(String),

    /// A statement would change one row twice (ON CONFLICT DO UPDATE).
    #[error("{0}")]
    Cardinality(String),

    #[error("column reference \"{0}\" is ambiguous")]
    AmbiguousColumn(String),

    /// An ON CONFLICT target that names no unique constraint.
    #[error("{0}")]
    InvalidColumnReference(String),

    #[error(transparent)]
    Storage(#[from] StorageError),

    #[error(transparent)]
    DataFusion(#[from] DataFusionError),

    /// The client ended a COPY FROM with CopyFail (psql on Ctrl-C).
    #[error("COPY from stdin failed: {0}")]
    CopyFailed(String),

    /// An error in the data of a COPY: `context` says where (PostgreSQL's
    /// CONTEXT field: `COPY t, line 3, column id: "x"`).
    #[error("{error}")]
    InCopy { error: Box<Error>, context: String },

    /// A broken invariant inside Freshet: a bug, please report it.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<crate::stream::StreamError> for Error {
    fn from(e: crate::stream::StreamError) -> Self {
        match e {
            crate::stream::StreamError::Arrow(e) => e.into(),
            crate::stream::StreamError::DataFusion(e) => Error::DataFusion(e),
            crate::stream::StreamError::Internal(m) => Error::Internal(m),
        }
    }
}

impl From<datafusion::arrow::error::ArrowError> for Error {
    fn from(e: datafusion::arrow::error::ArrowError) -> Self {
        Error::DataFusion(DataFusionError::ArrowError(Box::new(e), None))
    }
}
