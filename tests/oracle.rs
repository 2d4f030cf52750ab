//! The correctness oracle for incremental materialized views.
//!
//! A materialized view must always hold exactly what its defining query
//! answers over the current tables. This file checks that with a property
//! test: proptest draws a schema (two or three small tables, with or without
//! primary keys), a few MVs from a fixed list of query templates (some created
//! before any data, some after, so both the empty start and the backfill are
//! exercised), and a sequence of INSERT, UPDATE and DELETE statements over
//! tiny value domains (so duplicates, NULL keys, deleting the current min or
//! max and a group's last row happen often), some inside `BEGIN ... COMMIT`
//! and some inside `BEGIN ... ROLLBACK`, with `FLUSH` at random points and at
//! the end. After every `FLUSH` (and right after every `CREATE MATERIALIZED
//! VIEW`) each MV's `SELECT * FROM mv` is compared, as a multiset of text
//! rows with the same column names, with the batch answer: the MV's defining
//! query run as a plain SELECT on the same server. An MV over another MV is
//! compared with its query with the inner MV's query inlined, so it does not
//! depend on the inner MV being right.
//!
//! Every value compares as text (simple query protocol). Only deterministic
//! queries are used: ORDER BY ... LIMIT and row_number() order by every
//! column, so ties are only between identical rows; no random(), no now(), no
//! division.
//!
//! On a mismatch the failure shows the MV, its batch query, the rows only in
//! one of the two answers, both answers, and every statement run so far (a
//! script to paste into psql); proptest then shrinks the case to a minimal
//! one. Failing seeds are saved in `tests/oracle.proptest-regressions` and
//! replayed first on later runs (commit that file to keep them). A seed only
//! reproduces the same case while the generators here are unchanged, so a
//! bug worth keeping is best also written down as a fixed test at the end of
//! this file.
//!
//! `cargo test --test oracle` runs 24 random cases; run more with
//!
//! ```sh
//! FRESHET_ORACLE_CASES=10000 cargo test --release --test oracle
//! ```
//!
//! A debug build works too (`cargo test --test oracle` with the variable
//! set), only slower. proptest's own variables apply as well:
//! `PROPTEST_MAX_SHRINK_ITERS` (default here 2000) and
//! `PROPTEST_MAX_SHRINK_TIME` (milliseconds, default here 300000) bound the
//! shrinking, `PROPTEST_DISABLE_FAILURE_PERSISTENCE=1` stops saving seeds.

mod common;

use std::fmt::{self, Write as _};
use std::time::Duration;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::strategy::Union;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestError, TestRunner};
use tokio_postgres::{Client, SimpleQueryMessage};

use common::TestServer;

/// Random cases per `cargo test` run unless `FRESHET_ORACLE_CASES` says.
const DEFAULT_CASES: u32 = 24;

/// A statement that takes longer than this fails the case (a FLUSH that
/// never returns, say) instead of hanging the test.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// Schemas and values
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Table {
    T1,
    T2,
    T3,
}

/// What a column holds, and so which values are drawn for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// bigint, 1..=6 (unique and increasing when the table has a primary key)
    Id,
    /// int, 0..4: a join and grouping key
    Key,
    /// int, -3..=3
    Int,
    /// text, one of [`STRINGS`]
    Text,
}

/// The text domain: the empty string is there to be told apart from NULL.
const STRINGS: [&str; 5] = ["x", "y", "z", "", "xy"];

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::T1 => "t1",
            Table::T2 => "t2",
            Table::T3 => "t3",
        }
    }

    fn columns(self) -> &'static [(&'static str, Kind)] {
        match self {
            Table::T1 => &[
                ("id", Kind::Id),
                ("k", Kind::Key),
                ("a", Kind::Int),
                ("s", Kind::Text),
            ],
            Table::T2 => &[("id", Kind::Id), ("k", Kind::Key), ("b", Kind::Int)],
            Table::T3 => &[("k", Kind::Key), ("c", Kind::Text)],
        }
    }

    fn column(self, index: usize) -> &'static str {
        self.columns()[index].0
    }

    fn slot(self) -> usize {
        match self {
            Table::T1 => 0,
            Table::T2 => 1,
            Table::T3 => 2,
        }
    }
}

/// Which of the fixed tables exist and which have a primary key on `id`.
/// Without one, identical rows are allowed.
#[derive(Clone, Copy, Debug)]
struct Schema {
    t1_pk: bool,
    t2_pk: bool,
    with_t3: bool,
}

impl Schema {
    fn tables(self) -> Vec<Table> {
        let mut tables = vec![Table::T1, Table::T2];
        if self.with_t3 {
            tables.push(Table::T3);
        }
        tables
    }

    fn has_pk(self, table: Table) -> bool {
        match table {
            Table::T1 => self.t1_pk,
            Table::T2 => self.t2_pk,
            Table::T3 => false,
        }
    }

    fn ddl(self, table: Table) -> String {
        let columns: Vec<String> = table
            .columns()
            .iter()
            .map(|&(name, kind)| {
                let ty = match kind {
                    Kind::Id => "bigint",
                    Kind::Key | Kind::Int => "int",
                    Kind::Text => "text",
                };
                if kind == Kind::Id && self.has_pk(table) {
                    format!("{name} {ty} PRIMARY KEY")
                } else {
                    format!("{name} {ty}")
                }
            })
            .collect();
        format!("CREATE TABLE {} ({})", table.name(), columns.join(", "))
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Value {
    Null,
    Int(i64),
    Text(&'static str),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("NULL"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Text(s) => write!(f, "'{}'", s.replace('\'', "''")),
        }
    }
}

// ---------------------------------------------------------------------------
// MV query templates
// ---------------------------------------------------------------------------

/// One MV, or for an MV over an MV, the inner one (`base`) and the outer one
/// (`query`, which names the inner one as `{base}`; it becomes
/// `mvN_base AS base` in the MV and `(<base query>) AS base` in the batch
/// query).
struct Template {
    label: &'static str,
    needs_t3: bool,
    /// The query groups by t1's primary key (and selects t1's other
    /// columns, as PostgreSQL allows).
    needs_t1_pk: bool,
    base: Option<&'static str>,
    query: &'static str,
}

const fn on_t1_t2(label: &'static str, query: &'static str) -> Template {
    Template {
        label,
        needs_t3: false,
        needs_t1_pk: false,
        base: None,
        query,
    }
}

const fn on_t3(label: &'static str, query: &'static str) -> Template {
    Template {
        label,
        needs_t3: true,
        needs_t1_pk: false,
        base: None,
        query,
    }
}

const fn on_t1_pk(label: &'static str, query: &'static str) -> Template {
    Template {
        label,
        needs_t3: false,
        needs_t1_pk: true,
        base: None,
        query,
    }
}

const fn on_mv(label: &'static str, base: &'static str, query: &'static str) -> Template {
    Template {
        label,
        needs_t3: false,
        needs_t1_pk: false,
        base: Some(base),
        query,
    }
}

/// Every output column has a distinct name. ORDER BY ... LIMIT and
/// row_number() order by every column of the rows they rank (or by a group
/// key), so the answer is the same multiset however ties are broken.
const TEMPLATES: &[Template] = &[
    // Filter and project with expressions.
    on_t1_t2(
        "filter_project_case_coalesce",
        "SELECT id, k, a * 2 + 1 AS a2, \
         CASE WHEN a > 0 THEN 'pos' WHEN a < 0 THEN 'neg' ELSE 'zero' END AS sign, \
         COALESCE(s, '?') || '!' AS s2, s IS NULL AS s_null \
         FROM t1 WHERE k BETWEEN 1 AND 2 OR a IN (-1, 0, 3)",
    ),
    on_t1_t2(
        "filter_project_arithmetic",
        "SELECT id, b - k AS diff, COALESCE(b, k, -100) AS first_set, abs(b) AS abs_b, \
         b % 2 AS b_mod \
         FROM t2 WHERE b IS NOT NULL AND k NOT IN (0, 3)",
    ),
    on_t3(
        "filter_project_text",
        "SELECT k, c, length(c) AS len, upper(COALESCE(c, 'none')) AS uc, k % 2 = 0 AS even \
         FROM t3 WHERE c <> 'y' OR k IS NULL",
    ),
    // Aggregates.
    on_t1_t2(
        "group_by_nullable_key",
        "SELECT k, count(*) AS n, count(a) AS na, sum(a) AS sa, min(a) AS mina, \
         max(a) AS maxa, min(s) AS mins, max(s) AS maxs FROM t1 GROUP BY k",
    ),
    on_t1_t2(
        "aggregate_without_group_by",
        "SELECT count(*) AS n, count(a) AS na, sum(a) AS sa, min(a) AS mina, max(a) AS maxa, \
         avg(a) AS avga, bool_or(a > 0) AS any_pos FROM t1",
    ),
    on_t1_t2(
        "group_by_expressions",
        "SELECT k % 2 AS parity, a IS NULL AS a_null, count(*) AS n, avg(a) AS avga, \
         bool_or(s = 'x') AS has_x FROM t1 GROUP BY k % 2, a IS NULL",
    ),
    on_t1_t2(
        "group_by_case_and_key",
        "SELECT CASE WHEN b < 0 THEN 'neg' WHEN b > 0 THEN 'pos' END AS sign, k, \
         count(*) AS n, sum(id) AS sid, max(b) AS maxb FROM t2 \
         GROUP BY CASE WHEN b < 0 THEN 'neg' WHEN b > 0 THEN 'pos' END, k",
    ),
    on_t1_t2(
        "count_distinct_and_filter",
        "SELECT s, count(DISTINCT k) AS dk, count(DISTINCT a) AS da, \
         count(*) FILTER (WHERE a > 0) AS npos, sum(a) FILTER (WHERE k = 1) AS s1, \
         max(id) FILTER (WHERE a IS NULL) AS maxid_a_null FROM t1 GROUP BY s",
    ),
    on_t1_t2(
        "string_agg_bool_and_sum_distinct",
        "SELECT k, string_agg(s, ',' ORDER BY s) AS ss, bool_and(a >= 0) AS all_nonneg, \
         sum(DISTINCT a) AS sda FROM t1 GROUP BY k",
    ),
    on_t1_t2(
        "having",
        "SELECT k, sum(b) AS sb, count(*) AS n, min(b) AS minb FROM t2 GROUP BY k \
         HAVING count(*) >= 2 AND (sum(b) IS NULL OR sum(b) <> 0)",
    ),
    on_t3(
        "group_by_text_expression",
        "SELECT COALESCE(c, 'null') AS cc, count(*) AS n, count(k) AS nk, max(k) AS maxk, \
         bool_or(k IS NULL) AS any_null_k, count(DISTINCT k) AS dk FROM t3 \
         GROUP BY COALESCE(c, 'null')",
    ),
    // Joins.
    on_t1_t2(
        "inner_join",
        "SELECT t1.id AS id1, t2.id AS id2, t1.k, t1.a, t2.b, t1.a + t2.b AS ab \
         FROM t1 JOIN t2 ON t1.k = t2.k",
    ),
    on_t1_t2(
        "left_join_two_keys",
        "SELECT t1.id AS id1, t1.k AS k1, t1.a AS a1, t2.id AS id2, t2.b AS b2 \
         FROM t1 LEFT JOIN t2 ON t1.k = t2.k AND t1.a = t2.b",
    ),
    on_t1_t2(
        "left_join_with_residual",
        "SELECT t1.id AS id1, t1.a, t2.id AS id2, t2.b \
         FROM t1 LEFT JOIN t2 ON t1.k = t2.k AND t2.b > t1.a",
    ),
    on_t1_t2(
        "right_join",
        "SELECT t1.id AS id1, t1.s AS s1, t2.id AS id2, t2.k AS k2 \
         FROM t1 RIGHT JOIN t2 ON t1.id = t2.id",
    ),
    on_t1_t2(
        "full_join_two_keys",
        "SELECT t1.id AS id1, t1.k AS k1, t2.id AS id2, t2.k AS k2, t2.b AS b2 \
         FROM t1 FULL JOIN t2 ON t1.k = t2.k AND t1.id = t2.id",
    ),
    on_t3(
        "full_join_t3",
        "SELECT t2.id AS id2, t2.k AS k2, t3.k AS k3, t3.c \
         FROM t2 FULL OUTER JOIN t3 ON t2.k = t3.k",
    ),
    on_t1_t2(
        "self_join",
        "SELECT x.id AS xid, y.id AS yid, x.k, x.a AS xa, y.a AS ya \
         FROM t1 AS x JOIN t1 AS y ON x.k = y.k AND x.a < y.a",
    ),
    on_t1_t2(
        "self_left_join",
        "SELECT x.id AS xid, x.b AS xb, y.id AS yid \
         FROM t2 AS x LEFT JOIN t2 AS y ON x.k = y.k AND x.id <> y.id",
    ),
    on_t1_t2(
        "join_then_aggregate",
        "SELECT t1.k, count(*) AS n, count(t2.id) AS n2, sum(t2.b) AS sb, \
         min(t1.a) AS mina, max(t2.b) AS maxb \
         FROM t1 LEFT JOIN t2 ON t1.k = t2.k GROUP BY t1.k",
    ),
    on_t1_pk(
        "group_by_primary_key",
        "SELECT t1.id, t1.k, t1.s, count(t2.id) AS n2, sum(t2.b) AS sb \
         FROM t1 LEFT JOIN t2 ON t1.k = t2.k GROUP BY t1.id",
    ),
    on_t3(
        "three_way_join",
        "SELECT t1.id AS id1, t2.id AS id2, t3.c, t1.a, t2.b \
         FROM t1 JOIN t2 ON t1.k = t2.k LEFT JOIN t3 ON t2.k = t3.k \
         WHERE t1.a IS DISTINCT FROM t2.b",
    ),
    // Subqueries.
    on_t1_t2(
        "exists",
        "SELECT id, k, a FROM t1 \
         WHERE EXISTS (SELECT 1 FROM t2 WHERE t2.k = t1.k AND t2.b > 0)",
    ),
    on_t1_t2(
        "not_exists",
        "SELECT id, k, b FROM t2 \
         WHERE NOT EXISTS (SELECT 1 FROM t1 WHERE t1.k = t2.k AND t1.a >= t2.b)",
    ),
    on_t1_t2(
        "in_subquery",
        "SELECT id, s, a FROM t1 WHERE a IN (SELECT b FROM t2 WHERE k <> 0)",
    ),
    on_t3(
        "in_subquery_t3",
        "SELECT id, k, b FROM t2 WHERE k IN (SELECT k FROM t3 WHERE c IS NOT NULL)",
    ),
    // DISTINCT.
    on_t1_t2("distinct", "SELECT DISTINCT k, s FROM t1"),
    on_t1_t2(
        "distinct_expressions",
        "SELECT DISTINCT k, b IS NULL AS b_null, b > 0 AS b_pos FROM t2",
    ),
    // Set operations.
    on_t1_t2(
        "union_all",
        "SELECT k, a AS v, 't1' AS src FROM t1 UNION ALL SELECT k, b AS v, 't2' AS src FROM t2",
    ),
    on_t1_t2(
        "union",
        "SELECT k, a AS v FROM t1 UNION SELECT k, b AS v FROM t2",
    ),
    on_t3(
        "union_t3",
        "SELECT k, s AS v FROM t1 UNION SELECT k, c AS v FROM t3",
    ),
    on_t1_t2(
        "intersect",
        "SELECT k, a AS v FROM t1 INTERSECT SELECT k, b AS v FROM t2",
    ),
    on_t1_t2(
        "except",
        "SELECT k, a AS v FROM t1 EXCEPT SELECT k, b AS v FROM t2",
    ),
    on_t3("except_t3", "SELECT k FROM t3 EXCEPT SELECT k FROM t2"),
    // Top-N and row_number(), with total orders.
    on_t1_t2(
        "order_by_limit",
        "SELECT id, k, a, s FROM t1 \
         ORDER BY a DESC NULLS LAST, id NULLS LAST, k NULLS LAST, s NULLS LAST LIMIT 3",
    ),
    on_t1_t2(
        "aggregate_order_by_limit",
        "SELECT k, count(*) AS n, sum(b) AS sb FROM t2 GROUP BY k \
         ORDER BY n DESC, k NULLS FIRST LIMIT 2",
    ),
    on_t1_t2(
        "row_number_top_2",
        "SELECT id, k, a, s, rn FROM (SELECT id, k, a, s, row_number() OVER \
         (PARTITION BY k ORDER BY a NULLS LAST, id NULLS LAST, s NULLS LAST) AS rn FROM t1) AS w \
         WHERE rn <= 2",
    ),
    on_t1_t2(
        "row_number_top_2_desc",
        "SELECT * FROM (SELECT id, k, b, row_number() OVER \
         (PARTITION BY k ORDER BY b DESC NULLS FIRST, id NULLS LAST) AS rn FROM t2) AS w \
         WHERE rn <= 2",
    ),
    // MVs over MVs.
    on_mv(
        "mv_on_mv_aggregate",
        "SELECT id, k, a, s FROM t1 WHERE a IS NOT NULL OR s IS NOT NULL",
        "SELECT base.k, count(*) AS n, sum(base.a) AS sa, max(base.s) AS maxs \
         FROM {base} GROUP BY base.k",
    ),
    on_mv(
        "mv_on_mv_join",
        "SELECT k, sum(b) AS sb, count(*) AS n FROM t2 GROUP BY k",
        "SELECT t1.id, t1.k, t1.a, base.sb, base.n FROM t1 JOIN {base} ON t1.k = base.k \
         WHERE base.n > 1 OR t1.a > 0",
    ),
    // A CTE and a subquery in FROM.
    on_t1_t2(
        "cte",
        "WITH pos AS (SELECT id, k, a FROM t1 WHERE a >= 0), \
         sums AS (SELECT k, sum(b) AS sb, count(*) AS n FROM t2 GROUP BY k) \
         SELECT pos.id, pos.k, pos.a, sums.sb, sums.n FROM pos LEFT JOIN sums ON pos.k = sums.k",
    ),
    on_t1_t2(
        "subquery_in_from",
        "SELECT sub.k, sub.n * 10 AS n10, sub.mx \
         FROM (SELECT k, count(*) AS n, max(b) AS mx FROM t2 GROUP BY k) AS sub \
         WHERE sub.n > 1",
    ),
];

impl Template {
    /// The MVs this template makes, in creation order, named after `n`.
    fn mvs(&self, n: usize) -> Vec<MvDef> {
        let name = format!("mv{n}");
        match self.base {
            None => vec![MvDef::new(&name, self.query, self.query)],
            Some(base) => {
                let base_name = format!("{name}_base");
                let over_mv = self
                    .query
                    .replace("{base}", &format!("{base_name} AS base"));
                let inlined = self.query.replace("{base}", &format!("({base}) AS base"));
                vec![
                    MvDef::new(&base_name, base, base),
                    MvDef::new(&name, &over_mv, &inlined),
                ]
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Generated statements
// ---------------------------------------------------------------------------

/// A WHERE clause; columns are indexes into the table's columns.
#[derive(Clone, Debug)]
enum Pred {
    All,
    IsNull(usize),
    NotNull(usize),
    Eq(usize, Value),
    Lt(usize, Value),
    Ge(usize, Value),
    In(usize, Vec<Value>),
    /// `col = (SELECT min(col) FROM table)`, or max: the current extreme.
    Extreme {
        col: usize,
        max: bool,
    },
    /// `k IN (SELECT k FROM other)`
    InOther {
        col: usize,
        other: Table,
    },
    Or(Box<Pred>, Box<Pred>),
}

impl Pred {
    fn sql(&self, table: Table) -> String {
        match self {
            Pred::All => "TRUE".to_string(),
            Pred::IsNull(c) => format!("{} IS NULL", table.column(*c)),
            Pred::NotNull(c) => format!("{} IS NOT NULL", table.column(*c)),
            Pred::Eq(c, v) => format!("{} = {v}", table.column(*c)),
            Pred::Lt(c, v) => format!("{} < {v}", table.column(*c)),
            Pred::Ge(c, v) => format!("{} >= {v}", table.column(*c)),
            Pred::In(c, values) => {
                let values: Vec<String> = values.iter().map(Value::to_string).collect();
                format!("{} IN ({})", table.column(*c), values.join(", "))
            }
            Pred::Extreme { col, max } => {
                let column = table.column(*col);
                let function = if *max { "max" } else { "min" };
                format!(
                    "{column} = (SELECT {function}({column}) FROM {})",
                    table.name()
                )
            }
            Pred::InOther { col, other } => {
                format!("{} IN (SELECT k FROM {})", table.column(*col), other.name())
            }
            Pred::Or(left, right) => format!("({} OR {})", left.sql(table), right.sql(table)),
        }
    }

    fn where_clause(&self, table: Table) -> String {
        match self {
            Pred::All => String::new(),
            pred => format!(" WHERE {}", pred.sql(table)),
        }
    }
}

/// One `col = expr` of an UPDATE; all keep values small.
#[derive(Clone, Debug)]
enum Assign {
    Value(usize, Value),
    Increment(usize),
    Negate(usize),
    /// `CASE WHEN c >= 3 THEN -3 ELSE c + 1 END`
    Wrap(usize),
    /// `(c + 1) % 4`
    NextKey(usize),
    Copy {
        to: usize,
        from: usize,
    },
    /// `CASE WHEN c = 'x' THEN 'y' WHEN c = 'y' THEN NULL ELSE 'x' END`
    Flip(usize),
    Append(usize),
}

impl Assign {
    fn target(&self) -> usize {
        match self {
            Assign::Value(c, _)
            | Assign::Increment(c)
            | Assign::Negate(c)
            | Assign::Wrap(c)
            | Assign::NextKey(c)
            | Assign::Flip(c)
            | Assign::Append(c) => *c,
            Assign::Copy { to, .. } => *to,
        }
    }

    fn sql(&self, table: Table) -> String {
        let c = table.column(self.target());
        match self {
            Assign::Value(_, v) => format!("{c} = {v}"),
            Assign::Increment(_) => format!("{c} = {c} + 1"),
            Assign::Negate(_) => format!("{c} = -{c}"),
            Assign::Wrap(_) => format!("{c} = CASE WHEN {c} >= 3 THEN -3 ELSE {c} + 1 END"),
            Assign::NextKey(_) => format!("{c} = ({c} + 1) % 4"),
            Assign::Copy { from, .. } => format!("{c} = {}", table.column(*from)),
            Assign::Flip(_) => {
                format!("{c} = CASE WHEN {c} = 'x' THEN 'y' WHEN {c} = 'y' THEN NULL ELSE 'x' END")
            }
            Assign::Append(_) => format!("{c} = {c} || 'z'"),
        }
    }
}

#[derive(Clone, Debug)]
enum Dml {
    /// Rows in column order. A table with a primary key gets fresh ids
    /// instead of the drawn ones.
    Insert {
        table: Table,
        rows: Vec<Vec<Value>>,
    },
    Update {
        table: Table,
        set: Vec<Assign>,
        pred: Pred,
    },
    Delete {
        table: Table,
        pred: Pred,
    },
}

#[derive(Clone, Debug)]
enum Op {
    Dml(Dml),
    Txn {
        body: Vec<Dml>,
        commit: bool,
    },
    Flush,
    /// Create the MVs of `TEMPLATES[i]` (over whatever data exists by then).
    CreateMv(usize),
    /// Drop one existing template's MVs and create them again.
    Recreate(Index),
}

/// One generated test case.
#[derive(Clone)]
struct Case {
    schema: Schema,
    /// Templates whose MVs are created before any data.
    early: Vec<usize>,
    ops: Vec<Op>,
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let labels: Vec<&str> = self.early.iter().map(|&t| TEMPLATES[t].label).collect();
        writeln!(f, "{:?}, first MVs {labels:?}, as SQL:", self.schema)?;
        write!(f, "{}", self.render())
    }
}

// ---------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------

fn non_null(kind: Kind) -> BoxedStrategy<Value> {
    match kind {
        Kind::Id => (1i64..=6).prop_map(Value::Int).boxed(),
        Kind::Key => (0i64..4).prop_map(Value::Int).boxed(),
        Kind::Int => (-3i64..=3).prop_map(Value::Int).boxed(),
        Kind::Text => select(&STRINGS[..]).prop_map(Value::Text).boxed(),
    }
}

fn value(kind: Kind) -> BoxedStrategy<Value> {
    let null_weight = if kind == Kind::Id { 1 } else { 2 };
    prop_oneof![8 => non_null(kind), null_weight => Just(Value::Null)].boxed()
}

fn pred(schema: Schema, table: Table) -> BoxedStrategy<Pred> {
    let mut leaves: Vec<BoxedStrategy<Pred>> = Vec::new();
    for (col, &(_, kind)) in table.columns().iter().enumerate() {
        leaves.push(Just(Pred::IsNull(col)).boxed());
        leaves.push(Just(Pred::NotNull(col)).boxed());
        leaves.push(non_null(kind).prop_map(move |v| Pred::Eq(col, v)).boxed());
        leaves.push(non_null(kind).prop_map(move |v| Pred::Lt(col, v)).boxed());
        leaves.push(non_null(kind).prop_map(move |v| Pred::Ge(col, v)).boxed());
        leaves.push(
            vec(non_null(kind), 1..=3)
                .prop_map(move |vs| Pred::In(col, vs))
                .boxed(),
        );
        leaves.push(
            any::<bool>()
                .prop_map(move |max| Pred::Extreme { col, max })
                .boxed(),
        );
        if kind == Kind::Key {
            for other in schema.tables() {
                if other != table {
                    leaves.push(Just(Pred::InOther { col, other }).boxed());
                }
            }
        }
    }
    let leaf = Union::new(leaves).boxed();
    prop_oneof![
        6 => leaf.clone(),
        2 => (leaf.clone(), leaf).prop_map(|(l, r)| Pred::Or(Box::new(l), Box::new(r))),
        1 => Just(Pred::All),
    ]
    .boxed()
}

fn assign(schema: Schema, table: Table) -> BoxedStrategy<Assign> {
    let columns = table.columns();
    let first_of = |wanted: Kind| columns.iter().position(|&(_, kind)| kind == wanted);
    let mut options: Vec<BoxedStrategy<Assign>> = Vec::new();
    for (col, &(_, kind)) in columns.iter().enumerate() {
        if kind == Kind::Id && schema.has_pk(table) {
            continue; // ids stay unique
        }
        options.push(value(kind).prop_map(move |v| Assign::Value(col, v)).boxed());
        match kind {
            Kind::Id => options.push(Just(Assign::Increment(col)).boxed()),
            Kind::Key => {
                options.push(Just(Assign::NextKey(col)).boxed());
                if let Some(from) = first_of(Kind::Int) {
                    options.push(Just(Assign::Copy { to: col, from }).boxed());
                }
            }
            Kind::Int => {
                options.push(Just(Assign::Increment(col)).boxed());
                options.push(Just(Assign::Negate(col)).boxed());
                options.push(Just(Assign::Wrap(col)).boxed());
                if let Some(from) = first_of(Kind::Key) {
                    options.push(Just(Assign::Copy { to: col, from }).boxed());
                }
            }
            Kind::Text => {
                options.push(Just(Assign::Flip(col)).boxed());
                options.push(Just(Assign::Append(col)).boxed());
            }
        }
    }
    Union::new(options).boxed()
}

fn table_dml(schema: Schema, table: Table) -> BoxedStrategy<Dml> {
    let row: Vec<BoxedStrategy<Value>> = table
        .columns()
        .iter()
        .map(|&(_, kind)| value(kind))
        .collect();
    let insert = (vec(row, 1..=5), prop::bool::weighted(0.3)).prop_map(move |(mut rows, dup)| {
        if dup {
            rows.push(rows[0].clone());
        }
        Dml::Insert { table, rows }
    });
    let update = (vec(assign(schema, table), 1..=2), pred(schema, table))
        .prop_map(move |(set, pred)| Dml::Update { table, set, pred });
    let delete = pred(schema, table).prop_map(move |pred| Dml::Delete { table, pred });
    prop_oneof![5 => insert, 2 => update, 2 => delete].boxed()
}

fn dml(schema: Schema) -> BoxedStrategy<Dml> {
    Union::new(
        schema
            .tables()
            .into_iter()
            .map(|table| table_dml(schema, table)),
    )
    .boxed()
}

fn op(schema: Schema) -> BoxedStrategy<Op> {
    let dml = dml(schema);
    prop_oneof![
        10 => dml.clone().prop_map(Op::Dml),
        2 => (vec(dml, 1..=3), any::<bool>())
            .prop_map(|(body, commit)| Op::Txn { body, commit }),
        2 => Just(Op::Flush),
        1 => any::<Index>().prop_map(Op::Recreate),
    ]
    .boxed()
}

fn template(schema: Schema) -> BoxedStrategy<usize> {
    let usable: Vec<usize> = (0..TEMPLATES.len())
        .filter(|&t| schema.with_t3 || !TEMPLATES[t].needs_t3)
        .filter(|&t| schema.t1_pk || !TEMPLATES[t].needs_t1_pk)
        .collect();
    select(usable).boxed()
}

fn case() -> impl Strategy<Value = Case> {
    (any::<bool>(), any::<bool>(), prop::bool::weighted(0.7))
        .prop_map(|(t1_pk, t2_pk, with_t3)| Schema {
            t1_pk,
            t2_pk,
            with_t3,
        })
        .prop_flat_map(|schema| {
            (
                Just(schema),
                vec(template(schema), 1..=4),
                vec(op(schema), 0..=20),
                vec((template(schema), any::<Index>()), 0..=2),
            )
        })
        .prop_map(|(schema, early, mut ops, late)| {
            for (template, at) in late {
                let at = at.index(ops.len() + 1);
                ops.insert(at, Op::CreateMv(template));
            }
            Case { schema, early, ops }
        })
}

// ---------------------------------------------------------------------------
// Scripts: what a case runs
// ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct MvDef {
    name: String,
    create: String,
    /// The batch query the MV must equal.
    reference: String,
}

impl MvDef {
    fn new(name: &str, query: &str, reference: &str) -> MvDef {
        MvDef {
            name: name.to_string(),
            create: format!("CREATE MATERIALIZED VIEW {name} AS {query}"),
            reference: reference.to_string(),
        }
    }
}

#[derive(Clone, Debug)]
enum Step {
    /// Any statement; it must succeed.
    Exec(String),
    /// Create the MV, then compare it with its batch query.
    Create(MvDef),
    Drop(String),
    /// FLUSH, then compare every MV with its batch query.
    Flush,
    /// The query must answer exactly these rows (any order), each written as
    /// its values joined by `|`, NULL as `NULL`. Only in hand-written cases.
    Expect {
        query: String,
        rows: Vec<String>,
    },
}

struct Script {
    steps: Vec<Step>,
}

impl fmt::Display for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for step in &self.steps {
            match step {
                Step::Exec(sql) => writeln!(f, "{sql};")?,
                Step::Create(mv) => writeln!(f, "{};", mv.create)?,
                Step::Drop(name) => writeln!(f, "DROP MATERIALIZED VIEW {name};")?,
                Step::Flush => writeln!(f, "FLUSH;")?,
                Step::Expect { query, rows } => writeln!(f, "-- expect {query} = {rows:?}")?,
            }
        }
        Ok(())
    }
}

/// Turns a case into statements: fresh ids for primary keys, names for MVs.
struct Renderer {
    schema: Schema,
    next_id: [i64; 3],
    /// The MVs of each template created so far, in creation order.
    groups: Vec<Vec<MvDef>>,
    steps: Vec<Step>,
}

impl Renderer {
    fn create(&mut self, template: usize) {
        let mvs = TEMPLATES[template].mvs(self.groups.len());
        self.steps.extend(mvs.iter().cloned().map(Step::Create));
        self.groups.push(mvs);
    }

    fn recreate(&mut self, which: &Index) {
        if self.groups.is_empty() {
            return;
        }
        let group = self.groups[which.index(self.groups.len())].clone();
        for mv in group.iter().rev() {
            self.steps.push(Step::Drop(mv.name.clone()));
        }
        self.steps.extend(group.into_iter().map(Step::Create));
    }

    fn dml(&mut self, dml: &Dml) -> String {
        match dml {
            Dml::Insert { table, rows } => {
                let columns: Vec<&str> = table.columns().iter().map(|&(name, _)| name).collect();
                let fresh_ids = self.schema.has_pk(*table);
                let mut tuples = Vec::new();
                for row in rows {
                    let mut values = Vec::new();
                    for (value, &(_, kind)) in row.iter().zip(table.columns()) {
                        if kind == Kind::Id && fresh_ids {
                            let id = &mut self.next_id[table.slot()];
                            values.push(id.to_string());
                            *id += 1;
                        } else {
                            values.push(value.to_string());
                        }
                    }
                    tuples.push(format!("({})", values.join(", ")));
                }
                format!(
                    "INSERT INTO {} ({}) VALUES {}",
                    table.name(),
                    columns.join(", "),
                    tuples.join(", ")
                )
            }
            Dml::Update { table, set, pred } => {
                let mut targets = Vec::new();
                let mut assignments = Vec::new();
                for assign in set {
                    if !targets.contains(&assign.target()) {
                        targets.push(assign.target());
                        assignments.push(assign.sql(*table));
                    }
                }
                format!(
                    "UPDATE {} SET {}{}",
                    table.name(),
                    assignments.join(", "),
                    pred.where_clause(*table)
                )
            }
            Dml::Delete { table, pred } => {
                format!("DELETE FROM {}{}", table.name(), pred.where_clause(*table))
            }
        }
    }
}

impl Case {
    fn render(&self) -> Script {
        let mut r = Renderer {
            schema: self.schema,
            next_id: [1; 3],
            groups: Vec::new(),
            steps: Vec::new(),
        };
        for table in self.schema.tables() {
            r.steps.push(Step::Exec(self.schema.ddl(table)));
        }
        for &template in &self.early {
            r.create(template);
        }
        for op in &self.ops {
            match op {
                Op::Dml(dml) => {
                    let sql = r.dml(dml);
                    r.steps.push(Step::Exec(sql));
                }
                Op::Txn { body, commit } => {
                    r.steps.push(Step::Exec("BEGIN".to_string()));
                    for dml in body {
                        let sql = r.dml(dml);
                        r.steps.push(Step::Exec(sql));
                    }
                    let end = if *commit { "COMMIT" } else { "ROLLBACK" };
                    r.steps.push(Step::Exec(end.to_string()));
                }
                Op::Flush => r.steps.push(Step::Flush),
                Op::CreateMv(template) => r.create(*template),
                Op::Recreate(which) => r.recreate(which),
            }
        }
        r.steps.push(Step::Flush);
        for group in r.groups.iter().rev() {
            for mv in group.iter().rev() {
                r.steps.push(Step::Drop(mv.name.clone()));
            }
        }
        Script { steps: r.steps }
    }
}

// ---------------------------------------------------------------------------
// Running a script against a server
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Create the MVs and compare them with their batch queries.
    Oracle,
    /// Create no MV and skip FLUSH; only run the batch queries and the
    /// writes, to check that the generated SQL itself is valid.
    BatchOnly,
}

type Row = Vec<Option<String>>;

/// A text-format answer.
struct Answer {
    columns: Vec<String>,
    rows: Vec<Row>,
}

fn describe_error(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => {
            let mut text = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
            if let Some(detail) = db.detail() {
                let _ = write!(text, " (DETAIL: {detail})");
            }
            text
        }
        None => format!("{error:?}"),
    }
}

async fn simple(client: &Client, sql: &str) -> Result<Vec<SimpleQueryMessage>, String> {
    match tokio::time::timeout(STATEMENT_TIMEOUT, client.simple_query(sql)).await {
        Err(_) => Err(format!(
            "no answer within {} s",
            STATEMENT_TIMEOUT.as_secs()
        )),
        Ok(Err(error)) => Err(describe_error(&error)),
        Ok(Ok(messages)) => Ok(messages),
    }
}

fn show_row(row: &[Option<String>]) -> String {
    let values: Vec<String> = row
        .iter()
        .map(|value| match value {
            None => "NULL".to_string(),
            Some(text) => format!("'{}'", text.replace('\'', "''")),
        })
        .collect();
    format!("({})", values.join(", "))
}

fn pipe_row(row: &[Option<String>]) -> String {
    let values: Vec<&str> = row.iter().map(|v| v.as_deref().unwrap_or("NULL")).collect();
    values.join("|")
}

/// At most this many rows of one set are printed in a report.
const MAX_SHOWN_ROWS: usize = 60;

fn show_rows(out: &mut String, title: &str, rows: &[&Row]) {
    let plural = if rows.len() == 1 { "" } else { "s" };
    let _ = writeln!(out, "  {title} ({} row{plural}):", rows.len());
    for row in rows.iter().take(MAX_SHOWN_ROWS) {
        let _ = writeln!(out, "    {}", show_row(row));
    }
    if rows.len() > MAX_SHOWN_ROWS {
        let _ = writeln!(out, "    ... {} more", rows.len() - MAX_SHOWN_ROWS);
    }
}

/// Rows of sorted `a` not matched in sorted `b`, and the other way round.
fn multiset_difference<'a>(a: &'a [Row], b: &'a [Row]) -> (Vec<&'a Row>, Vec<&'a Row>) {
    let (mut only_a, mut only_b) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if j == b.len() || (i < a.len() && a[i] < b[j]) {
            only_a.push(&a[i]);
            i += 1;
        } else if i == a.len() || b[j] < a[i] {
            only_b.push(&b[j]);
            j += 1;
        } else {
            i += 1;
            j += 1;
        }
    }
    (only_a, only_b)
}

struct Run<'a> {
    client: &'a Client,
    mode: Mode,
    /// Every statement run so far (reads for comparisons left out).
    history: Vec<String>,
    live: Vec<MvDef>,
}

impl Run<'_> {
    /// `headline`, then the statements so far.
    fn report(&self, headline: &str) -> String {
        let mut out = headline.trim_end().to_string();
        out.push_str("\n\nstatements run so far (a psql script reproducing this):\n");
        for line in &self.history {
            let _ = writeln!(out, "  {line}");
        }
        out
    }

    async fn execute(&mut self, sql: &str) -> Result<(), String> {
        match simple(self.client, sql).await {
            Ok(messages) => {
                let mut line = format!("{sql};");
                let is_write = ["INSERT", "UPDATE", "DELETE"]
                    .iter()
                    .any(|verb| sql.starts_with(verb));
                if is_write {
                    for message in &messages {
                        if let SimpleQueryMessage::CommandComplete(n) = message {
                            let plural = if *n == 1 { "" } else { "s" };
                            let _ = write!(line, "  -- {n} row{plural}");
                        }
                    }
                }
                self.history.push(line);
                Ok(())
            }
            Err(error) => {
                self.history.push(format!("{sql};  -- fails"));
                Err(self.report(&format!("statement failed: {sql}\n  error: {error}")))
            }
        }
    }

    async fn query(&self, sql: &str, what: &str) -> Result<Answer, String> {
        let messages = simple(self.client, sql)
            .await
            .map_err(|error| self.report(&format!("{what} failed: {sql}\n  error: {error}")))?;
        let mut answer = Answer {
            columns: Vec::new(),
            rows: Vec::new(),
        };
        for message in messages {
            match message {
                SimpleQueryMessage::RowDescription(columns) => {
                    answer.columns = columns.iter().map(|c| c.name().to_string()).collect();
                }
                SimpleQueryMessage::Row(row) => {
                    if answer.columns.is_empty() {
                        answer.columns =
                            row.columns().iter().map(|c| c.name().to_string()).collect();
                    }
                    answer.rows.push(
                        (0..row.len())
                            .map(|i| row.get(i).map(str::to_string))
                            .collect(),
                    );
                }
                _ => {}
            }
        }
        answer.rows.sort();
        Ok(answer)
    }

    /// Compares one MV with its batch query.
    async fn check(&self, mv: &MvDef, when: &str) -> Result<(), String> {
        let want = self
            .query(&mv.reference, &format!("the batch query of {}", mv.name))
            .await?;
        if self.mode == Mode::BatchOnly {
            return Ok(());
        }
        let got = self
            .query(&format!("SELECT * FROM {}", mv.name), "reading the MV")
            .await?;
        if got.columns == want.columns && got.rows == want.rows {
            return Ok(());
        }
        let mut out = format!(
            "materialized view {} differs from its batch answer {when}\n  MV:    {}\n  batch: {}\n",
            mv.name, mv.create, mv.reference
        );
        if got.columns != want.columns {
            let _ = writeln!(
                out,
                "  columns: MV ({}), batch ({})",
                got.columns.join(", "),
                want.columns.join(", ")
            );
        }
        let (only_mv, only_batch) = multiset_difference(&got.rows, &want.rows);
        show_rows(&mut out, "only in the MV", &only_mv);
        show_rows(&mut out, "only in the batch answer", &only_batch);
        show_rows(&mut out, "the MV", &got.rows.iter().collect::<Vec<_>>());
        show_rows(
            &mut out,
            "the batch answer",
            &want.rows.iter().collect::<Vec<_>>(),
        );
        Err(self.report(&out))
    }

    async fn step(&mut self, step: &Step) -> Result<(), String> {
        match step {
            Step::Exec(sql) => self.execute(sql).await,
            Step::Create(mv) => {
                if self.mode == Mode::Oracle {
                    self.execute(&mv.create).await?;
                }
                self.live.push(mv.clone());
                // CREATE returns once the MV is backfilled and readable.
                self.check(mv, "right after CREATE").await
            }
            Step::Drop(name) => {
                if self.mode == Mode::Oracle {
                    self.execute(&format!("DROP MATERIALIZED VIEW {name}"))
                        .await?;
                }
                self.live.retain(|mv| &mv.name != name);
                Ok(())
            }
            Step::Flush => {
                if self.mode == Mode::Oracle {
                    self.execute("FLUSH").await?;
                }
                for mv in &self.live {
                    self.check(mv, "after FLUSH").await?;
                }
                Ok(())
            }
            Step::Expect { query, rows } => {
                if self.mode == Mode::BatchOnly {
                    return Ok(());
                }
                let answer = self.query(query, "an expected answer's query").await?;
                let mut got: Vec<String> = answer.rows.iter().map(|r| pipe_row(r)).collect();
                let mut want = rows.clone();
                got.sort();
                want.sort();
                if got == want {
                    return Ok(());
                }
                Err(self.report(&format!("{query}\n  answers {got:?}\n  expected {want:?}")))
            }
        }
    }
}

/// Runs a script on a fresh in-memory server; `Err` is the report.
async fn run_script(script: &Script, mode: Mode) -> Result<(), String> {
    let server = TestServer::start().await;
    let client = server.connect().await;
    let mut run = Run {
        client: &client,
        mode,
        history: Vec::new(),
        live: Vec::new(),
    };
    for step in &script.steps {
        run.step(step).await?;
    }
    Ok(())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Runs `config.cases` random cases; panics with the report of the shrunk
/// failure.
fn run_cases(config: Config, mode: Mode) {
    let runtime = runtime();
    let mut runner = TestRunner::new(config);
    let result = runner.run(&case(), |case| {
        runtime
            .block_on(run_script(&case.render(), mode))
            .map_err(TestCaseError::fail)
    });
    match result {
        Ok(()) => {}
        Err(TestError::Fail(reason, case)) => {
            panic!("{reason}\n\nthe minimal failing case, {case:?}")
        }
        Err(TestError::Abort(reason)) => panic!("proptest gave up: {reason}"),
    }
}

// ---------------------------------------------------------------------------
// The property test
// ---------------------------------------------------------------------------

#[test]
fn materialized_views_match_batch_answers() {
    let cases = match std::env::var("FRESHET_ORACLE_CASES") {
        Ok(n) => n
            .parse()
            .unwrap_or_else(|_| panic!("FRESHET_ORACLE_CASES={n:?} is not a number of cases")),
        Err(_) => DEFAULT_CASES,
    };
    let mut config = Config {
        cases,
        source_file: Some(file!()),
        ..Config::default()
    };
    // tests/oracle.proptest-regressions: failures found are replayed first.
    // (The default would look for a lib.rs above tests/, warn and fall back
    // to this.)
    if std::env::var_os("PROPTEST_DISABLE_FAILURE_PERSISTENCE").is_none() {
        config.failure_persistence = Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        )));
    }
    // Each shrinking step reruns a whole case; bound the search unless told.
    if std::env::var_os("PROPTEST_MAX_SHRINK_ITERS").is_none() {
        config.max_shrink_iters = 2000;
    }
    if std::env::var_os("PROPTEST_MAX_SHRINK_TIME").is_none() {
        config.max_shrink_time = 300_000;
    }
    run_cases(config, Mode::Oracle);
}

/// The oracle's own generators: every statement they write runs, and every
/// MV query runs as a batch query (no MV needed). Failures here are bugs in
/// this file, or batch SQL the server lost.
#[test]
fn generated_statements_run_as_batch_sql() {
    let config = Config {
        cases: 12,
        failure_persistence: None,
        ..Config::default()
    };
    run_cases(config, Mode::BatchOnly);
}

#[test]
fn every_template_runs_as_a_batch_query() {
    // Without keys, t1 holds a duplicate row; templates grouping by t1's
    // key run on the second schema.
    for (t1_pk, t1_rows) in [
        (
            false,
            "(1, 1, -3, 'x'), (1, 1, -3, 'x'), (2, NULL, 0, ''), (3, 2, NULL, NULL), (4, 3, 3, 'xy')",
        ),
        (
            true,
            "(1, 1, -3, 'x'), (2, NULL, 0, ''), (3, 2, NULL, NULL), (4, 3, 3, 'xy')",
        ),
    ] {
        let schema = Schema {
            t1_pk,
            t2_pk: false,
            with_t3: true,
        };
        let mut steps: Vec<Step> = schema
            .tables()
            .into_iter()
            .map(|t| Step::Exec(schema.ddl(t)))
            .collect();
        for sql in [
            format!("INSERT INTO t1 VALUES {t1_rows}"),
            "INSERT INTO t2 VALUES (1, 1, -3), (2, NULL, 0), (2, NULL, 0), (5, 2, NULL), (NULL, 0, 1)".into(),
            "INSERT INTO t3 VALUES (1, 'x'), (NULL, NULL), (2, 'y'), (2, 'y')".into(),
        ] {
            steps.push(Step::Exec(sql));
        }
        for (n, template) in TEMPLATES.iter().enumerate() {
            if template.needs_t1_pk == t1_pk {
                steps.extend(template.mvs(n).into_iter().map(Step::Create));
            }
        }
        let script = Script { steps };
        runtime()
            .block_on(run_script(&script, Mode::BatchOnly))
            .unwrap_or_else(|report| panic!("{report}"));
    }
}

// ---------------------------------------------------------------------------
// Fixed regression cases
// ---------------------------------------------------------------------------

fn sql(statement: &str) -> Step {
    Step::Exec(statement.to_string())
}

fn mv(name: &str, query: &str) -> Step {
    Step::Create(MvDef::new(name, query, query))
}

fn expect(query: &str, rows: &[&str]) -> Step {
    Step::Expect {
        query: query.to_string(),
        rows: rows.iter().map(|r| r.to_string()).collect(),
    }
}

/// Runs hand-written steps in oracle mode, with a FLUSH and comparison at
/// the end.
async fn check(mut steps: Vec<Step>) {
    steps.push(Step::Flush);
    run_script(&Script { steps }, Mode::Oracle)
        .await
        .unwrap_or_else(|report| panic!("{report}"));
}

const T1: &str = "CREATE TABLE t1 (id bigint, k int, a int, s text)";
const T1_PK: &str = "CREATE TABLE t1 (id bigint PRIMARY KEY, k int, a int, s text)";
const T2: &str = "CREATE TABLE t2 (id bigint, k int, b int)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_current_min_and_max() {
    check(vec![
        sql(T1),
        mv(
            "extremes",
            "SELECT k, min(a) AS mina, max(a) AS maxa, min(s) AS mins, max(s) AS maxs, \
             count(*) AS n FROM t1 GROUP BY k",
        ),
        sql("INSERT INTO t1 VALUES (1, 1, -3, 'x'), (2, 1, 0, 'y'), (3, 1, 3, 'z'), (4, 1, -3, 'x'), (5, 2, 1, NULL)"),
        Step::Flush,
        sql("DELETE FROM t1 WHERE a = (SELECT min(a) FROM t1)"),
        Step::Flush,
        expect("SELECT * FROM extremes", &["1|0|3|y|z|2", "2|1|1|NULL|NULL|1"]),
        sql("DELETE FROM t1 WHERE s = (SELECT max(s) FROM t1)"),
        Step::Flush,
        sql("UPDATE t1 SET a = NULL, s = NULL WHERE k = 1"),
        Step::Flush,
        expect("SELECT * FROM extremes", &["1|NULL|NULL|NULL|NULL|1", "2|1|1|NULL|NULL|1"]),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_groups_last_row_leaves() {
    check(vec![
        sql(T1_PK),
        mv(
            "per_k",
            "SELECT k, count(*) AS n, sum(a) AS sa, avg(a) AS avga FROM t1 GROUP BY k",
        ),
        mv(
            "total",
            "SELECT count(*) AS n, sum(a) AS sa, bool_or(a > 0) AS any_pos FROM t1",
        ),
        mv(
            "busy",
            "SELECT k, count(*) AS n FROM t1 GROUP BY k HAVING count(*) >= 2",
        ),
        sql("INSERT INTO t1 VALUES (1, 1, 2, 'x'), (2, 1, -1, 'y'), (3, NULL, 1, 'z'), (4, 2, NULL, NULL)"),
        Step::Flush,
        sql("DELETE FROM t1 WHERE id = 1"),
        Step::Flush,
        sql("DELETE FROM t1 WHERE k = 1"),
        Step::Flush,
        sql("UPDATE t1 SET k = 2 WHERE k IS NULL"),
        Step::Flush,
        expect("SELECT k, n FROM busy", &["2|2"]),
        sql("DELETE FROM t1"),
        Step::Flush,
        expect("SELECT * FROM total", &["0|NULL|NULL"]),
        expect("SELECT * FROM per_k", &[]),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outer_join_match_disappears() {
    check(vec![
        sql(T1),
        sql(T2),
        mv(
            "lj",
            "SELECT t1.id AS id1, t1.k AS k1, t2.id AS id2, t2.b FROM t1 LEFT JOIN t2 ON t1.k = t2.k",
        ),
        mv(
            "fj",
            "SELECT t1.id AS id1, t1.k AS k1, t2.id AS id2, t2.k AS k2 FROM t1 FULL JOIN t2 ON t1.k = t2.k",
        ),
        mv(
            "unmatched",
            "SELECT id, k FROM t2 WHERE NOT EXISTS (SELECT 1 FROM t1 WHERE t1.k = t2.k)",
        ),
        sql("INSERT INTO t1 VALUES (1, 1, 0, 'x'), (2, NULL, 0, 'y')"),
        sql("INSERT INTO t2 VALUES (10, 1, 5), (11, 1, 6), (12, NULL, 7)"),
        Step::Flush,
        sql("DELETE FROM t2 WHERE id = 10"),
        Step::Flush,
        sql("DELETE FROM t2 WHERE k = 1"),
        Step::Flush,
        expect("SELECT * FROM lj", &["1|1|NULL|NULL", "2|NULL|NULL|NULL"]),
        sql("UPDATE t1 SET k = 3 WHERE id = 1"),
        sql("INSERT INTO t2 VALUES (13, 3, 1)"),
        Step::Flush,
        sql("UPDATE t2 SET k = 2 WHERE id = 13"),
        Step::Flush,
        sql("DELETE FROM t1 WHERE k = 3"),
        Step::Flush,
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_leaves_no_trace_and_commit_lands_whole() {
    check(vec![
        sql(T1_PK),
        mv(
            "sums",
            "SELECT k, count(*) AS n, sum(a) AS sa FROM t1 GROUP BY k",
        ),
        mv("kept", "SELECT id, k, a, s FROM t1 WHERE a IS NOT NULL"),
        sql("INSERT INTO t1 VALUES (1, 1, 1, 'x'), (2, 2, 2, 'y')"),
        Step::Flush,
        sql("BEGIN"),
        sql("INSERT INTO t1 VALUES (3, 1, 3, 'z')"),
        sql("UPDATE t1 SET a = a * 10 WHERE k = 1"),
        sql("DELETE FROM t1 WHERE id = 2"),
        sql("ROLLBACK"),
        Step::Flush,
        expect("SELECT * FROM sums", &["1|1|1", "2|1|2"]),
        sql("BEGIN"),
        sql("DELETE FROM t1 WHERE id = 1"),
        sql("INSERT INTO t1 VALUES (1, 3, -1, NULL)"),
        sql("UPDATE t1 SET k = NULL WHERE id = 2"),
        sql("COMMIT"),
        Step::Flush,
        expect("SELECT * FROM sums", &["3|1|-1", "NULL|1|2"]),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_rows_without_a_primary_key() {
    check(vec![
        sql(T2),
        mv("d", "SELECT DISTINCT k, b FROM t2"),
        mv("c", "SELECT k, b, count(*) AS n FROM t2 GROUP BY k, b"),
        mv("e", "SELECT k FROM t2 EXCEPT SELECT b FROM t2"),
        mv("all_rows", "SELECT id, k, b FROM t2 WHERE k IS NULL OR k < 3"),
        sql("INSERT INTO t2 VALUES (1, 1, 1), (1, 1, 1), (2, 1, 1), (NULL, NULL, NULL), (NULL, NULL, NULL)"),
        Step::Flush,
        sql("DELETE FROM t2 WHERE id = 1"),
        Step::Flush,
        expect("SELECT * FROM c", &["1|1|1", "NULL|NULL|2"]),
        sql("UPDATE t2 SET b = 2 WHERE id IS NULL"),
        Step::Flush,
        sql("DELETE FROM t2 WHERE id = 2"),
        Step::Flush,
        sql("INSERT INTO t2 VALUES (3, 2, 2), (3, 2, 2)"),
        Step::Flush,
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_over_existing_data_and_over_views() {
    check(vec![
        sql(T1),
        sql(T2),
        sql("INSERT INTO t1 VALUES (1, 1, 1, 'x'), (2, 2, -1, 'y'), (3, 2, NULL, NULL), (3, 2, NULL, NULL)"),
        sql("INSERT INTO t2 VALUES (1, 1, 3), (2, 2, -2), (3, 2, 1), (4, NULL, 0)"),
        mv(
            "j",
            "SELECT t1.id AS id1, t2.id AS id2, t1.a, t2.b FROM t1 JOIN t2 ON t1.k = t2.k",
        ),
        mv(
            "base",
            "SELECT k, sum(b) AS sb, count(*) AS n FROM t2 GROUP BY k",
        ),
        mv(
            "over_base",
            "SELECT t1.id, t1.k, base.sb FROM t1 JOIN base ON t1.k = base.k WHERE base.n > 1",
        ),
        sql("UPDATE t2 SET k = 1 WHERE k = 2"),
        Step::Flush,
        expect("SELECT * FROM base", &["1|2|3", "NULL|0|1"]),
        Step::Drop("over_base".to_string()),
        Step::Drop("j".to_string()),
        mv(
            "j",
            "SELECT t1.id AS id1, t2.id AS id2, t1.a, t2.b FROM t1 JOIN t2 ON t1.k = t2.k",
        ),
        sql("DELETE FROM t2 WHERE b < 0"),
        Step::Flush,
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_n_and_row_number_refill_when_a_top_row_leaves() {
    check(vec![
        sql(T1_PK),
        mv(
            "top3",
            "SELECT id, k, a, s FROM t1 ORDER BY a DESC NULLS LAST, id LIMIT 3",
        ),
        mv(
            "first2",
            "SELECT id, k, a, rn FROM (SELECT id, k, a, row_number() OVER \
             (PARTITION BY k ORDER BY a NULLS LAST, id) AS rn FROM t1) AS w WHERE rn <= 2",
        ),
        sql("INSERT INTO t1 VALUES (1, 1, 3, 'x'), (2, 1, 2, 'y'), (3, 1, 1, 'z'), (4, 2, 3, NULL), (5, 2, NULL, 'x'), (6, NULL, 0, 'y')"),
        Step::Flush,
        expect("SELECT * FROM top3", &["1|1|3|x", "4|2|3|NULL", "2|1|2|y"]),
        sql("DELETE FROM t1 WHERE id = 1"),
        Step::Flush,
        expect("SELECT * FROM first2", &["3|1|1|1", "2|1|2|2", "4|2|3|1", "5|2|NULL|2", "6|NULL|0|1"]),
        sql("UPDATE t1 SET a = -3 WHERE id = 4"),
        Step::Flush,
        sql("INSERT INTO t1 VALUES (7, 1, 3, 'z')"),
        Step::Flush,
    ])
    .await;
}
