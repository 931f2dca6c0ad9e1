//! Arrow → SQL: column types, the statements a PostgreSQL sink runs, and row values as
//! statement parameters.

use crate::batch;
use crate::convert;
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType as ArrowType, Float64Type, Int64Type, Int8Type, TimeUnit};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_postgres::types::ToSql;
use weir_model::io::PostgresWriteMode;
use weir_model::{DataType, Schema};

/// The SQL type a column is written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SqlType {
    /// `BOOLEAN`.
    Boolean,
    /// `BIGINT`.
    BigInt,
    /// `DOUBLE PRECISION`.
    Double,
    /// `TEXT`.
    Text,
    /// `TIMESTAMPTZ` (Weir timestamps are UTC milliseconds).
    TimestampTz,
    /// `JSONB` (lists and structs).
    Jsonb,
}

impl SqlType {
    /// The SQL type of a Weir column type.
    pub fn of(data_type: &DataType) -> SqlType {
        match data_type {
            DataType::Boolean => SqlType::Boolean,
            DataType::Int64 => SqlType::BigInt,
            DataType::Float64 => SqlType::Double,
            DataType::String => SqlType::Text,
            DataType::Timestamp => SqlType::TimestampTz,
            DataType::List(_) | DataType::Struct(_) => SqlType::Jsonb,
        }
    }

    /// The type in `CREATE TABLE`.
    pub fn ddl(self) -> &'static str {
        match self {
            SqlType::Boolean => "BOOLEAN",
            SqlType::BigInt => "BIGINT",
            SqlType::Double => "DOUBLE PRECISION",
            SqlType::Text => "TEXT",
            SqlType::TimestampTz => "TIMESTAMPTZ",
            SqlType::Jsonb => "JSONB",
        }
    }

    /// The placeholder for parameter `n`, cast so the parameter's type never depends on the
    /// table's column types (PostgreSQL then assigns it to the column).
    fn placeholder(self, n: usize) -> String {
        match self {
            SqlType::Boolean => format!("${n}::boolean"),
            SqlType::BigInt => format!("${n}::bigint"),
            SqlType::Double => format!("${n}::double precision"),
            SqlType::Text => format!("${n}::text"),
            SqlType::TimestampTz => format!("${n}::timestamptz"),
            SqlType::Jsonb => format!("${n}::text::jsonb"),
        }
    }
}

/// One output column.
#[derive(Debug, Clone)]
pub(crate) struct Column {
    pub name: String,
    pub sql: SqlType,
    pub nullable: bool,
}

/// `"name"`, with inner quotes doubled.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A table name `name` or `schema.name`, each part quoted.
pub(crate) fn quote_table(table: &str) -> String {
    table
        .split('.')
        .map(quote_ident)
        .collect::<Vec<_>>()
        .join(".")
}

/// The columns a sink writes for `schema`: user columns, then the window and pane columns.
pub(crate) fn columns(schema: &Schema, window: bool, pane: bool) -> Vec<Column> {
    let mut out: Vec<Column> = schema
        .fields
        .iter()
        .map(|f| Column {
            name: f.name.clone(),
            sql: SqlType::of(&f.data_type),
            nullable: f.nullable,
        })
        .collect();
    let col = |name: &str, sql, nullable| Column {
        name: name.into(),
        sql,
        nullable,
    };
    if window {
        out.push(col("window_start", SqlType::TimestampTz, true));
        out.push(col("window_end", SqlType::TimestampTz, true));
    }
    if pane {
        out.push(col("pane_timing", SqlType::Text, false));
        out.push(col("pane_index", SqlType::BigInt, false));
        out.push(col("pane_is_first", SqlType::Boolean, false));
        out.push(col("pane_is_last", SqlType::Boolean, false));
    }
    out
}

/// `CREATE TABLE IF NOT EXISTS` for the sink's table (primary key = the upsert key).
pub(crate) fn create_table(table: &str, columns: &[Column], mode: &PostgresWriteMode) -> String {
    let mut parts: Vec<String> = columns
        .iter()
        .map(|c| {
            let not_null = if c.nullable { "" } else { " NOT NULL" };
            format!("{} {}{not_null}", quote_ident(&c.name), c.sql.ddl())
        })
        .collect();
    if let PostgresWriteMode::Upsert { key } = mode {
        let key: Vec<String> = key.iter().map(|k| quote_ident(k)).collect();
        parts.push(format!("PRIMARY KEY ({})", key.join(", ")));
    }
    format!(
        "CREATE TABLE IF NOT EXISTS {} ({})",
        quote_table(table),
        parts.join(", ")
    )
}

/// The progress table: one row per (sink, batch or checkpoint) committed.
pub(crate) const CREATE_PROGRESS: &str = "CREATE TABLE IF NOT EXISTS weir_sink_progress (\
     sink_id TEXT NOT NULL, batch_id BIGINT NOT NULL, \
     committed_at TIMESTAMPTZ NOT NULL DEFAULT now(), PRIMARY KEY (sink_id, batch_id))";

/// Records a commit; affects no row when it was recorded before (a replay).
pub(crate) const RECORD_PROGRESS: &str = "INSERT INTO weir_sink_progress (sink_id, batch_id) \
     VALUES ($1::text, $2::bigint) ON CONFLICT (sink_id, batch_id) DO NOTHING";

/// Whether a commit was recorded.
pub(crate) const PROGRESS_RECORDED: &str =
    "SELECT 1 FROM weir_sink_progress WHERE sink_id = $1::text AND batch_id = $2::bigint";

/// A multi-row `INSERT` of `rows` rows (an upsert when the mode says so).
pub(crate) fn insert(
    table: &str,
    columns: &[Column],
    mode: &PostgresWriteMode,
    rows: usize,
) -> String {
    let names: Vec<String> = columns.iter().map(|c| quote_ident(&c.name)).collect();
    let mut sql = format!(
        "INSERT INTO {} ({}) VALUES ",
        quote_table(table),
        names.join(", ")
    );
    let mut n = 1;
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for (i, c) in columns.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&c.sql.placeholder(n));
            n += 1;
        }
        sql.push(')');
    }
    if let PostgresWriteMode::Upsert { key } = mode {
        let keys: Vec<String> = key.iter().map(|k| quote_ident(k)).collect();
        let updates: Vec<String> = columns
            .iter()
            .filter(|c| !key.contains(&c.name))
            .map(|c| format!("{0} = EXCLUDED.{0}", quote_ident(&c.name)))
            .collect();
        if updates.is_empty() {
            sql.push_str(&format!(" ON CONFLICT ({}) DO NOTHING", keys.join(", ")));
        } else {
            sql.push_str(&format!(
                " ON CONFLICT ({}) DO UPDATE SET {}",
                keys.join(", "),
                updates.join(", ")
            ));
        }
    }
    sql
}

/// One column's values, typed for the driver.
#[derive(Debug, Clone)]
pub(crate) enum Values {
    Bool(Vec<Option<bool>>),
    Int(Vec<Option<i64>>),
    Float(Vec<Option<f64>>),
    /// Text, and JSON text for JSONB columns.
    Text(Vec<Option<String>>),
    Time(Vec<Option<SystemTime>>),
}

impl Values {
    /// The value of `row` as a statement parameter.
    pub fn param(&self, row: usize) -> &(dyn ToSql + Sync) {
        match self {
            Values::Bool(v) => &v[row],
            Values::Int(v) => &v[row],
            Values::Float(v) => &v[row],
            Values::Text(v) => &v[row],
            Values::Time(v) => &v[row],
        }
    }

    fn len(&self) -> usize {
        match self {
            Values::Bool(v) => v.len(),
            Values::Int(v) => v.len(),
            Values::Float(v) => v.len(),
            Values::Text(v) => v.len(),
            Values::Time(v) => v.len(),
        }
    }
}

fn system_time(ms: i64) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms as u64)
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

fn from_array(array: &dyn Array, sql: SqlType) -> Values {
    let n = array.len();
    let valid = |r: usize| array.is_valid(r);
    match (sql, array.data_type()) {
        (SqlType::Boolean, ArrowType::Boolean) => {
            let a = array.as_boolean();
            Values::Bool((0..n).map(|r| valid(r).then(|| a.value(r))).collect())
        }
        (SqlType::BigInt, ArrowType::Int64) => {
            let a = array.as_primitive::<Int64Type>();
            Values::Int((0..n).map(|r| valid(r).then(|| a.value(r))).collect())
        }
        (SqlType::Double, ArrowType::Float64) => {
            let a = array.as_primitive::<Float64Type>();
            Values::Float((0..n).map(|r| valid(r).then(|| a.value(r))).collect())
        }
        (SqlType::Text, ArrowType::Utf8) => {
            let a = array.as_string::<i32>();
            Values::Text(
                (0..n)
                    .map(|r| valid(r).then(|| a.value(r).to_string()))
                    .collect(),
            )
        }
        (SqlType::TimestampTz, ArrowType::Timestamp(TimeUnit::Millisecond, _)) => {
            let a = array.as_primitive::<arrow::datatypes::TimestampMillisecondType>();
            Values::Time(
                (0..n)
                    .map(|r| valid(r).then(|| system_time(a.value(r))))
                    .collect(),
            )
        }
        _ => Values::Text(
            (0..n)
                .map(|r| valid(r).then(|| convert::value_at(array, r).to_string()))
                .collect(),
        ),
    }
}

/// The values of every output column of `input` (user columns + metadata).
pub(crate) fn values(input: &RecordBatch, window: bool, pane: bool) -> Vec<Values> {
    let width = batch::user_width(input);
    let mut out: Vec<Values> = (0..width)
        .map(|c| {
            let array = input.column(c);
            let sql = match array.data_type() {
                ArrowType::Boolean => SqlType::Boolean,
                ArrowType::Int64 => SqlType::BigInt,
                ArrowType::Float64 => SqlType::Double,
                ArrowType::Utf8 => SqlType::Text,
                ArrowType::Timestamp(_, _) => SqlType::TimestampTz,
                _ => SqlType::Jsonb,
            };
            from_array(array.as_ref(), sql)
        })
        .collect();
    let rows = input.num_rows();
    if window {
        let (_, start, end) = batch::ts_and_window(input);
        let global = |r: usize| batch::is_global(start.value(r), end.value(r));
        out.push(Values::Time(
            (0..rows)
                .map(|r| (!global(r)).then(|| system_time(start.value(r))))
                .collect(),
        ));
        out.push(Values::Time(
            (0..rows)
                .map(|r| (!global(r)).then(|| system_time(end.value(r))))
                .collect(),
        ));
    }
    if pane {
        let meta = |i: usize| input.column(width + i);
        let timing = meta(3).as_primitive::<Int8Type>();
        out.push(Values::Text(
            (0..rows)
                .map(|r| {
                    Some(
                        batch::timing_from_code(timing.value(r))
                            .as_str()
                            .to_string(),
                    )
                })
                .collect(),
        ));
        let index = meta(4).as_primitive::<Int64Type>();
        out.push(Values::Int(
            (0..rows).map(|r| Some(index.value(r))).collect(),
        ));
        for i in [5, 6] {
            let b = meta(i).as_boolean();
            out.push(Values::Bool((0..rows).map(|r| Some(b.value(r))).collect()));
        }
    }
    debug_assert!(out.iter().all(|v| v.len() == rows));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_model::Field;

    #[test]
    fn an_upsert_updates_every_non_key_column_and_quotes_names() {
        let schema = Schema::new(vec![
            Field::new("user", DataType::String),
            Field::new("total \"eur\"", DataType::Float64),
        ]);
        let cols = columns(&schema, true, false);
        let mode = PostgresWriteMode::Upsert {
            key: vec!["user".into(), "window_start".into()],
        };
        assert_eq!(
            insert("public.totals", &cols, &mode, 2),
            "INSERT INTO \"public\".\"totals\" (\"user\", \"total \"\"eur\"\"\", \"window_start\", \"window_end\") \
             VALUES ($1::text, $2::double precision, $3::timestamptz, $4::timestamptz), \
             ($5::text, $6::double precision, $7::timestamptz, $8::timestamptz) \
             ON CONFLICT (\"user\", \"window_start\") DO UPDATE SET \
             \"total \"\"eur\"\"\" = EXCLUDED.\"total \"\"eur\"\"\", \"window_end\" = EXCLUDED.\"window_end\""
        );
        assert_eq!(
            create_table("totals", &cols, &mode),
            "CREATE TABLE IF NOT EXISTS \"totals\" (\"user\" TEXT, \"total \"\"eur\"\"\" DOUBLE PRECISION, \
             \"window_start\" TIMESTAMPTZ, \"window_end\" TIMESTAMPTZ, PRIMARY KEY (\"user\", \"window_start\"))"
        );
    }

    #[test]
    fn lists_and_structs_become_jsonb() {
        assert_eq!(
            SqlType::of(&DataType::List(Box::new(DataType::Int64))),
            SqlType::Jsonb
        );
        assert_eq!(SqlType::Jsonb.placeholder(3), "$3::text::jsonb");
    }
}
