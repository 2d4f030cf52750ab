//! SHOW TABLES, SHOW MATERIALIZED VIEWS, SHOW COLUMNS / DESCRIBE: listings
//! built from the catalog, with the `LIKE` / `ILIKE` filter of the SHOW.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::sql::sqlparser::ast::{
    ShowStatementFilter, ShowStatementFilterPosition, ShowStatementOptions,
};

use crate::catalog::{Catalog, TableDef};
use crate::error::{Error, Result};

/// The columns of `SHOW COLUMNS FROM t` and `DESCRIBE t`.
pub const COLUMN_LISTING: [&str; 5] = ["Name", "Type", "Nullable", "Default", "Primary Key"];

/// `SHOW TABLES [FROM schema] [LIKE 'pattern']`: one `Name` column.
pub fn tables(
    catalog: &Catalog,
    schema: &str,
    options: &ShowStatementOptions,
) -> Result<RecordBatch> {
    if !catalog.has_schema(schema) {
        return Err(Error::UndefinedSchema(schema.to_string()));
    }
    let names: Vec<String> = catalog.tables_in(schema).map(|t| t.name.clone()).collect();
    names_batch(filtered(names, options)?)
}

/// `SHOW MATERIALIZED VIEWS [FROM schema] [LIKE 'pattern']`.
pub fn mvs(catalog: &Catalog, schema: &str, options: &ShowStatementOptions) -> Result<RecordBatch> {
    let names: Vec<String> = catalog.mvs_in(schema).map(|m| m.name.clone()).collect();
    names_batch(filtered(names, options)?)
}

/// The names the SHOW's filter keeps. `LIKE` (also without the keyword)
/// and `ILIKE` as in PostgreSQL; a `WHERE` filter is not supported.
fn filtered(names: Vec<String>, options: &ShowStatementOptions) -> Result<Vec<String>> {
    let filter = match &options.filter_position {
        None => return Ok(names),
        Some(ShowStatementFilterPosition::Infix(f) | ShowStatementFilterPosition::Suffix(f)) => f,
    };
    let (pattern, fold) = match filter {
        ShowStatementFilter::Like(p) | ShowStatementFilter::NoKeyword(p) => (p.clone(), false),
        ShowStatementFilter::ILike(p) => (p.to_lowercase(), true),
        ShowStatementFilter::Where(_) => {
            return Err(Error::NotSupported(
                "SHOW ... WHERE is not supported; use LIKE".into(),
            ));
        }
    };
    Ok(names
        .into_iter()
        .filter(|name| {
            let name = if fold {
                name.to_lowercase()
            } else {
                name.clone()
            };
            like(&pattern, &name)
        })
        .collect())
}

/// PostgreSQL's LIKE: `%` any run, `_` any one character, `\` escapes.
pub fn like(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    fn matches(p: &[char], t: &[char]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some('%') => (0..=t.len()).any(|skip| matches(&p[1..], &t[skip..])),
            Some('_') => !t.is_empty() && matches(&p[1..], &t[1..]),
            Some('\\') if p.len() > 1 => t.first() == Some(&p[1]) && matches(&p[2..], &t[1..]),
            Some(c) => t.first() == Some(c) && matches(&p[1..], &t[1..]),
        }
    }
    matches(&pattern, &text)
}

fn names_batch(names: Vec<String>) -> Result<RecordBatch> {
    let schema = Arc::new(Schema::new(vec![Field::new("Name", DataType::Utf8, false)]));
    Ok(RecordBatch::try_new(
        schema,
        vec![Arc::new(StringArray::from(names))],
    )?)
}

/// `SHOW COLUMNS FROM t`: name, type, nullability, default, key membership.
pub fn columns(def: &TableDef) -> Result<RecordBatch> {
    let text = |values: Vec<Option<String>>| -> ArrayRef { Arc::new(StringArray::from(values)) };
    let columns = &def.columns;
    let out_schema = Arc::new(Schema::new(
        COLUMN_LISTING
            .iter()
            .map(|name| Field::new(*name, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(
        out_schema.clone(),
        vec![
            text(columns.iter().map(|c| Some(c.name.clone())).collect()),
            text(columns.iter().map(|c| Some(c.ty.pg_name())).collect()),
            text(
                columns
                    .iter()
                    .map(|c| Some(if c.not_null { "NO" } else { "YES" }.into()))
                    .collect(),
            ),
            text(columns.iter().map(|c| c.default.clone()).collect()),
            text(
                (0..columns.len())
                    .map(|i| {
                        Some(
                            if def.primary_key.contains(&i) {
                                "YES"
                            } else {
                                "NO"
                            }
                            .into(),
                        )
                    })
                    .collect(),
            ),
        ],
    )?;
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::like;

    #[test]
    fn like_follows_postgresql() {
        assert!(like("ord%", "orders"));
        assert!(like("%_total", "per_total"));
        assert!(like("a_c", "abc"));
        assert!(!like("a_c", "abbc"));
        assert!(like("50\\%", "50%"));
        assert!(!like("50\\%", "500"));
        assert!(like("%", ""));
        assert!(!like("x", "X"));
    }
}
