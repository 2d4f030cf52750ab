//! `information_schema.views` and `information_schema.tables` as
//! PostgreSQL has them.
//!
//! DataFusion's `views` lists every table, with a `definition` column; its
//! `tables` has four of PostgreSQL's twelve columns (sqlsmith reads
//! `is_insertable_into`). A query that names either reads, instead, a
//! subquery over DataFusion's that has PostgreSQL's columns (and, for
//! `views`, keeps only plain views: the relations with a definition).

use std::ops::ControlFlow;
use std::sync::LazyLock;

use datafusion::sql::sqlparser::ast::{SetExpr, Statement, TableFactor, VisitMut, VisitorMut};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

/// The replacements, as FROM items of a parsed query.
static VIEWS: LazyLock<Option<TableFactor>> = LazyLock::new(|| {
    from_item(
        "SELECT * FROM (SELECT table_catalog, table_schema, table_name, \
         definition AS view_definition, 'NONE' AS check_option, 'NO' AS is_updatable, \
         'NO' AS is_insertable_into, 'NO' AS is_trigger_updatable, \
         'NO' AS is_trigger_deletable, 'NO' AS is_trigger_insertable_into \
         FROM information_schema.views WHERE definition IS NOT NULL) AS views",
    )
});

static TABLES: LazyLock<Option<TableFactor>> = LazyLock::new(|| {
    from_item(
        "SELECT * FROM (SELECT table_catalog, table_schema, table_name, table_type, \
         CAST(NULL AS text) AS self_referencing_column_name, \
         CAST(NULL AS text) AS reference_generation, \
         CAST(NULL AS text) AS user_defined_type_catalog, \
         CAST(NULL AS text) AS user_defined_type_schema, \
         CAST(NULL AS text) AS user_defined_type_name, \
         CASE WHEN table_type = 'BASE TABLE' THEN 'YES' ELSE 'NO' END AS is_insertable_into, \
         'NO' AS is_typed, CAST(NULL AS text) AS commit_action \
         FROM information_schema.tables) AS tables",
    )
});

fn from_item(sql: &str) -> Option<TableFactor> {
    let statement = Parser::parse_sql(&PostgreSqlDialect {}, sql).ok()?.pop()?;
    let Statement::Query(query) = statement else {
        return None;
    };
    let SetExpr::Select(select) = *query.body else {
        return None;
    };
    select.from.into_iter().next().map(|from| from.relation)
}

struct Replace;

impl VisitorMut for Replace {
    type Break = ();

    fn post_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table { name, alias, .. } = factor {
            let parts: Vec<String> = name
                .0
                .iter()
                .filter_map(|p| p.as_ident().map(super::ident_name))
                .collect();
            let replacement = match parts.as_slice() {
                [schema, table] if schema == "information_schema" && table == "views" => {
                    VIEWS.clone()
                }
                [schema, table] if schema == "information_schema" && table == "tables" => {
                    TABLES.clone()
                }
                _ => None,
            };
            if let Some(mut replacement) = replacement {
                if let (TableFactor::Derived { alias: default, .. }, Some(given)) =
                    (&mut replacement, alias.clone())
                {
                    *default = Some(given);
                }
                *factor = replacement;
            }
        }
        ControlFlow::Continue(())
    }
}

pub fn rewrite(mut statement: Statement) -> Statement {
    let _ = statement.visit(&mut Replace);
    statement
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_information_schema_views_is_replaced() {
        let parse = |sql: &str| {
            Parser::parse_sql(&PostgreSqlDialect {}, sql)
                .unwrap()
                .remove(0)
        };
        let rewritten = rewrite(parse("SELECT table_name FROM information_schema.views v"));
        let text = rewritten.to_string();
        assert!(text.contains("WHERE definition IS NOT NULL) v"), "{text}");
        let tables = rewrite(parse(
            "SELECT is_insertable_into FROM information_schema.tables",
        ));
        assert!(
            tables.to_string().contains("AS is_insertable_into"),
            "{tables}"
        );
        let other = parse("SELECT * FROM information_schema.columns");
        assert_eq!(rewrite(other.clone()), other);
    }
}
