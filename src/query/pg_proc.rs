//! `pg_get_function_result`, `pg_get_function_arguments`,
//! `pg_get_function_identity_arguments` and `pg_get_function_sqlbody`: a
//! function's signature as PostgreSQL prints it (psql's `\df`, pgAdmin,
//! DBeaver).
//!
//! pg_proc is a fixed copy of PostgreSQL's (Freshet has no user-defined
//! functions), so the signatures are read from it once, at start, and kept
//! by oid. Parameter defaults are not printed: the copy does not hold their
//! expressions.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, StringArray};
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility};
use datafusion::prelude::SessionContext;

use crate::error::Result;

/// One function's signature texts.
struct Signature {
    result: String,
    arguments: String,
    identity: String,
}

/// Which text of a signature a function returns.
type Part = fn(&Signature) -> Option<&str>;

/// Signatures by function oid.
pub struct Signatures(HashMap<i64, Signature>);

/// The elements of a catalog array as the copy holds it: `[a, b]` or
/// `['a', 'b']` (or, for `proargtypes`, `a b`).
fn elements(text: Option<&str>) -> Vec<String> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Vec::new();
    };
    let inner = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .or_else(|| text.strip_prefix('{').and_then(|t| t.strip_suffix('}')));
    match inner {
        Some(inner) => inner
            .split(',')
            .map(|e| e.trim().trim_matches('\'').trim_matches('"').to_string())
            .filter(|e| !e.is_empty())
            .collect(),
        None => text.split_whitespace().map(str::to_string).collect(),
    }
}

impl Signatures {
    pub async fn load(ctx: &SessionContext) -> Result<Self> {
        let types = ctx
            .sql(
                "SELECT CAST(t.oid AS BIGINT), format_type(t.oid, NULL), CAST(t.typname AS TEXT) \
                 FROM pg_catalog.pg_type t",
            )
            .await?
            .collect()
            .await?;
        let mut names: HashMap<String, String> = HashMap::new();
        for batch in &types {
            let columns: Vec<_> = (0..3)
                .map(|i| datafusion::arrow::compute::cast(batch.column(i), &DataType::Utf8))
                .collect::<std::result::Result<_, _>>()?;
            let (oid, formatted, typname) = (
                columns[0].as_string::<i32>(),
                columns[1].as_string::<i32>(),
                columns[2].as_string::<i32>(),
            );
            for row in 0..batch.num_rows() {
                let formatted = formatted.is_valid(row).then(|| formatted.value(row));
                // format_type here knows the ordinary types; pseudo-types
                // (record, anyelement, "any") are printed by their name.
                let name = match formatted {
                    Some(f) if !f.starts_with("oid(") => f.to_string(),
                    _ if typname.value(row) == "any" => "\"any\"".to_string(),
                    _ => typname.value(row).to_string(),
                };
                names.insert(oid.value(row).to_string(), name);
            }
        }
        let type_name = |oid: &str| names.get(oid).cloned().unwrap_or_else(|| "-".into());
        let procs = ctx
            .sql(
                "SELECT CAST(oid AS BIGINT), CAST(prorettype AS TEXT), proretset, \
                 CAST(proargtypes AS TEXT), CAST(proallargtypes AS TEXT), \
                 CAST(proargmodes AS TEXT), CAST(proargnames AS TEXT) FROM pg_catalog.pg_proc",
            )
            .await?
            .collect()
            .await?;
        let mut signatures = HashMap::new();
        for batch in &procs {
            let oid = datafusion::arrow::compute::cast(batch.column(0), &DataType::Int64)?;
            let oid = oid.as_primitive::<Int64Type>();
            let retset = batch.column(2).as_boolean();
            let texts: Vec<_> = [1, 3, 4, 5, 6]
                .iter()
                .map(|i| datafusion::arrow::compute::cast(batch.column(*i), &DataType::Utf8))
                .collect::<std::result::Result<_, _>>()?;
            let text = |column: usize, row: usize| {
                let array = texts[column].as_string::<i32>();
                array.is_valid(row).then(|| array.value(row))
            };
            for row in 0..batch.num_rows() {
                let all = elements(text(2, row));
                let types = if all.is_empty() {
                    elements(text(1, row))
                } else {
                    all
                };
                let modes = elements(text(3, row));
                let argnames = elements(text(4, row));
                let mut arguments = Vec::new();
                let mut identity = Vec::new();
                let mut table = Vec::new();
                for (i, ty) in types.iter().enumerate() {
                    let mode = modes.get(i).map_or("i", String::as_str);
                    let named = match argnames.get(i).filter(|n| !n.is_empty()) {
                        Some(name) => format!("{name} {}", type_name(ty)),
                        None => type_name(ty),
                    };
                    let prefix = match mode {
                        "o" => "OUT ",
                        "b" => "INOUT ",
                        "v" => "VARIADIC ",
                        _ => "",
                    };
                    if mode == "t" {
                        table.push(named);
                        continue;
                    }
                    if mode != "o" {
                        identity.push(format!("{prefix}{named}"));
                    }
                    arguments.push(format!("{prefix}{named}"));
                }
                let returns = text(0, row).map(&type_name).unwrap_or_default();
                let result = if !table.is_empty() {
                    format!("TABLE({})", table.join(", "))
                } else if retset.is_valid(row) && retset.value(row) {
                    format!("SETOF {returns}")
                } else {
                    returns
                };
                signatures.insert(
                    oid.value(row),
                    Signature {
                        result,
                        arguments: arguments.join(", "),
                        identity: identity.join(", "),
                    },
                );
            }
        }
        Ok(Signatures(signatures))
    }

    /// The functions, reading these signatures.
    pub fn functions(self: Arc<Self>) -> Vec<ScalarUDF> {
        let part: [(&str, Part); 4] = [
            ("pg_get_function_result", |s| Some(&s.result)),
            ("pg_get_function_arguments", |s| Some(&s.arguments)),
            ("pg_get_function_identity_arguments", |s| Some(&s.identity)),
            // Only SQL-standard function bodies have one, and every
            // function here is built in (psql's `\df+`).
            ("pg_get_function_sqlbody", |_| None),
        ];
        part.into_iter()
            .map(|(name, pick)| {
                let signatures = self.clone();
                let fun = move |args: &[ColumnarValue]| {
                    let arrays = ColumnarValue::values_to_arrays(args)?;
                    let oids = datafusion::arrow::compute::cast(&arrays[0], &DataType::Int64)?;
                    let texts: StringArray = oids
                        .as_primitive::<Int64Type>()
                        .iter()
                        .map(|oid| oid.and_then(|oid| signatures.0.get(&oid)).and_then(pick))
                        .collect();
                    Ok(ColumnarValue::Array(Arc::new(texts)))
                };
                super::overloaded(
                    name,
                    vec![vec![DataType::Int32], vec![DataType::Int64]],
                    DataType::Utf8,
                    Volatility::Stable,
                    Arc::new(fun),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_arrays_split_into_elements() {
        assert_eq!(elements(Some("[25, 2276]")), ["25", "2276"]);
        assert_eq!(elements(Some("['word', 'catcode']")), ["word", "catcode"]);
        assert_eq!(elements(Some("23 23")), ["23", "23"]);
        assert_eq!(elements(Some("{i,v}")), ["i", "v"]);
        assert!(elements(Some("")).is_empty());
        assert!(elements(None).is_empty());
    }
}
