//! `information_schema.views` as PostgreSQL has it.
//!
//! DataFusion's lists every table, with a `definition` column. A query that
//! names it reads, instead, a subquery over it that keeps only plain views
//! (the relations with a definition) under PostgreSQL's columns.

use std::ops::ControlFlow;
use std::sync::LazyLock;

use datafusion::sql::sqlparser::ast::{SetExpr, Statement, TableFactor, VisitMut, VisitorMut};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

/// The replacement, as the FROM item of a parsed query.
static VIEWS: LazyLock<Option<TableFactor>> = LazyLock::new(|| {
    let sql = "SELECT * FROM (SELECT table_catalog, table_schema, table_name, \
               definition AS view_definition, 'NONE' AS check_option, 'NO' AS is_updatable, \
               'NO' AS is_insertable_into, 'NO' AS is_trigger_updatable, \
               'NO' AS is_trigger_deletable, 'NO' AS is_trigger_insertable_into \
               FROM information_schema.views WHERE definition IS NOT NULL) AS views";
    let statement = Parser::parse_sql(&PostgreSqlDialect {}, sql).ok()?.pop()?;
    let Statement::Query(query) = statement else {
        return None;
    };
    let SetExpr::Select(select) = *query.body else {
        return None;
    };
    select.from.into_iter().next().map(|from| from.relation)
});

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
            let named = matches!(parts.as_slice(), [schema, table] if schema == "information_schema" && table == "views");
            if named && let Some(mut replacement) = VIEWS.clone() {
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
        let other = parse("SELECT * FROM information_schema.tables");
        assert_eq!(rewrite(other.clone()), other);
    }
}
