//! Primary keys and column defaults in `pg_catalog`, as clients read them.
//!
//! `datafusion-pg-catalog` ships `pg_index`, `pg_constraint` and
//! `pg_attrdef` empty, so psql's `\d t` showed no Default column and no
//! "Indexes:" footer, and ORMs reflected tables without primary keys. Here
//! each table with a primary key gets an index `<table>_pkey` (a `pg_class`
//! row of kind `i`, a `pg_index` row) and a constraint of kind `p`, and each
//! column DEFAULT a `pg_attrdef` row whose `adbin` is the expression's SQL
//! text, which `pg_get_expr` returns as it is.
//!
//! Object ids: a key's index is its table's oid plus `INDEX_OID`, its
//! constraint the table's oid plus `CONSTRAINT_OID` (the catalog crate
//! numbers relations from 16384 up, far below either offset). The
//! definitions that `pg_get_indexdef` and `pg_get_constraintdef` print
//! are recorded by each scan of these tables: a client learns the oids from
//! such a scan (psql joins `pg_index` in the same query) before it asks.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use datafusion::arrow::array::{
    ArrayRef, AsArray, BooleanArray, Int16Array, Int32Array, RecordBatch, StringArray,
    new_null_array,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int32Type, SchemaRef};
use datafusion::error::Result;
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility};

use super::pg_format::quote_ident;
use crate::catalog::TableDef;

/// Every table's definition, for the catalog tables to describe.
pub type Tables = Arc<dyn Fn() -> Vec<Arc<TableDef>> + Send + Sync>;

/// Oid to definition text, filled by scans, read by the `pg_get_*def`
/// functions.
pub type Definitions = Arc<RwLock<HashMap<i32, String>>>;

const INDEX_OID: i32 = 1_000_000_000;
const CONSTRAINT_OID: i32 = 1_500_000_000;
/// `pg_attrdef` oids are numbered from here in each scan (nothing refers
/// to them).
const ATTRDEF_OID: i32 = 2_000_000_000;

/// The index of a table's primary key.
pub fn index_oid(table_oid: i32) -> i32 {
    table_oid.saturating_add(INDEX_OID)
}

fn constraint_oid(table_oid: i32) -> i32 {
    table_oid.saturating_add(CONSTRAINT_OID)
}

/// A table of the catalog as the crate's `pg_class` numbers it.
pub struct Located {
    pub oid: i32,
    pub namespace: i32,
    pub def: Arc<TableDef>,
}

/// Which of the three tables a scan builds.
#[derive(Debug, Clone, Copy)]
pub enum KeyTable {
    Index,
    Constraint,
    Attrdef,
}

fn key_columns(def: &TableDef) -> String {
    def.primary_key
        .iter()
        .map(|&i| quote_ident(&def.columns[i].name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// 1-based column numbers separated by `separator`, as PostgreSQL prints
/// int2vector (space) and int2[] (comma, in braces).
fn attnums(def: &TableDef, separator: &str) -> String {
    def.primary_key
        .iter()
        .map(|&i| (i + 1).to_string())
        .collect::<Vec<_>>()
        .join(separator)
}

/// The rows of `which` for `tables`, in `schema` (the crate's columns):
/// the columns named in `given` take those values, every other column its
/// type's neutral value (false, 0, '' or NULL where it may be NULL).
pub fn rows(
    which: KeyTable,
    schema: &SchemaRef,
    tables: &[Located],
    definitions: &Definitions,
) -> Result<RecordBatch> {
    let mut given: HashMap<&str, ArrayRef> = HashMap::new();
    let count;
    match which {
        KeyTable::Index | KeyTable::Constraint => {
            let keyed: Vec<&Located> = tables
                .iter()
                .filter(|t| !t.def.primary_key.is_empty())
                .collect();
            count = keyed.len();
            let mut recorded = match definitions.write() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
            for t in &keyed {
                recorded.insert(
                    index_oid(t.oid),
                    format!(
                        "CREATE UNIQUE INDEX {} ON {}.{} USING btree ({})",
                        quote_ident(&t.def.primary_key_name()),
                        quote_ident(&t.def.schema),
                        quote_ident(&t.def.name),
                        key_columns(&t.def)
                    ),
                );
                recorded.insert(
                    constraint_oid(t.oid),
                    format!("PRIMARY KEY ({})", key_columns(&t.def)),
                );
            }
            drop(recorded);
            let ints = |f: &dyn Fn(&Located) -> i32| -> ArrayRef {
                Arc::new(Int32Array::from_iter_values(keyed.iter().map(|t| f(t))))
            };
            let texts = |f: &dyn Fn(&Located) -> String| -> ArrayRef {
                Arc::new(StringArray::from_iter_values(keyed.iter().map(|t| f(t))))
            };
            let yes: ArrayRef = Arc::new(BooleanArray::from(vec![true; count]));
            if let KeyTable::Index = which {
                let width: ArrayRef = Arc::new(Int16Array::from_iter_values(
                    keyed.iter().map(|t| t.def.primary_key.len() as i16),
                ));
                given.insert("indexrelid", ints(&|t| index_oid(t.oid)));
                given.insert("indrelid", ints(&|t| t.oid));
                given.insert("indnatts", width.clone());
                given.insert("indnkeyatts", width);
                for flag in [
                    "indisunique",
                    "indisprimary",
                    "indimmediate",
                    "indisvalid",
                    "indisready",
                    "indislive",
                ] {
                    given.insert(flag, yes.clone());
                }
                given.insert("indkey", texts(&|t| attnums(&t.def, " ")));
                let zeros = |t: &Located| vec!["0"; t.def.primary_key.len()].join(" ");
                given.insert("indcollation", texts(&zeros));
                given.insert("indclass", texts(&zeros));
                given.insert("indoption", texts(&zeros));
            } else {
                given.insert("oid", ints(&|t| constraint_oid(t.oid)));
                given.insert("conname", texts(&|t| t.def.primary_key_name()));
                given.insert("connamespace", ints(&|t| t.namespace));
                given.insert("contype", texts(&|_| "p".into()));
                given.insert("convalidated", yes.clone());
                given.insert("conislocal", yes.clone());
                given.insert("connoinherit", yes);
                given.insert("conrelid", ints(&|t| t.oid));
                given.insert("conindid", ints(&|t| index_oid(t.oid)));
                given.insert("confupdtype", texts(&|_| " ".into()));
                given.insert("confdeltype", texts(&|_| " ".into()));
                given.insert("confmatchtype", texts(&|_| " ".into()));
                given.insert(
                    "conkey",
                    texts(&|t| format!("{{{}}}", attnums(&t.def, ","))),
                );
            }
        }
        KeyTable::Attrdef => {
            let defaults: Vec<(i32, i16, String)> = tables
                .iter()
                .flat_map(|t| {
                    t.def.columns.iter().enumerate().filter_map(|(i, c)| {
                        c.default
                            .as_ref()
                            .map(|d| (t.oid, (i + 1) as i16, d.clone()))
                    })
                })
                .collect();
            count = defaults.len();
            given.insert(
                "oid",
                Arc::new(Int32Array::from_iter_values(
                    (0..count as i32).map(|i| ATTRDEF_OID.saturating_add(i)),
                )),
            );
            given.insert(
                "adrelid",
                Arc::new(Int32Array::from_iter_values(defaults.iter().map(|d| d.0))),
            );
            given.insert(
                "adnum",
                Arc::new(Int16Array::from_iter_values(defaults.iter().map(|d| d.1))),
            );
            given.insert(
                "adbin",
                Arc::new(StringArray::from_iter_values(
                    defaults.iter().map(|d| d.2.clone()),
                )),
            );
        }
    }
    let columns = schema
        .fields()
        .iter()
        .map(|field| match given.remove(field.name().as_str()) {
            Some(values) => values,
            None => neutral(field.data_type(), field.is_nullable(), count),
        })
        .collect();
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

fn neutral(data_type: &DataType, nullable: bool, count: usize) -> ArrayRef {
    match data_type {
        DataType::Boolean => Arc::new(BooleanArray::from(vec![false; count])),
        DataType::Int16 => Arc::new(Int16Array::from(vec![0; count])),
        DataType::Int32 => Arc::new(Int32Array::from(vec![0; count])),
        DataType::Utf8 if !nullable => Arc::new(StringArray::from(vec![""; count])),
        other => new_null_array(other, count),
    }
}

/// A function of `name` over each list of argument types; the first
/// argument (an oid) may come as int4 or int8 (an integer literal).
fn overloaded(
    name: &str,
    arguments: &[Vec<DataType>],
    fun: datafusion::logical_expr::ScalarFunctionImplementation,
) -> ScalarUDF {
    let mut signatures = Vec::new();
    for first in [DataType::Int32, DataType::Int64] {
        for rest in arguments {
            let mut types = vec![first.clone()];
            types.extend(rest.iter().cloned());
            signatures.push(types);
        }
    }
    super::overloaded(name, signatures, DataType::Utf8, Volatility::Stable, fun)
}

/// `pg_get_indexdef(oid [, column, pretty])` and
/// `pg_get_constraintdef(oid [, pretty])`: the recorded definition, NULL
/// for an oid no scan has described (PostgreSQL: NULL for an unknown oid).
pub fn definition_functions(definitions: &Definitions) -> Vec<ScalarUDF> {
    let lookup =
        |definitions: Definitions| -> datafusion::logical_expr::ScalarFunctionImplementation {
            Arc::new(move |args: &[ColumnarValue]| {
                let arrays = ColumnarValue::values_to_arrays(&args[..1])?;
                let oids = cast(&arrays[0], &DataType::Int32)?;
                let recorded = match definitions.read() {
                    Ok(guard) => guard,
                    Err(poisoned) => poisoned.into_inner(),
                };
                let texts: StringArray = oids
                    .as_primitive::<Int32Type>()
                    .iter()
                    .map(|oid| oid.and_then(|oid| recorded.get(&oid).cloned()))
                    .collect();
                Ok(ColumnarValue::Array(Arc::new(texts) as ArrayRef))
            })
        };
    let int = [DataType::Int32, DataType::Int64];
    let index_arguments: Vec<Vec<DataType>> = std::iter::once(vec![])
        .chain(int.iter().map(|i| vec![i.clone(), DataType::Boolean]))
        .collect();
    vec![
        overloaded(
            "pg_get_indexdef",
            &index_arguments,
            lookup(definitions.clone()),
        ),
        overloaded(
            "pg_get_constraintdef",
            &[vec![], vec![DataType::Boolean]],
            lookup(definitions.clone()),
        ),
    ]
}

/// `pg_get_expr(text, oid [, pretty])`: the stored expression text as it is
/// (`pg_attrdef.adbin` holds SQL, not a node tree).
pub fn pg_get_expr() -> ScalarUDF {
    let mut signatures = Vec::new();
    for oid in [DataType::Int32, DataType::Int64] {
        signatures.push(vec![DataType::Utf8, oid.clone()]);
        signatures.push(vec![DataType::Utf8, oid, DataType::Boolean]);
    }
    super::overloaded(
        "pg_get_expr",
        signatures,
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(&args[..1])?;
            Ok(ColumnarValue::Array(arrays[0].clone()))
        }),
    )
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::{Field, Schema};

    use super::*;
    use crate::catalog::{ColumnDef, ColumnType, TableId};

    fn table(primary_key: Vec<usize>) -> Arc<TableDef> {
        let column = |name: &str, default: Option<&str>| ColumnDef {
            name: name.into(),
            ty: ColumnType::Integer,
            not_null: false,
            default: default.map(str::to_string),
        };
        Arc::new(TableDef {
            id: TableId(1),
            schema: "public".into(),
            name: "Orders".into(),
            columns: vec![column("id", None), column("n", Some("42"))],
            primary_key,
        })
    }

    #[test]
    fn a_primary_key_is_an_index_and_a_constraint_with_their_definitions() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("indexrelid", DataType::Int32, false),
            Field::new("indisprimary", DataType::Boolean, false),
            Field::new("indkey", DataType::Utf8, false),
            Field::new("indexprs", DataType::Utf8, true),
        ]));
        let definitions = Definitions::default();
        let tables = [
            Located {
                oid: 16400,
                namespace: 2200,
                def: table(vec![1, 0]),
            },
            Located {
                oid: 16401,
                namespace: 2200,
                def: table(vec![]),
            },
        ];
        let batch = rows(KeyTable::Index, &schema, &tables, &definitions).unwrap();
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(
            batch.column(0).as_primitive::<Int32Type>().value(0),
            index_oid(16400)
        );
        assert!(batch.column(1).as_boolean().value(0));
        assert_eq!(batch.column(2).as_string::<i32>().value(0), "2 1");
        assert!(batch.column(3).is_null(0));
        let recorded = definitions.read().unwrap();
        assert_eq!(
            recorded[&index_oid(16400)],
            "CREATE UNIQUE INDEX \"Orders_pkey\" ON public.\"Orders\" USING btree (n, id)"
        );
        assert_eq!(recorded[&constraint_oid(16400)], "PRIMARY KEY (n, id)");
    }

    #[test]
    fn each_default_is_an_attrdef_row_with_its_text() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("adrelid", DataType::Int32, false),
            Field::new("adnum", DataType::Int16, false),
            Field::new("adbin", DataType::Utf8, false),
        ]));
        let tables = [Located {
            oid: 16400,
            namespace: 2200,
            def: table(vec![0]),
        }];
        let batch = rows(KeyTable::Attrdef, &schema, &tables, &Definitions::default()).unwrap();
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(
            batch
                .column(1)
                .as_primitive::<datafusion::arrow::datatypes::Int16Type>()
                .value(0),
            2
        );
        assert_eq!(batch.column(2).as_string::<i32>().value(0), "42");
    }
}
