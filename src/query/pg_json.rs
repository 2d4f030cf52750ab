//! PostgreSQL's json and jsonb functions and operators.
//!
//! Both types are Arrow strings; which one a column is travels in its field
//! metadata (`PG_TYPE_KEY`), as for table columns. jsonb strings are kept
//! in jsonb's canonical form (`catalog::json`), json strings as written.
//! Each function here reads its arguments' metadata to know what it was
//! given, and tags its result the same way, so that the wire reports json
//! or jsonb and the next operator knows what it holds.
//!
//! The operators (`->`, `->>`, `#>`, `#>>`, `@>`, `<@`, `?`, `?|`, `?&`, and
//! `||` and `-` on jsonb) are planned into these functions by
//! `JsonOperators`; DataFusion has no JSON type of its own.
//!
//! Known difference: `->` on a `json` value gives the element in jsonb's
//! canonical form, not the exact text it had inside the document.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Int32Array, StringArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::common::{DFSchema, DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, Expr, ExprSchemable,
    ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use datafusion::sql::sqlparser::ast::BinaryOperator;

use crate::catalog::PG_TYPE_KEY;
use crate::catalog::json::{self, Json, write_string};

/// What a JSON value's string is: its declared type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Json,
    Jsonb,
}

impl Kind {
    fn of(field: &Field) -> Option<Kind> {
        match field.metadata().get(PG_TYPE_KEY).map(String::as_str) {
            Some("json") => Some(Kind::Json),
            Some("jsonb") => Some(Kind::Jsonb),
            _ => None,
        }
    }

    fn field(self, name: &str) -> Field {
        let name_of_type = match self {
            Kind::Json => "json",
            Kind::Jsonb => "jsonb",
        };
        Field::new(name, DataType::Utf8, true).with_metadata(HashMap::from([(
            PG_TYPE_KEY.to_string(),
            name_of_type.to_string(),
        )]))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Op {
    /// `::json` and `::jsonb` of a string.
    Input(Kind),
    /// `->` (and `json_extract_path` with one step).
    Get,
    /// `->>`.
    GetText,
    /// `#>` and `json_extract_path`.
    GetPath,
    /// `#>>` and `json_extract_path_text`.
    GetPathText,
    /// `@>` (`<@` swaps its arguments).
    Contains,
    /// `?`, `?|`, `?&`.
    Exists,
    ExistsAny,
    ExistsAll,
    /// jsonb `||` and `-`.
    Concat,
    Delete,
    TypeOf,
    ArrayLength,
    StripNulls(Kind),
    BuildObject(Kind),
    BuildArray(Kind),
    ToJson(Kind),
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonFunction {
    name: &'static str,
    op: Op,
    /// Functions whose path is variadic (`json_extract_path(j, 'a', 'b')`)
    /// rather than one text[] (`j #> '{a,b}'`).
    variadic_path: bool,
    signature: Signature,
}

fn function(name: &'static str, op: Op) -> ScalarUDF {
    let signature = match op {
        Op::BuildObject(_) | Op::BuildArray(_) => Signature::one_of(
            vec![TypeSignature::Nullary, TypeSignature::VariadicAny],
            Volatility::Immutable,
        ),
        _ => Signature::variadic_any(Volatility::Immutable),
    };
    ScalarUDF::from(JsonFunction {
        name,
        op,
        variadic_path: name.ends_with("extract_path") || name.ends_with("extract_path_text"),
        signature,
    })
}

/// Every JSON function, registered by name; the operators use the
/// `pg_json_*` ones.
pub static FUNCTIONS: LazyLock<Vec<ScalarUDF>> = LazyLock::new(|| {
    vec![
        function("pg_json_in", Op::Input(Kind::Json)),
        function("pg_jsonb_in", Op::Input(Kind::Jsonb)),
        function("pg_json_get", Op::Get),
        function("pg_json_get_text", Op::GetText),
        function("pg_json_get_path", Op::GetPath),
        function("pg_json_get_path_text", Op::GetPathText),
        function("pg_jsonb_contains", Op::Contains),
        function("pg_jsonb_exists", Op::Exists),
        function("pg_jsonb_exists_any", Op::ExistsAny),
        function("pg_jsonb_exists_all", Op::ExistsAll),
        function("pg_jsonb_concat", Op::Concat),
        function("pg_jsonb_delete", Op::Delete),
        function("json_extract_path", Op::GetPath),
        function("jsonb_extract_path", Op::GetPath),
        function("json_extract_path_text", Op::GetPathText),
        function("jsonb_extract_path_text", Op::GetPathText),
        function("json_typeof", Op::TypeOf),
        function("jsonb_typeof", Op::TypeOf),
        function("json_array_length", Op::ArrayLength),
        function("jsonb_array_length", Op::ArrayLength),
        function("json_strip_nulls", Op::StripNulls(Kind::Json)),
        function("jsonb_strip_nulls", Op::StripNulls(Kind::Jsonb)),
        function("json_build_object", Op::BuildObject(Kind::Json)),
        function("jsonb_build_object", Op::BuildObject(Kind::Jsonb)),
        function("json_build_array", Op::BuildArray(Kind::Json)),
        function("jsonb_build_array", Op::BuildArray(Kind::Jsonb)),
        function("to_json", Op::ToJson(Kind::Json)),
        function("to_jsonb", Op::ToJson(Kind::Jsonb)),
    ]
});

fn named(name: &str) -> ScalarUDF {
    FUNCTIONS
        .iter()
        .find(|f| f.name() == name)
        .cloned()
        .expect("every operator's function is in FUNCTIONS")
}

fn invalid(message: impl Into<String>) -> DataFusionError {
    DataFusionError::Execution(message.into())
}

fn parse(text: &str) -> Result<Json> {
    json::parse(text).map_err(|e| invalid(e.0))
}

/// Strings of an argument, whatever its string flavour.
fn strings(array: &ArrayRef) -> Result<StringArray> {
    Ok(cast(array, &DataType::Utf8)?.as_string::<i32>().clone())
}

/// NULL at `row`; a NullArray (a bare `NULL` argument) has no null
/// buffer, so `Array::is_null` would say no.
fn is_null(array: &ArrayRef, row: usize) -> bool {
    array
        .logical_nulls()
        .is_some_and(|nulls| nulls.is_null(row))
}

/// The text of one value of a string argument. One value, not a cast of
/// the whole column: the functions read their arguments row by row.
fn text_at(array: &ArrayRef, row: usize) -> Result<String> {
    match ScalarValue::try_from_array(array, row)? {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::Utf8View(Some(s))
        | ScalarValue::LargeUtf8(Some(s)) => Ok(s),
        other => Ok(other.to_string()),
    }
}

/// One value of an integer argument, as i64.
fn int_at(array: &ArrayRef, row: usize) -> Result<i64> {
    match ScalarValue::try_from_array(array, row)?.cast_to(&DataType::Int64)? {
        ScalarValue::Int64(Some(v)) => Ok(v),
        other => Err(invalid(format!("{other} is not an array index"))),
    }
}

fn is_string(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 | DataType::Null
    )
}

impl ScalarUDFImpl for JsonFunction {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Err(DataFusionError::Internal(
            "JSON functions give their type by return_field_from_args".into(),
        ))
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let input = args.arg_fields.first().and_then(|f| Kind::of(f));
        let field = match self.op {
            Op::Input(kind)
            | Op::StripNulls(kind)
            | Op::BuildObject(kind)
            | Op::BuildArray(kind)
            | Op::ToJson(kind) => kind.field(self.name),
            Op::Get | Op::GetPath => match self.name {
                "jsonb_extract_path" => Kind::Jsonb.field(self.name),
                "json_extract_path" => Kind::Json.field(self.name),
                _ => input.unwrap_or(Kind::Jsonb).field(self.name),
            },
            Op::Concat | Op::Delete => Kind::Jsonb.field(self.name),
            Op::GetText | Op::GetPathText | Op::TypeOf => {
                Field::new(self.name, DataType::Utf8, true)
            }
            Op::Contains | Op::Exists | Op::ExistsAny | Op::ExistsAll => {
                Field::new(self.name, DataType::Boolean, true)
            }
            Op::ArrayLength => Field::new(self.name, DataType::Int32, true),
        };
        Ok(Arc::new(field))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let arrays: Vec<ArrayRef> = args
            .args
            .iter()
            .map(|a| a.to_array(rows))
            .collect::<Result<_>>()?;
        let fields = &args.arg_fields;
        let result: ArrayRef = match self.op {
            Op::Input(kind) => Arc::new(input(&arrays[0], kind)?),
            Op::Get | Op::GetPath | Op::GetText | Op::GetPathText => {
                Arc::new(self.get(&arrays, rows)?)
            }
            Op::Contains => {
                let (a, b) = (strings(&arrays[0])?, strings(&arrays[1])?);
                Arc::new(
                    (0..rows)
                        .map(|i| match (a.is_valid(i), b.is_valid(i)) {
                            (true, true) => {
                                Ok(Some(parse(a.value(i))?.contains(&parse(b.value(i))?)))
                            }
                            _ => Ok(None),
                        })
                        .collect::<Result<BooleanArray>>()?,
                )
            }
            Op::Exists | Op::ExistsAny | Op::ExistsAll => Arc::new(self.exists(&arrays, rows)?),
            Op::Concat => {
                let (a, b) = (strings(&arrays[0])?, strings(&arrays[1])?);
                Arc::new(
                    (0..rows)
                        .map(|i| match (a.is_valid(i), b.is_valid(i)) {
                            (true, true) => Ok(Some(
                                parse(a.value(i))?.concat(parse(b.value(i))?).to_string(),
                            )),
                            _ => Ok(None),
                        })
                        .collect::<Result<StringArray>>()?,
                )
            }
            Op::Delete => Arc::new(delete(&arrays[0], &arrays[1], rows)?),
            Op::TypeOf => map_json(&arrays[0], |j| Ok(Some(j.type_name().to_string())))?,
            Op::ArrayLength => {
                let texts = strings(&arrays[0])?;
                Arc::new(
                    texts
                        .iter()
                        .map(|t| match t.map(parse).transpose()? {
                            Some(Json::Array(items)) => Ok(Some(items.len() as i32)),
                            Some(Json::Object(_)) => {
                                Err(invalid("cannot get array length of a non-array"))
                            }
                            Some(_) => Err(invalid("cannot get array length of a scalar")),
                            None => Ok(None),
                        })
                        .collect::<Result<Int32Array>>()?,
                )
            }
            Op::StripNulls(kind) => {
                map_json(&arrays[0], |j| Ok(Some(render(&j.strip_nulls(), kind))))?
            }
            Op::BuildObject(kind) => Arc::new(build(&arrays, fields, rows, kind, true)?),
            Op::BuildArray(kind) => Arc::new(build(&arrays, fields, rows, kind, false)?),
            Op::ToJson(kind) => Arc::new(
                (0..rows)
                    .map(|i| {
                        let value = to_json(&arrays[0], &fields[0], i)?;
                        Ok(match (value, kind) {
                            (None, _) => None,
                            (Some(v), Kind::Jsonb) => Some(v.to_string()),
                            (Some(_), Kind::Json) => Some(json_text(&arrays[0], &fields[0], i)?),
                        })
                    })
                    .collect::<Result<StringArray>>()?,
            ),
        };
        Ok(ColumnarValue::Array(result))
    }
}

fn render(value: &Json, kind: Kind) -> String {
    match kind {
        Kind::Jsonb => value.to_string(),
        Kind::Json => value.to_json_text(),
    }
}

fn input(array: &ArrayRef, kind: Kind) -> Result<StringArray> {
    let texts = strings(array)?;
    texts
        .iter()
        .map(|t| {
            t.map(|t| {
                let value = parse(t)?;
                Ok(match kind {
                    Kind::Jsonb => value.to_string(),
                    Kind::Json => t.to_string(),
                })
            })
            .transpose()
        })
        .collect()
}

fn map_json(array: &ArrayRef, f: impl Fn(Json) -> Result<Option<String>>) -> Result<ArrayRef> {
    let texts = strings(array)?;
    let out: StringArray = texts
        .iter()
        .map(|t| {
            t.map(parse)
                .transpose()?
                .map(&f)
                .transpose()
                .map(Option::flatten)
        })
        .collect::<Result<_>>()?;
    Ok(Arc::new(out))
}

/// One step of a path: a key, or an index into an array.
enum Step {
    Key(String),
    Index(i64),
}

fn step_into<'a>(value: &'a Json, step: &Step) -> Option<&'a Json> {
    match (value, step) {
        (Json::Object(_), Step::Key(key)) => value.get(key),
        (Json::Array(_), Step::Key(key)) => key.parse::<i64>().ok().and_then(|i| value.at(i)),
        (Json::Array(_), Step::Index(i)) => value.at(*i),
        _ => None,
    }
}

/// The elements of a text[] argument at `row`: an array value or its
/// literal text (`'{a,b}'`).
fn text_array(array: &ArrayRef, row: usize) -> Result<Option<Vec<Option<String>>>> {
    if is_null(array, row) {
        return Ok(None);
    }
    match array.data_type() {
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..) => {
            let value = ScalarValue::try_from_array(array, row)?;
            let ScalarValue::List(list) = value else {
                let items = match value {
                    ScalarValue::LargeList(l) => l.value(0),
                    ScalarValue::FixedSizeList(l) => l.value(0),
                    _ => return Ok(None),
                };
                return Ok(Some(
                    strings(&items)?
                        .iter()
                        .map(|s| s.map(str::to_string))
                        .collect(),
                ));
            };
            let items = list.value(0);
            Ok(Some(
                strings(&items)?
                    .iter()
                    .map(|s| s.map(str::to_string))
                    .collect(),
            ))
        }
        _ => parse_text_array(&text_at(array, row)?).map(Some),
    }
}

/// PostgreSQL's array literal for text[]: `{a,"b c",NULL}`.
fn parse_text_array(text: &str) -> Result<Vec<Option<String>>> {
    let malformed = || invalid(format!("malformed array literal: \"{text}\""));
    let inner = text
        .trim()
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .ok_or_else(malformed)?;
    let mut items = Vec::new();
    if inner.trim().is_empty() {
        return Ok(items);
    }
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut item = String::new();
        let quoted = chars.peek() == Some(&'"');
        if quoted {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => item.push(chars.next().ok_or_else(malformed)?),
                    Some(c) => item.push(c),
                    None => return Err(malformed()),
                }
            }
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                item.push(c);
                chars.next();
            }
            item = item.trim().to_string();
        }
        items.push((quoted || !item.eq_ignore_ascii_case("null")).then_some(item));
        match chars.next() {
            Some(',') => continue,
            None => return Ok(items),
            Some(_) => return Err(malformed()),
        }
    }
}

impl JsonFunction {
    fn get(&self, arrays: &[ArrayRef], rows: usize) -> Result<StringArray> {
        let texts = strings(&arrays[0])?;
        let as_text = matches!(self.op, Op::GetText | Op::GetPathText);
        let kind = match self.name {
            "json_extract_path" => Kind::Json,
            _ => Kind::Jsonb,
        };
        (0..rows)
            .map(|row| {
                if texts.is_null(row) {
                    return Ok(None);
                }
                let steps: Vec<Step> = match self.op {
                    Op::Get | Op::GetText => {
                        let arg = &arrays[1];
                        if is_null(arg, row) {
                            return Ok(None);
                        }
                        if arg.data_type().is_integer() {
                            vec![Step::Index(int_at(arg, row)?)]
                        } else {
                            vec![Step::Key(text_at(arg, row)?)]
                        }
                    }
                    _ if self.variadic_path => {
                        let mut steps = Vec::new();
                        for arg in &arrays[1..] {
                            if is_null(arg, row) {
                                return Ok(None);
                            }
                            steps.push(Step::Key(text_at(arg, row)?));
                        }
                        steps
                    }
                    _ => match text_array(&arrays[1], row)? {
                        None => return Ok(None),
                        Some(items) => {
                            let mut steps = Vec::new();
                            for item in items {
                                match item {
                                    Some(key) => steps.push(Step::Key(key)),
                                    None => return Ok(None),
                                }
                            }
                            steps
                        }
                    },
                };
                let document = parse(texts.value(row))?;
                let mut at = &document;
                for step in &steps {
                    match step_into(at, step) {
                        Some(next) => at = next,
                        None => return Ok(None),
                    }
                }
                Ok(if as_text {
                    at.to_text()
                } else {
                    Some(render(at, kind))
                })
            })
            .collect()
    }

    fn exists(&self, arrays: &[ArrayRef], rows: usize) -> Result<BooleanArray> {
        let texts = strings(&arrays[0])?;
        (0..rows)
            .map(|row| {
                if texts.is_null(row) || is_null(&arrays[1], row) {
                    return Ok(None);
                }
                let document = parse(texts.value(row))?;
                Ok(Some(match self.op {
                    Op::Exists => document.has_key(&text_at(&arrays[1], row)?),
                    _ => {
                        let keys: Vec<String> = text_array(&arrays[1], row)?
                            .unwrap_or_default()
                            .into_iter()
                            .flatten()
                            .collect();
                        if self.op == Op::ExistsAny {
                            keys.iter().any(|k| document.has_key(k))
                        } else {
                            keys.iter().all(|k| document.has_key(k))
                        }
                    }
                }))
            })
            .collect()
    }
}

fn delete(documents: &ArrayRef, what: &ArrayRef, rows: usize) -> Result<StringArray> {
    let texts = strings(documents)?;
    (0..rows)
        .map(|row| {
            if texts.is_null(row) || is_null(what, row) {
                return Ok(None);
            }
            let document = parse(texts.value(row))?;
            let result = if what.data_type().is_integer() {
                document.without_index(int_at(what, row)?)
            } else {
                match what.data_type() {
                    DataType::List(_) => text_array(what, row)?
                        .unwrap_or_default()
                        .into_iter()
                        .flatten()
                        .fold(document, |d, key| d.without_key(&key)),
                    _ => document.without_key(&text_at(what, row)?),
                }
            };
            Ok(Some(result.to_string()))
        })
        .collect()
}

/// The JSON value of `array[row]` as `to_jsonb` makes it; `None` for SQL
/// NULL.
fn to_json(array: &ArrayRef, field: &Field, row: usize) -> Result<Option<Json>> {
    if is_null(array, row) {
        return Ok(None);
    }
    let scalar = ScalarValue::try_from_array(array, row)?;
    Ok(Some(match scalar {
        ScalarValue::Boolean(Some(b)) => Json::Bool(b),
        ScalarValue::Int8(Some(_))
        | ScalarValue::Int16(Some(_))
        | ScalarValue::Int32(Some(_))
        | ScalarValue::Int64(Some(_))
        | ScalarValue::UInt8(Some(_))
        | ScalarValue::UInt16(Some(_))
        | ScalarValue::UInt32(Some(_))
        | ScalarValue::UInt64(Some(_))
        | ScalarValue::Decimal128(Some(_), ..) => {
            Json::number(&scalar.to_string()).unwrap_or(Json::Null)
        }
        ScalarValue::Float32(Some(_)) | ScalarValue::Float64(Some(_)) => {
            let text = array_value_to_string(array, row)?;
            Json::number(&text).unwrap_or(Json::String(text))
        }
        ScalarValue::Utf8(Some(s))
        | ScalarValue::Utf8View(Some(s))
        | ScalarValue::LargeUtf8(Some(s)) => match Kind::of(field) {
            Some(_) => parse(&s)?,
            None => Json::String(s),
        },
        ScalarValue::List(list) => {
            let items = list.value(0);
            let item_field = Field::new("item", items.data_type().clone(), true);
            Json::Array(
                (0..items.len())
                    .map(|i| Ok(to_json(&items, &item_field, i)?.unwrap_or(Json::Null)))
                    .collect::<Result<_>>()?,
            )
        }
        // Dates and timestamps come out as arrow prints them, which is the
        // ISO form to_json gives (`2024-01-01T10:00:00`).
        _ => Json::String(array_value_to_string(array, row)?),
    }))
}

/// The json (not jsonb) text of `array[row]`: json values as written,
/// arrays without spaces as PostgreSQL's `to_json` gives them.
fn json_text(array: &ArrayRef, field: &Field, row: usize) -> Result<String> {
    if is_null(array, row) {
        return Ok("null".into());
    }
    if Kind::of(field).is_some() {
        return text_at(array, row);
    }
    if let DataType::List(_) = array.data_type()
        && let ScalarValue::List(list) = ScalarValue::try_from_array(array, row)?
    {
        let items = list.value(0);
        let item_field = Field::new("item", items.data_type().clone(), true);
        let parts: Vec<String> = (0..items.len())
            .map(|i| json_text(&items, &item_field, i))
            .collect::<Result<_>>()?;
        return Ok(format!("[{}]", parts.join(",")));
    }
    Ok(to_json(array, field, row)?
        .unwrap_or(Json::Null)
        .to_json_text())
}

fn build(
    arrays: &[ArrayRef],
    fields: &[FieldRef],
    rows: usize,
    kind: Kind,
    object: bool,
) -> Result<StringArray> {
    if object && !arrays.len().is_multiple_of(2) {
        return Err(DataFusionError::Plan(
            "argument list must have even number of elements".into(),
        ));
    }
    (0..rows)
        .map(|row| {
            if object {
                let mut entries = Vec::new();
                let mut parts = Vec::new();
                for pair in arrays.chunks(2).zip(fields.chunks(2)) {
                    let ([key, value], [_, value_field]) = pair else {
                        unreachable!("chunks of an even list are pairs");
                    };
                    if is_null(key, row) {
                        return Err(invalid("null value not allowed for object key"));
                    }
                    let key =
                        match to_json(key, &Field::new("k", key.data_type().clone(), true), row)? {
                            Some(Json::String(s)) => s,
                            Some(other) => other.to_string(),
                            None => String::new(),
                        };
                    match kind {
                        Kind::Jsonb => entries
                            .push((key, to_json(value, value_field, row)?.unwrap_or(Json::Null))),
                        Kind::Json => {
                            let mut part = String::new();
                            write_string(&key, &mut part);
                            part.push_str(" : ");
                            part.push_str(&json_text(value, value_field, row)?);
                            parts.push(part);
                        }
                    }
                }
                Ok(Some(match kind {
                    Kind::Jsonb => Json::object(entries).to_string(),
                    Kind::Json => format!("{{{}}}", parts.join(", ")),
                }))
            } else {
                Ok(Some(match kind {
                    Kind::Jsonb => Json::Array(
                        arrays
                            .iter()
                            .zip(fields)
                            .map(|(a, f)| Ok(to_json(a, f, row)?.unwrap_or(Json::Null)))
                            .collect::<Result<_>>()?,
                    )
                    .to_string(),
                    Kind::Json => {
                        let parts: Vec<String> = arrays
                            .iter()
                            .zip(fields)
                            .map(|(a, f)| json_text(a, f, row))
                            .collect::<Result<_>>()?;
                        format!("[{}]", parts.join(", "))
                    }
                }))
            }
        })
        .collect()
}

/// `json_agg`, `jsonb_agg`, `json_object_agg` and `jsonb_object_agg`.
///
/// The state is the list of rendered elements: for json each element's
/// json text (an object entry as `"key" : value`), for jsonb each one's
/// jsonb text (an object entry as the two-element array `[key, value]`),
/// and beside each its `ORDER BY` key in arrow's row format. DataFusion
/// hands the ORDER BY values in after the arguments; the elements are
/// sorted by them at the end, so the order holds however the rows arrive
/// (an MV's recompute feeds them unsorted). No rows give NULL, as in
/// PostgreSQL.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct JsonAgg {
    name: &'static str,
    kind: Kind,
    object: bool,
    signature: Signature,
}

impl JsonAgg {
    fn new(name: &'static str, kind: Kind, object: bool) -> Self {
        JsonAgg {
            name,
            kind,
            object,
            signature: Signature::any(if object { 2 } else { 1 }, Volatility::Immutable),
        }
    }
}

/// The JSON aggregates, registered by name.
pub fn aggregates() -> Vec<AggregateUDF> {
    vec![
        AggregateUDF::from(JsonAgg::new("json_agg", Kind::Json, false)),
        AggregateUDF::from(JsonAgg::new("jsonb_agg", Kind::Jsonb, false)),
        AggregateUDF::from(JsonAgg::new("json_object_agg", Kind::Json, true)),
        AggregateUDF::from(JsonAgg::new("jsonb_object_agg", Kind::Jsonb, true)),
    ]
}

impl AggregateUDFImpl for JsonAgg {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn return_field(&self, _arg_fields: &[FieldRef]) -> Result<FieldRef> {
        Ok(Arc::new(self.kind.field(self.name)))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![
            Arc::new(Field::new_list(
                format!("{}[elements]", args.name),
                Field::new_list_field(DataType::Utf8, true),
                true,
            )),
            Arc::new(Field::new_list(
                format!("{}[order]", args.name),
                Field::new_list_field(DataType::Binary, true),
                true,
            )),
        ])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let sort_fields = args
            .order_bys
            .iter()
            .map(|o| {
                Ok(SortField::new_with_options(
                    o.expr.data_type(args.schema)?,
                    o.options,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Box::new(JsonAggAccumulator {
            kind: self.kind,
            object: self.object,
            fields: args.expr_fields.to_vec(),
            order: RowConverter::new(sort_fields)?,
            elements: Vec::new(),
        }))
    }
}

#[derive(Debug)]
struct JsonAggAccumulator {
    kind: Kind,
    object: bool,
    fields: Vec<FieldRef>,
    /// Encodes the ORDER BY values (none: every key is empty).
    order: RowConverter,
    /// (ORDER BY key, rendered element), in arrival order.
    elements: Vec<(Vec<u8>, String)>,
}

impl JsonAggAccumulator {
    fn element(&self, values: &[ArrayRef], row: usize) -> Result<String> {
        let value = |i: usize| -> Result<String> {
            Ok(match self.kind {
                Kind::Jsonb => to_json(&values[i], &self.fields[i], row)?
                    .unwrap_or(Json::Null)
                    .to_string(),
                Kind::Json => json_text(&values[i], &self.fields[i], row)?,
            })
        };
        if !self.object {
            return value(0);
        }
        if is_null(&values[0], row) {
            return Err(invalid("field name must not be null"));
        }
        let key = text_at(&values[0], row)?;
        Ok(match self.kind {
            Kind::Jsonb => Json::Array(vec![Json::String(key), parse(&value(1)?)?]).to_string(),
            Kind::Json => {
                let mut entry = String::new();
                write_string(&key, &mut entry);
                entry.push_str(" : ");
                entry.push_str(&value(1)?);
                entry
            }
        })
    }
}

impl Accumulator for JsonAggAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let arguments = if self.object { 2 } else { 1 };
        // Without ORDER BY there are no key columns (and the converter
        // would give no rows): every key is empty.
        let keys = (values.len() > arguments)
            .then(|| self.order.convert_columns(&values[arguments..]))
            .transpose()?;
        for row in 0..values[0].len() {
            let element = self.element(values, row)?;
            let key = keys.as_ref().map(|k| k.row(row).as_ref().to_vec());
            self.elements.push((key.unwrap_or_default(), element));
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let lists = states[0].as_list::<i32>();
        let orders = states[1].as_list::<i32>();
        for (list, order) in lists.iter().zip(orders.iter()) {
            let (Some(list), Some(order)) = (list, order) else {
                continue;
            };
            let texts = strings(&list)?;
            let keys = order.as_binary::<i32>();
            for (text, key) in texts.iter().zip(keys.iter()) {
                self.elements.push((
                    key.unwrap_or_default().to_vec(),
                    text.unwrap_or_default().to_string(),
                ));
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let texts: ArrayRef = Arc::new(StringArray::from_iter_values(
            self.elements.iter().map(|(_, e)| e),
        ));
        let keys: ArrayRef = Arc::new(BinaryArray::from_iter_values(
            self.elements.iter().map(|(k, _)| k),
        ));
        let list = |values: ArrayRef| {
            ScalarValue::List(Arc::new(
                datafusion::common::utils::SingleRowListArrayBuilder::new(values)
                    .build_list_array(),
            ))
        };
        Ok(vec![list(texts), list(keys)])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        if self.elements.is_empty() {
            return Ok(ScalarValue::Utf8(None));
        }
        // Stable: rows with equal keys keep the order they came in.
        self.elements.sort_by(|a, b| a.0.cmp(&b.0));
        let elements: Vec<&String> = self.elements.iter().map(|(_, e)| e).collect();
        // PostgreSQL's json_agg puts a line break before each array or row
        // element after the first.
        let structured = !self.object
            && matches!(
                self.fields[0].data_type(),
                DataType::List(_)
                    | DataType::LargeList(_)
                    | DataType::FixedSizeList(..)
                    | DataType::Struct(_)
            );
        let separator = if structured { ", \n " } else { ", " };
        let joined = || {
            elements
                .iter()
                .map(|e| e.as_str())
                .collect::<Vec<_>>()
                .join(separator)
        };
        let text = match (self.kind, self.object) {
            (Kind::Json, false) => format!("[{}]", joined()),
            (Kind::Json, true) => format!("{{ {} }}", joined()),
            (Kind::Jsonb, false) => {
                Json::Array(elements.iter().map(|e| parse(e)).collect::<Result<_>>()?).to_string()
            }
            (Kind::Jsonb, true) => {
                let mut entries = Vec::with_capacity(elements.len());
                for element in &elements {
                    if let Json::Array(mut pair) = parse(element)?
                        && let (Some(value), Some(Json::String(key))) = (pair.pop(), pair.pop())
                    {
                        entries.push((key, value));
                    }
                }
                Json::object(entries).to_string()
            }
        };
        Ok(ScalarValue::Utf8(Some(text)))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self
                .elements
                .iter()
                .map(|(k, e)| k.capacity() + e.capacity())
                .sum::<usize>()
    }
}

/// Plans the JSON operators into the functions above when their left side
/// is a string (json and jsonb are strings); array operators with the same
/// spelling (`@>` on arrays) are left to DataFusion.
#[derive(Debug)]
pub struct JsonOperators;

fn is_jsonb(expr: &Expr, schema: &DFSchema) -> bool {
    expr.to_field(schema)
        .is_ok_and(|(_, field)| Kind::of(&field) == Some(Kind::Jsonb))
}

impl ExprPlanner for JsonOperators {
    fn plan_binary_op(
        &self,
        expr: RawBinaryExpr,
        schema: &DFSchema,
    ) -> Result<PlannerResult<RawBinaryExpr>> {
        let (Ok(left), Ok(right)) = (expr.left.get_type(schema), expr.right.get_type(schema))
        else {
            return Ok(PlannerResult::Original(expr));
        };
        let name = match expr.op {
            BinaryOperator::Arrow if is_string(&left) => "pg_json_get",
            BinaryOperator::LongArrow if is_string(&left) => "pg_json_get_text",
            BinaryOperator::HashArrow if is_string(&left) => "pg_json_get_path",
            BinaryOperator::HashLongArrow if is_string(&left) => "pg_json_get_path_text",
            BinaryOperator::AtArrow | BinaryOperator::ArrowAt
                if is_string(&left) && is_string(&right) =>
            {
                "pg_jsonb_contains"
            }
            BinaryOperator::Question if is_string(&left) => "pg_jsonb_exists",
            BinaryOperator::QuestionPipe if is_string(&left) => "pg_jsonb_exists_any",
            BinaryOperator::QuestionAnd if is_string(&left) => "pg_jsonb_exists_all",
            BinaryOperator::StringConcat
                if is_jsonb(&expr.left, schema) || is_jsonb(&expr.right, schema) =>
            {
                "pg_jsonb_concat"
            }
            BinaryOperator::Minus if is_jsonb(&expr.left, schema) => "pg_jsonb_delete",
            _ => return Ok(PlannerResult::Original(expr)),
        };
        let args = match expr.op {
            BinaryOperator::ArrowAt => vec![expr.right, expr.left],
            _ => vec![expr.left, expr.right],
        };
        Ok(PlannerResult::Planned(Expr::ScalarFunction(
            ScalarFunction::new_udf(Arc::new(named(name)), args),
        )))
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::new_null_array;

    use super::*;

    #[test]
    fn text_array_literals_parse_as_postgresql_does() {
        assert_eq!(
            parse_text_array(r#"{a, "b c" ,NULL,"NULL"}"#).unwrap(),
            vec![
                Some("a".into()),
                Some("b c".into()),
                None,
                Some("NULL".into())
            ]
        );
        assert!(parse_text_array("{}").unwrap().is_empty());
        assert!(parse_text_array("a,b").is_err());
    }

    #[test]
    fn json_agg_breaks_lines_between_arrays_as_postgresql_does() {
        use datafusion::arrow::array::ListArray;
        use datafusion::arrow::datatypes::Int64Type;
        let arrays: ArrayRef = Arc::new(ListArray::from_iter_primitive::<Int64Type, _, _>(vec![
            Some(vec![Some(1), Some(1)]),
            Some(vec![Some(2), None]),
        ]));
        let mut agg = JsonAggAccumulator {
            kind: Kind::Json,
            object: false,
            fields: vec![Arc::new(Field::new("a", arrays.data_type().clone(), true))],
            order: RowConverter::new(Vec::new()).unwrap(),
            elements: Vec::new(),
        };
        agg.update_batch(&[arrays]).unwrap();
        assert_eq!(
            agg.evaluate().unwrap(),
            ScalarValue::Utf8(Some("[[1,1], \n [2,null]]".into()))
        );
    }

    #[test]
    fn null_documents_give_null() {
        let out = map_json(&new_null_array(&DataType::Utf8, 2), |j| {
            Ok(Some(j.type_name().into()))
        })
        .unwrap();
        assert_eq!(out.null_count(), 2);
    }
}
