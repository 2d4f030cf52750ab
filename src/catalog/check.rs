//! What PostgreSQL checks and normalises on every stored row, applied to the
//! rows a statement is about to write: NOT NULL, character lengths
//! (`varchar(n)` and `char(n)` cut trailing spaces that do not fit and
//! reject other overflow; `char(n)` pads to n), JSON validity, jsonb's
//! canonical form (keys sorted and deduplicated, one space after `:` and `,`)
//! and uuid's (lower-case, hyphenated).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, StringArray};

use super::json::{self, Json};
use super::{ColumnType, TableDef};
use crate::error::{Error, Result};

/// Returns the rows as they will be stored, or the first violation.
pub fn check_rows(def: &TableDef, rows: &RecordBatch) -> Result<RecordBatch> {
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(rows.num_columns());
    for (column, array) in def.columns.iter().zip(rows.columns()) {
        if column.not_null && array.null_count() > 0 {
            return Err(Error::NotNullViolation {
                table: def.name.clone(),
                column: column.name.clone(),
            });
        }
        let Some(strings) = array.as_any().downcast_ref::<StringArray>() else {
            columns.push(array.clone());
            continue;
        };
        let fixed: Option<StringArray> = match &column.ty {
            ColumnType::Varchar(Some(max)) => fit_length(strings, *max as usize, &column.ty)?,
            ColumnType::Char(width) => {
                let fitted = fit_length(strings, *width as usize, &column.ty)?;
                Some(pad(fitted.as_ref().unwrap_or(strings), *width as usize))
            }
            ColumnType::Json => {
                for text in strings.iter().flatten() {
                    parse_json(text)?;
                }
                None
            }
            ColumnType::Uuid => Some(
                strings
                    .iter()
                    .map(|v| v.map(uuid_text).transpose())
                    .collect::<Result<StringArray>>()?,
            ),
            ColumnType::Jsonb => Some(
                strings
                    .iter()
                    .map(|v| {
                        v.map(|text| parse_json(text).map(|j| j.to_string()))
                            .transpose()
                    })
                    .collect::<Result<StringArray>>()?,
            ),
            _ => None,
        };
        columns.push(match fixed {
            Some(fixed) => Arc::new(fixed),
            None => array.clone(),
        });
    }
    Ok(RecordBatch::try_new(rows.schema(), columns)?)
}

fn fit_length(strings: &StringArray, max: usize, ty: &ColumnType) -> Result<Option<StringArray>> {
    if strings.iter().flatten().all(|s| s.chars().count() <= max) {
        return Ok(None);
    }
    let fitted = strings
        .iter()
        .map(|value| {
            value
                .map(|s| {
                    if s.chars().count() <= max {
                        return Ok(s.to_string());
                    }
                    let kept: String = s.chars().take(max).collect();
                    let rest = &s[kept.len()..];
                    if rest.chars().all(|c| c == ' ') {
                        Ok(kept)
                    } else {
                        Err(Error::Data {
                            code: "22001",
                            message: format!("value too long for type {}", ty.pg_name()),
                        })
                    }
                })
                .transpose()
        })
        .collect::<Result<StringArray>>()?;
    Ok(Some(fitted))
}

/// `character(n)` stores values blank-padded to n characters.
fn pad(strings: &StringArray, width: usize) -> StringArray {
    strings
        .iter()
        .map(|v| v.map(|s| format!("{s:<width$}")))
        .collect()
}

/// A uuid in PostgreSQL's output form: lower-case, hyphenated. Accepts the
/// forms PostgreSQL does (braces, upper case, hyphens anywhere or none).
pub fn uuid_text(text: &str) -> Result<String> {
    let invalid = || Error::Data {
        code: "22P02",
        message: format!("invalid input syntax for type uuid: \"{text}\""),
    };
    let inner = text
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .unwrap_or(text);
    let digits: String = inner.chars().filter(|c| *c != '-').collect();
    if digits.len() != 32
        || !digits.chars().all(|c| c.is_ascii_hexdigit())
        || inner.starts_with('-')
    {
        return Err(invalid());
    }
    let d = digits.to_ascii_lowercase();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &d[..8],
        &d[8..12],
        &d[12..16],
        &d[16..20],
        &d[20..]
    ))
}

fn parse_json(text: &str) -> Result<Json> {
    json::parse(text).map_err(|e| Error::Data {
        code: "22P02",
        message: e.0,
    })
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::Schema;

    use super::*;
    use crate::catalog::{ColumnDef, TableId};

    fn table(ty: ColumnType, not_null: bool) -> TableDef {
        TableDef {
            id: TableId(1),
            schema: "public".into(),
            name: "t".into(),
            columns: vec![ColumnDef {
                name: "c".into(),
                ty,
                not_null,
                default: None,
            }],
            primary_key: vec![],
        }
    }

    fn rows(def: &TableDef, values: Vec<Option<&str>>) -> RecordBatch {
        let schema: Schema = def.arrow_schema();
        let nullable = Schema::new(vec![schema.field(0).clone().with_nullable(true)]);
        RecordBatch::try_new(
            Arc::new(nullable),
            vec![Arc::new(StringArray::from(values))],
        )
        .unwrap()
    }

    fn texts(batch: &RecordBatch) -> Vec<Option<String>> {
        let column = batch
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        column.iter().map(|v| v.map(str::to_string)).collect()
    }

    #[test]
    fn jsonb_is_canonical() {
        let def = table(ColumnType::Jsonb, false);
        let out = check_rows(
            &def,
            &rows(
                &def,
                vec![Some(r#"{"x":true, "a":[1,{"b":null}], "x": 2}"#), None],
            ),
        )
        .unwrap();
        assert_eq!(
            texts(&out),
            vec![Some(r#"{"a": [1, {"b": null}], "x": 2}"#.into()), None]
        );
        assert!(matches!(
            check_rows(&def, &rows(&def, vec![Some("{nope")])),
            Err(Error::Data { code: "22P02", .. })
        ));
    }

    #[test]
    fn varchar_cuts_trailing_spaces_only() {
        let def = table(ColumnType::Varchar(Some(5)), false);
        let out = check_rows(&def, &rows(&def, vec![Some("abc      "), Some("ok")])).unwrap();
        assert_eq!(texts(&out), vec![Some("abc  ".into()), Some("ok".into())]);
        assert!(matches!(
            check_rows(&def, &rows(&def, vec![Some("abcdef")])),
            Err(Error::Data { code: "22001", .. })
        ));
    }

    #[test]
    fn uuids_are_canonical() {
        assert_eq!(
            uuid_text("{A0EEBC99-9C0B4EF8-BB6D6BB9-BD380A11}").unwrap(),
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
        );
        assert!(uuid_text("not-a-uuid").is_err());
    }

    #[test]
    fn char_pads_to_its_width() {
        let def = table(ColumnType::Char(3), false);
        let out = check_rows(&def, &rows(&def, vec![Some("ab"), Some("abc   ")])).unwrap();
        assert_eq!(texts(&out), vec![Some("ab ".into()), Some("abc".into())]);
    }

    #[test]
    fn not_null_names_the_column() {
        let def = table(ColumnType::Text, true);
        let Err(Error::NotNullViolation { table, column }) =
            check_rows(&def, &rows(&def, vec![None]))
        else {
            panic!("expected a not-null violation");
        };
        assert_eq!((table.as_str(), column.as_str()), ("t", "c"));
    }
}
