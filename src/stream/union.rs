//! UNION ALL: the sum of its inputs' deltas. Linear, no state. (UNION, the
//! set form, is a distinct aggregate over this.)

use datafusion::arrow::datatypes::SchemaRef;

use super::{Operator, StepContext, StreamError, ZBatch, output_schema};

pub struct Union {
    schema: SchemaRef,
}

impl Union {
    pub fn new(schema: SchemaRef) -> Self {
        Union {
            schema: output_schema(&schema),
        }
    }
}

impl Operator for Union {
    fn step(&mut self, inputs: Vec<ZBatch>, _ctx: &mut StepContext) -> Result<ZBatch, StreamError> {
        ZBatch::concat(&self.schema, &inputs)
    }

    fn describe(&self) -> String {
        "Union (stateless)".into()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::stream::zset::tests::{lines, zbatch};

    #[test]
    fn sums_its_inputs() {
        let a = zbatch(&[(1, Some(1), Some("a"))]);
        let b = zbatch(&[(1, Some(1), Some("a")), (-1, Some(2), None)]);
        let sources = HashMap::new();
        let mut ctx = StepContext::new(&sources);
        let out = Union::new(a.schema()).step(vec![a, b], &mut ctx).unwrap();
        assert_eq!(lines(&out), vec!["+2 1 a", "-1 2 NULL"]);
    }
}

#[cfg(test)]
mod planned {
    use crate::stream::testing::Harness;

    #[test]
    fn union_all_keeps_duplicates_through_deletes() {
        let mut h = Harness::new("SELECT k, s FROM t UNION ALL SELECT k, s FROM u");
        h.insert(
            "t",
            &[(Some(1), None, Some("a")), (Some(1), None, Some("a"))],
        );
        h.insert("u", &[(Some(1), None, Some("a"))]);
        h.check();
        h.delete("t", &[(Some(1), None, Some("a"))]);
        h.check();
    }
}
