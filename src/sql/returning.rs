//! `RETURNING` of INSERT, UPDATE and DELETE. DataFusion plans none of them,
//! so the clause is taken off the statement before it is planned, and its
//! items are evaluated over the rows the statement wrote
//! (`Database::execute_dml`): the new rows of an INSERT or UPDATE, the old
//! rows of a DELETE. `described` gives the SELECT whose columns are the
//! result's, for Describe. The items may name the target table's columns
//! (through its alias, if it has one), not other tables of an UPDATE ...
//! FROM or DELETE ... USING.

use datafusion::sql::sqlparser::ast::{
    FromTable, Ident, ObjectName, SelectItem, Statement, TableFactor, TableObject, TableWithJoins,
};

use crate::error::{Error, Result};

/// What a RETURNING asks for.
#[derive(Debug, Clone)]
pub struct Returning {
    pub items: Vec<SelectItem>,
    /// The name the items know the target by: its alias, or the table's.
    pub relation: Ident,
    table: ObjectName,
}

fn target(factor: &TableWithJoins) -> Option<(ObjectName, Ident)> {
    match &factor.relation {
        TableFactor::Table { name, alias, .. } => {
            let relation = match alias {
                Some(alias) => alias.name.clone(),
                None => name.0.last()?.as_ident()?.clone(),
            };
            Some((name.clone(), relation))
        }
        _ => None,
    }
}

fn returning_of(
    statement: &mut Statement,
) -> Option<(&mut Option<Vec<SelectItem>>, ObjectName, Ident)> {
    match statement {
        Statement::Insert(insert) => {
            let TableObject::TableName(name) = &insert.table else {
                return None;
            };
            let relation = match &insert.table_alias {
                Some(alias) => alias.alias.clone(),
                None => name.0.last()?.as_ident()?.clone(),
            };
            let name = name.clone();
            // Only the RETURNING (and ON CONFLICT, refused with it) reads
            // the alias; DataFusion plans no INSERT that has one.
            if insert.returning.is_some() {
                insert.table_alias = None;
            }
            Some((&mut insert.returning, name, relation))
        }
        Statement::Update(update) => {
            let (name, relation) = target(&update.table)?;
            Some((&mut update.returning, name, relation))
        }
        Statement::Delete(delete) => {
            let (FromTable::WithFromKeyword(tables) | FromTable::WithoutKeyword(tables)) =
                &delete.from;
            let (name, relation) = target(tables.first()?)?;
            Some((&mut delete.returning, name, relation))
        }
        _ => None,
    }
}

/// Takes the RETURNING off `statement`.
pub fn take(statement: &mut Statement) -> Result<Option<Returning>> {
    if let Statement::Insert(insert) = statement
        && insert.on.is_some()
        && insert.returning.is_some()
    {
        return Err(Error::NotSupported(
            "INSERT ... ON CONFLICT ... RETURNING is not supported yet".into(),
        ));
    }
    let Some((slot, table, relation)) = returning_of(statement) else {
        return Ok(None);
    };
    Ok(slot.take().map(|items| Returning {
        items,
        relation,
        table,
    }))
}

impl Returning {
    /// The name of each of `width` result columns: an item's own
    /// (`sql::item_name`), `None` for the columns a `*` expands to (their
    /// own names).
    pub fn column_names(&self, width: usize) -> Vec<Option<String>> {
        let stars = self
            .items
            .iter()
            .filter(|i| super::item_name(i).is_none())
            .count();
        let expanded = match stars {
            0 => 0,
            n => width.saturating_sub(self.items.len() - n) / n,
        };
        self.items
            .iter()
            .flat_map(|item| match super::item_name(item) {
                Some(name) => vec![Some(name)],
                None => vec![None; expanded],
            })
            .collect()
    }
}

/// Whether `statement` has a RETURNING (without copying it).
pub fn has(statement: &Statement) -> bool {
    match statement {
        Statement::Insert(insert) => insert.returning.is_some(),
        Statement::Update(update) => update.returning.is_some(),
        Statement::Delete(delete) => delete.returning.is_some(),
        _ => false,
    }
}

/// The RETURNING of `statement`, if it has one.
pub fn of(statement: &Statement) -> Option<Returning> {
    if !has(statement) {
        return None;
    }
    take(&mut statement.clone()).ok().flatten()
}

/// `SELECT <items> FROM <table> AS <relation>`: its columns are the
/// RETURNING's.
pub fn described(returning: &Returning) -> Result<Statement> {
    let items: Vec<String> = returning.items.iter().map(ToString::to_string).collect();
    let sql = format!(
        "SELECT {} FROM {} AS {}",
        items.join(", "),
        returning.table,
        returning.relation
    );
    let mut statements = super::parse(&sql)?;
    match (statements.pop(), statements.is_empty()) {
        (Some(statement @ Statement::Query(_)), true) => Ok(statement),
        _ => Err(Error::Internal("RETURNING did not read as a query".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn returning(sql: &str) -> (Statement, Option<Returning>) {
        let mut statement = crate::sql::parse(sql).unwrap().remove(0);
        let returning = take(&mut statement).unwrap();
        (statement, returning)
    }

    #[test]
    fn the_clause_comes_off_and_names_the_target() {
        let (insert, r) = returning("INSERT INTO t AS x (a) VALUES (1) RETURNING a, x.b + 1 AS c");
        assert_eq!(insert.to_string(), "INSERT INTO t (a) VALUES (1)");
        let r = r.unwrap();
        assert_eq!(r.relation.value, "x");
        assert_eq!(
            described(&r).unwrap().to_string(),
            "SELECT a, x.b + 1 AS c FROM t AS x"
        );
        let (_, r) = returning("UPDATE s.t SET a = 1 RETURNING *");
        assert_eq!(r.unwrap().relation.value, "t");
        let (_, r) = returning("DELETE FROM t WHERE a = 1 RETURNING a");
        assert!(r.is_some());
        let (_, r) = returning("DELETE FROM t WHERE a = 1");
        assert!(r.is_none());
        let mut upsert =
            crate::sql::parse("INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING RETURNING a")
                .unwrap()
                .remove(0);
        assert!(matches!(take(&mut upsert), Err(Error::NotSupported(_))));
    }
}
