//! `nextval('schema.sequence')`: the next numbers of a SERIAL column's
//! sequence (`catalog::sequence`), one per row, as the DEFAULT of such a
//! column. Volatile: every row gets its own number.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, Int64Array};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use crate::catalog::Sequences;

pub struct NextVal {
    sequences: Arc<Sequences>,
    signature: Signature,
}

impl NextVal {
    pub fn new(sequences: Arc<Sequences>) -> Self {
        NextVal {
            sequences,
            signature: Signature::exact(vec![DataType::Utf8], Volatility::Volatile),
        }
    }

    fn numbers(&self, name: &str, count: usize) -> Result<Vec<i64>> {
        self.sequences
            .next(name, count)
            .map_err(|e| DataFusionError::External(Box::new(e)))
    }
}

impl std::fmt::Debug for NextVal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NextVal")
    }
}

/// One function per database: equal when they share its sequences.
impl PartialEq for NextVal {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.sequences, &other.sequences)
    }
}

impl Eq for NextVal {}

impl Hash for NextVal {
    fn hash<H: Hasher>(&self, state: &mut H) {
        Arc::as_ptr(&self.sequences).hash(state);
    }
}

impl ScalarUDFImpl for NextVal {
    fn name(&self) -> &str {
        "nextval"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let numbers: Int64Array = match &args.args[0] {
            ColumnarValue::Scalar(ScalarValue::Utf8(Some(name))) => {
                self.numbers(name, rows)?.into_iter().map(Some).collect()
            }
            ColumnarValue::Scalar(_) => Int64Array::from(vec![None; rows]),
            ColumnarValue::Array(names) => {
                let names = names.as_string::<i32>();
                let mut out = Vec::with_capacity(names.len());
                for i in 0..names.len() {
                    out.push(if names.is_null(i) {
                        None
                    } else {
                        Some(self.numbers(names.value(i), 1)?[0])
                    });
                }
                Int64Array::from(out)
            }
        };
        Ok(ColumnarValue::Array(Arc::new(numbers)))
    }
}
