//! Batch queries: DataFusion over table snapshots, plus the PostgreSQL
//! catalogs clients expect to find (`pg_catalog`, `information_schema`).

pub mod checked_arithmetic;
pub mod dml;
mod mv_table;
pub mod nextval;
mod pg_attribute;
pub(crate) mod pg_compat;
mod pg_format;
mod pg_json;
mod pg_keys;
mod pg_namespace;
pub mod pg_numeric;
pub mod pg_proc;
pub mod pg_size;
mod provider;
pub mod show;
pub mod subqueries;
pub mod system;
pub mod time_zone;
pub mod values;

pub use mv_table::MvTable;
pub use pg_attribute::{DeclaredColumns, MaterializedViews, PlainViews, RelationNamespaces};
pub use provider::{ReadEpoch, StoredTable, TxnView, WriterView};

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, StringArray};
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::execution::FunctionRegistry;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::{AggregateUDF, ColumnarValue, ScalarUDF, Volatility, create_udf};
use datafusion::optimizer::{Analyzer, AnalyzerRule};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_pg_catalog::pg_catalog::context::{PgCatalogContextProvider, Role};

use crate::catalog::DEFAULT_SCHEMA;

/// The name clients see as the database (`current_database()`).
pub const DATABASE_NAME: &str = "freshet";

/// Whether DataFusion's message refuses a column that is neither grouped
/// nor aggregated (PostgreSQL's 42803).
pub fn is_grouping_message(message: &str) -> bool {
    message.contains("must appear in the GROUP BY clause")
        || message.contains("must be in GROUP BY or an aggregate function")
}

/// Whether planning failed with DataFusion's grouping error.
pub fn is_grouping_error(error: &datafusion::error::DataFusionError) -> bool {
    is_grouping_message(&error.to_string())
}

/// The version string clients read from `server_version` and `version()`.
/// The PostgreSQL number is the protocol level we follow, so that drivers pick
/// their modern code paths.
pub fn server_version() -> String {
    format!("16.6 (Freshet {})", env!("CARGO_PKG_VERSION"))
}

/// `server_version` as the number tools compare (`SHOW server_version_num`,
/// libpq's PQserverVersion): major * 10000 + minor.
pub fn server_version_num() -> u32 {
    160006
}

/// Makes `pg_catalog.pg_attribute` report the declared column types.
/// Also makes `pg_class` report materialized views as such, and `pg_views`
/// and `pg_matviews` list the views.
/// Also lists primary keys and defaults (`pg_keys`): `pg_index`,
/// `pg_constraint`, `pg_attrdef`, and the functions that print them.
pub fn declare_column_types(
    ctx: &SessionContext,
    declared: DeclaredColumns,
    materialized: MaterializedViews,
    views: PlainViews,
    matviews: PlainViews,
    tables: pg_keys::Tables,
) -> Result<RelationNamespaces> {
    let relation_namespaces = RelationNamespaces::default();
    let Some(catalog) = ctx.catalog(DATABASE_NAME) else {
        return Ok(relation_namespaces);
    };
    let definitions = pg_keys::Definitions::default();
    for function in pg_keys::definition_functions(&definitions)
        .into_iter()
        .chain([pg_keys::pg_get_expr()])
    {
        ctx.register_udf(function);
    }
    if let Some(inner) = catalog.schema("pg_catalog") {
        catalog.register_schema(
            "pg_catalog",
            Arc::new(pg_attribute::PgCatalogWithDeclaredTypes {
                inner,
                declared,
                materialized,
                views,
                matviews,
                tables,
                definitions,
                relation_namespaces: relation_namespaces.clone(),
            }),
        )?;
    }
    Ok(relation_namespaces)
}

/// A view's or MV's definition by its `pg_class` oid.
pub type ViewDefinition = Arc<dyn Fn(i32) -> Option<String> + Send + Sync>;

/// `pg_get_viewdef(oid [, pretty])`: the view's query (psql's `\d+` of a
/// view), NULL for a relation that is no view.
pub fn pg_get_viewdef(definition: ViewDefinition) -> ScalarUDF {
    let fun = move |args: &[ColumnarValue]| {
        let arrays = ColumnarValue::values_to_arrays(args)?;
        let oids = datafusion::arrow::compute::cast(&arrays[0], &DataType::Int32)?;
        let texts: datafusion::arrow::array::StringArray = oids
            .as_primitive::<datafusion::arrow::datatypes::Int32Type>()
            .iter()
            .map(|oid| oid.and_then(|oid| definition(oid)))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(texts)))
    };
    overloaded(
        "pg_get_viewdef",
        vec![
            vec![DataType::Int32],
            vec![DataType::Int64],
            vec![DataType::Int32, DataType::Boolean],
            vec![DataType::Int64, DataType::Boolean],
        ],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(fun),
    )
}

/// `pg_has_role([user,] role, privilege)`: true. Every session is the one
/// superuser, which PostgreSQL treats as a member of every role (psql's
/// `\l+` asks about pg_read_all_stats).
pub fn pg_has_role() -> ScalarUDF {
    let fun = |args: &[ColumnarValue]| {
        let arrays = ColumnarValue::values_to_arrays(args)?;
        let rows = arrays.first().map_or(1, |a| a.len());
        // NULL in, NULL out, as PostgreSQL's strict functions.
        let flags: datafusion::arrow::array::BooleanArray = (0..rows)
            .map(|i| arrays.iter().all(|a| a.is_valid(i)).then_some(true))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(flags)))
    };
    overloaded(
        "pg_has_role",
        vec![
            vec![DataType::Utf8, DataType::Utf8],
            vec![DataType::Utf8, DataType::Utf8, DataType::Utf8],
        ],
        DataType::Boolean,
        Volatility::Stable,
        Arc::new(fun),
    )
}

/// `pg_function_is_visible(oid)`: true. Every function is PostgreSQL's, in
/// pg_catalog, which is always on the search path (users create none).
pub fn pg_function_is_visible() -> ScalarUDF {
    let fun = |args: &[ColumnarValue]| {
        let arrays = ColumnarValue::values_to_arrays(args)?;
        let flags: datafusion::arrow::array::BooleanArray = (0..arrays[0].len())
            .map(|i| arrays[0].is_valid(i).then_some(true))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(flags)))
    };
    overloaded(
        "pg_function_is_visible",
        vec![vec![DataType::Int32], vec![DataType::Int64]],
        DataType::Boolean,
        Volatility::Stable,
        Arc::new(fun),
    )
}

/// A function `name` with one exact signature per list of argument types
/// (PostgreSQL overloads: `pg_get_expr(text, oid)` and `(text, oid, bool)`).
pub(crate) fn overloaded(
    name: &str,
    signatures: Vec<Vec<DataType>>,
    returns: DataType,
    volatility: Volatility,
    fun: datafusion::logical_expr::ScalarFunctionImplementation,
) -> ScalarUDF {
    ScalarUDF::from(
        datafusion::logical_expr::SimpleScalarUDF::new_with_signature(
            name,
            datafusion::logical_expr::Signature::one_of(
                signatures
                    .into_iter()
                    .map(datafusion::logical_expr::TypeSignature::Exact)
                    .collect(),
                volatility,
            ),
            returns,
            fun,
        ),
    )
}

/// The roles pg_roles lists: Freshet has no roles of its own (every client
/// is trusted), so one superuser, `postgres`, as a fresh PostgreSQL has; psql's
/// `\du` and tools that read pg_roles on connect find it.
#[derive(Debug, Clone)]
struct Roles;

#[async_trait::async_trait]
impl PgCatalogContextProvider for Roles {
    async fn roles(&self) -> Vec<String> {
        vec!["postgres".to_string()]
    }

    async fn role(&self, name: &str) -> Option<Role> {
        (name == "postgres").then(|| Role {
            name: name.to_string(),
            is_superuser: true,
            can_login: true,
            can_create_db: true,
            can_create_role: true,
            can_create_user: true,
            can_replication: true,
            grants: Vec::new(),
            inherited_roles: Vec::new(),
        })
    }
}
/// A session context with our catalog layout and the PostgreSQL functions.
/// With `memory_limit`, every query planned from it shares one pool of that
/// many bytes: sorts and aggregates spill to temporary files past it, and
/// what cannot spill (a hash join's build side) fails with "Resources
/// exhausted" (53200) instead of the OS killing the server.
pub fn new_context(memory_limit: Option<usize>) -> Result<SessionContext> {
    let config = SessionConfig::new()
        .with_default_catalog_and_schema(DATABASE_NAME, DEFAULT_SCHEMA)
        .with_create_default_catalog_and_schema(true)
        .with_information_schema(true)
        .set_str("datafusion.sql_parser.dialect", "PostgreSQL")
        .set_bool("datafusion.sql_parser.parse_float_as_decimal", true)
        .set_str("datafusion.execution.time_zone", "UTC");
    let mut runtime = RuntimeEnvBuilder::new();
    if let Some(limit) = memory_limit {
        runtime = runtime.with_memory_limit(limit, 1.0);
    }
    let mut analyzer_rules: Vec<Arc<dyn AnalyzerRule + Send + Sync>> =
        vec![Arc::new(pg_compat::IntegerLiterals)];
    analyzer_rules.extend(Analyzer::new().rules);
    let state = datafusion::execution::SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime.build_arc()?)
        .with_default_features()
        .with_analyzer_rules(analyzer_rules)
        .with_physical_optimizer_rule(Arc::new(checked_arithmetic::CheckedArithmetic))
        .build();
    let mut ctx = SessionContext::new_with_state(state);
    datafusion_pg_catalog::setup_pg_catalog(&ctx, DATABASE_NAME, Roles).map_err(|e| *e)?;
    ctx.register_udaf(AggregateUDF::from(pg_numeric::Avg::default()));
    ctx.register_udaf(AggregateUDF::from(pg_numeric::Sum::default()));
    // PostgreSQL's `variance` is the sample variance.
    if let Ok(var_samp) = ctx.udaf("var_samp") {
        ctx.register_udaf(var_samp.as_ref().clone().with_aliases(["variance"]));
    }
    ctx.register_udf(pg_compat::JUSTIFY_HOURS.clone());
    ctx.register_udf(ScalarUDF::from(pg_compat::OctetLength::default()));
    ctx.register_udf(ScalarUDF::from(pg_compat::PgTypeof::default()));
    ctx.add_analyzer_rule(Arc::new(pg_compat::PostgresCasts));
    ctx.add_analyzer_rule(Arc::new(time_zone::SessionTimeZone));
    ctx.register_udf(ScalarUDF::from(time_zone::AtTimeZone::default()));
    ctx.register_expr_planner(Arc::new(pg_compat::IntervalArithmetic))?;
    ctx.register_expr_planner(Arc::new(pg_json::JsonOperators))?;
    for function in pg_json::FUNCTIONS.iter() {
        ctx.register_udf(function.clone());
    }
    for aggregate in pg_json::aggregates() {
        ctx.register_udaf(aggregate);
    }
    ctx.register_udf(pg_format::format_function());
    ctx.register_udf(create_udf(
        "quote_literal",
        vec![DataType::Utf8],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(quote_literal),
    ));
    let version = format!("PostgreSQL {} on Freshet", server_version());
    ctx.register_udf(create_udf(
        "version",
        vec![],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(move |_| {
            Ok(ColumnarValue::Array(Arc::new(StringArray::from(vec![
                version.clone(),
            ]))))
        }),
    ));
    Ok(ctx)
}

/// `quote_literal(text)`: the text as a SQL string literal, quotes doubled;
/// one that holds a backslash is an `E'...'` literal with backslashes
/// doubled, as PostgreSQL writes it (asyncpg builds COPY queries with it).
fn quote_literal(args: &[ColumnarValue]) -> Result<ColumnarValue> {
    let arrays = ColumnarValue::values_to_arrays(args)?;
    let texts = arrays[0].as_string::<i32>();
    let quoted: StringArray = texts
        .iter()
        .map(|t| t.map(pg_format::quote_literal))
        .collect();
    Ok(ColumnarValue::Array(Arc::new(quoted)))
}

/// The functions whose answer is the session's: `current_schema()` (the
/// first schema of its search_path that exists, where unqualified names
/// resolve) and `current_schemas(implicit)` (that schema, after
/// `pg_catalog` when `implicit`). Registered on the state each statement
/// is planned with. Also `pg_table_is_visible(oid)`: whether the relation
/// lives in that schema or in `pg_catalog` (so psql's `\dt` lists what
/// unqualified names reach), true for an oid `pg_class` has not listed.
pub fn session_functions(schema: &str, relations: &RelationNamespaces) -> Vec<ScalarUDF> {
    let visible_in = schema.to_string();
    let relations = relations.clone();
    let visible = move |args: &[ColumnarValue]| {
        let arrays = ColumnarValue::values_to_arrays(args)?;
        let oids = datafusion::arrow::compute::cast(&arrays[0], &DataType::Int32)?;
        let seen = match relations.read() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let flags: datafusion::arrow::array::BooleanArray = oids
            .as_primitive::<datafusion::arrow::datatypes::Int32Type>()
            .iter()
            .map(|oid| {
                let oid = oid?;
                Some(
                    seen.get(&oid)
                        .is_none_or(|(ns, _)| *ns == visible_in || ns == "pg_catalog"),
                )
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(flags)))
    };
    let current = ScalarValue::Utf8(Some(schema.to_string()));
    let path = |implicit: bool| {
        let mut names = Vec::new();
        if implicit {
            names.push(Some("pg_catalog".to_string()));
        }
        names.push(Some(schema.to_string()));
        ScalarValue::List(ScalarValue::new_list_nullable(
            &names.into_iter().map(ScalarValue::Utf8).collect::<Vec<_>>(),
            &DataType::Utf8,
        ))
    };
    let (explicit, implicit) = (path(false), path(true));
    vec![
        overloaded(
            "pg_table_is_visible",
            vec![vec![DataType::Int32], vec![DataType::Int64]],
            DataType::Boolean,
            Volatility::Stable,
            Arc::new(visible),
        ),
        create_udf(
            "current_schema",
            vec![],
            DataType::Utf8,
            Volatility::Stable,
            Arc::new(move |_| Ok(ColumnarValue::Scalar(current.clone()))),
        ),
        create_udf(
            "current_schemas",
            vec![DataType::Boolean],
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            Volatility::Stable,
            Arc::new(move |args: &[ColumnarValue]| {
                let arrays = ColumnarValue::values_to_arrays(args)?;
                let flags = arrays[0].as_boolean();
                let lists: Vec<ScalarValue> = (0..flags.len())
                    .map(|i| {
                        if flags.is_valid(i) && flags.value(i) {
                            implicit.clone()
                        } else {
                            explicit.clone()
                        }
                    })
                    .collect();
                Ok(ColumnarValue::Array(ScalarValue::iter_to_array(lists)?))
            }),
        ),
    ]
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_version_number_is_the_version_string() {
        let version = super::server_version();
        let release = version.split_whitespace().next().unwrap();
        let (major, minor) = release.split_once('.').unwrap();
        let number: u32 = major.parse::<u32>().unwrap() * 10_000 + minor.parse::<u32>().unwrap();
        assert_eq!(super::server_version_num(), number);
    }
}
