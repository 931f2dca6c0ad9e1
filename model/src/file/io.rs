//! Sources and sinks: `Create`, `ReadFrom*` (files, Parquet, memory, Nexmark),
//! `GenerateSequence`, `WriteTo*` (files, Parquet, PostgreSQL, memory, meter), `LogForTesting`,
//! and the `schema:` mappings they take.

use super::fields::{index_path, join_path, string, Ctx, Section};
use super::transforms::{Built, TransformDef};
use super::windowing::output_tag;
use super::yaml::{Key, Node, Value};
use crate::error::Result;
use crate::io::{
    BadRecordPolicy, DeliveryGuarantee, FileFormat, JetStreamSourceSpec, NexmarkTable,
    PostgresSinkSpec, PostgresWriteMode, SinkMetadata, SinkSpec, SourceSpec, StreamSetup,
    NATS_DEFAULT_URL, POSTGRES_DEFAULT_BATCH_SIZE,
};
use crate::schema::{DataType, Field, Schema};
use crate::transform::Transform;
use serde_json::Value as Json;

/// Reads a `schema:` mapping: column name → type name (`int64`, `string`, `list<float>`,
/// ...), or a nested mapping for a struct column.
pub(crate) fn schema(ctx: Ctx, node: &Node, field: &str) -> Result<Schema> {
    let entries = node
        .as_map()
        .ok_or_else(|| ctx.wrong_kind(node, field, "a mapping of column name to type"))?;
    if entries.is_empty() {
        return Err(ctx.error(node.pos, field, "a schema needs at least one column"));
    }
    Ok(Schema::new(
        entries
            .iter()
            .map(|(k, v)| {
                Ok(Field::new(
                    &k.text,
                    data_type(ctx, v, &join_path(field, &k.text))?,
                ))
            })
            .collect::<Result<_>>()?,
    ))
}

fn data_type(ctx: Ctx, node: &Node, field: &str) -> Result<DataType> {
    match &node.value {
        Value::Map(_) => Ok(DataType::Struct(schema(ctx, node, field)?.fields)),
        Value::Str(name) => DataType::parse(name).ok_or_else(|| {
            ctx.error(
                node.pos,
                field,
                format!("unknown type `{name}` (types: bool, int64, float64, string, timestamp, list<type>, or a mapping for a struct)"),
            )
        }),
        _ => Err(ctx.wrong_kind(node, field, "a type name such as `int64` or `string`")),
    }
}

/// `error_handling: {output: <tag>}` → dead letters to `<transform>.<tag>`; absent → fail.
pub(crate) fn error_handling(section: &Section) -> Result<BadRecordPolicy> {
    match section.get("error_handling") {
        None => Ok(BadRecordPolicy::Fail),
        Some(node) => {
            let inner = Section::new(
                section.ctx,
                node,
                &section.field("error_handling"),
                &["output"],
                "error_handling",
            )?;
            Ok(BadRecordPolicy::DeadLetter {
                tag: output_tag(&inner)?,
            })
        }
    }
}

fn read(source: SourceSpec, schema: Schema, bad_records: BadRecordPolicy) -> Built {
    Built::new(Transform::Read {
        source,
        schema,
        bad_records,
    })
}

/// `Create`: rows given inline; the schema is declared or inferred from the rows.
pub(crate) fn create(def: &TransformDef) -> Result<Built> {
    let config = def.config(&["elements", "schema"])?;
    let elements_node = config.require("elements")?;
    let elements_field = config.field("elements");
    let elements = rows(def.ctx, elements_node, &elements_field)?;
    let schema = match config.get("schema") {
        Some(node) => schema(def.ctx, node, &config.field("schema"))?,
        None => infer_schema(def.ctx, elements_node, &elements, &elements_field)?,
    };
    let rows = elements
        .iter()
        .enumerate()
        .map(|(i, element)| row_json(def.ctx, element, &index_path(&elements_field, i), &schema))
        .collect::<Result<Vec<_>>>()?;
    Ok(read(
        SourceSpec::Create { elements: rows },
        schema,
        BadRecordPolicy::Fail,
    ))
}

/// The rows of an `elements:` list. As in Beam YAML, an element that is not a mapping is the
/// row `{element: <value>}`.
fn rows(ctx: Ctx, node: &Node, field: &str) -> Result<Vec<Node>> {
    let Value::Seq(items) = &node.value else {
        return Err(ctx.wrong_kind(node, field, "a list of rows"));
    };
    Ok(items
        .iter()
        .map(|item| match item.value {
            Value::Map(_) => item.clone(),
            _ => Node {
                value: Value::Map(vec![(
                    Key {
                        text: "element".into(),
                        pos: item.pos,
                    },
                    item.clone(),
                )]),
                pos: item.pos,
                scalar: None,
            },
        })
        .collect())
}

/// A row's JSON, checked against `schema`; integers in float columns become floats.
fn row_json(ctx: Ctx, node: &Node, field: &str, schema: &Schema) -> Result<Json> {
    let entries = node
        .as_map()
        .ok_or_else(|| ctx.wrong_kind(node, field, "a row (a mapping of column to value)"))?;
    let mut row = serde_json::Map::new();
    for (key, value) in entries {
        let column_field = join_path(field, &key.text);
        let column = schema.field(&key.text).ok_or_else(|| {
            ctx.error(
                key.pos,
                &column_field,
                format!("column `{}` is not in the schema {schema}", key.text),
            )
        })?;
        row.insert(
            key.text.clone(),
            value_json(ctx, value, &column_field, &column.data_type)?,
        );
    }
    Ok(Json::Object(row))
}

fn value_json(ctx: Ctx, node: &Node, field: &str, data_type: &DataType) -> Result<Json> {
    let mismatch = || {
        ctx.error(
            node.pos,
            field,
            format!("expected a {data_type} value, found {}", node.kind()),
        )
    };
    Ok(match (&node.value, data_type) {
        (Value::Null, _) => Json::Null,
        (Value::Bool(b), DataType::Boolean) => Json::Bool(*b),
        (Value::Int(i), DataType::Int64 | DataType::Timestamp) => Json::from(*i),
        (Value::Int(i), DataType::Float64) => Json::from(*i as f64),
        (Value::Float(x), DataType::Float64) => serde_json::Number::from_f64(*x)
            .map(Json::Number)
            .ok_or_else(|| {
                ctx.error(
                    node.pos,
                    field,
                    format!("{x} cannot be represented (JSON has no infinities or NaN)"),
                )
            })?,
        // Timestamps may also be written as text; the source reads it like a JSON file's.
        (Value::Str(s), DataType::String | DataType::Timestamp) => Json::String(s.clone()),
        (Value::Seq(items), DataType::List(item)) => Json::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, n)| value_json(ctx, n, &index_path(field, i), item))
                .collect::<Result<_>>()?,
        ),
        (Value::Map(_), DataType::Struct(fields)) => {
            row_json(ctx, node, field, &Schema::new(fields.clone()))?
        }
        _ => return Err(mismatch()),
    })
}

/// A type guessed from values; `Unknown` for nulls and empty lists until something else shows.
#[derive(Debug, Clone, PartialEq)]
enum Guess {
    Unknown,
    Known(DataType),
    List(Box<Guess>),
    Struct(Vec<(String, Guess)>),
}

impl Guess {
    /// The type to declare; columns never seen with a value are strings.
    fn resolve(self) -> DataType {
        match self {
            Guess::Unknown => DataType::String,
            Guess::Known(t) => t,
            Guess::List(item) => DataType::List(Box::new(item.resolve())),
            Guess::Struct(fields) => DataType::Struct(
                fields
                    .into_iter()
                    .map(|(n, g)| Field::new(n, g.resolve()))
                    .collect(),
            ),
        }
    }

    fn describe(&self) -> String {
        match self {
            Guess::Unknown => "null".into(),
            other => other.clone().resolve().to_string(),
        }
    }
}

fn guess(node: &Node) -> Option<Guess> {
    Some(match &node.value {
        Value::Null => Guess::Unknown,
        Value::Bool(_) => Guess::Known(DataType::Boolean),
        Value::Int(_) => Guess::Known(DataType::Int64),
        Value::Float(_) => Guess::Known(DataType::Float64),
        Value::Str(_) => Guess::Known(DataType::String),
        Value::Seq(items) => {
            let mut item = Guess::Unknown;
            for n in items {
                item = merge(item, guess(n)?)?;
            }
            Guess::List(Box::new(item))
        }
        Value::Map(entries) => {
            let mut fields: Vec<(String, Guess)> = Vec::new();
            for (k, v) in entries {
                fields.push((k.text.clone(), guess(v)?));
            }
            Guess::Struct(fields)
        }
    })
}

/// The common type of two guesses: int64 widens to float64, nulls fit anything, structs merge
/// field by field. `None` when they conflict.
fn merge(a: Guess, b: Guess) -> Option<Guess> {
    Some(match (a, b) {
        (Guess::Unknown, x) | (x, Guess::Unknown) => x,
        (Guess::Known(x), Guess::Known(y)) if x == y => Guess::Known(x),
        (Guess::Known(DataType::Int64), Guess::Known(DataType::Float64))
        | (Guess::Known(DataType::Float64), Guess::Known(DataType::Int64)) => {
            Guess::Known(DataType::Float64)
        }
        (Guess::List(x), Guess::List(y)) => Guess::List(Box::new(merge(*x, *y)?)),
        (Guess::Struct(mut x), Guess::Struct(y)) => {
            for (name, g) in y {
                match x.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, existing)) => *existing = merge(existing.clone(), g)?,
                    None => x.push((name, g)),
                }
            }
            Guess::Struct(x)
        }
        _ => return None,
    })
}

/// Infers a schema from `Create` rows: columns in first-seen order, types merged over rows.
fn infer_schema(ctx: Ctx, elements_node: &Node, elements: &[Node], field: &str) -> Result<Schema> {
    let mut columns: Vec<(String, Guess)> = Vec::new();
    for (i, element) in elements.iter().enumerate() {
        for (key, value) in element.as_map().unwrap_or_default() {
            let value_field = join_path(&index_path(field, i), &key.text);
            let conflict = |found: &str, before: &str| {
                ctx.error(
                    value.pos,
                    &value_field,
                    format!(
                        "column `{}` holds {found} here but {before} in earlier rows; declare its type in `config.schema`",
                        key.text
                    ),
                )
            };
            let g =
                guess(value).ok_or_else(|| conflict("values of mixed types", "other values"))?;
            match columns.iter_mut().find(|(n, _)| *n == key.text) {
                Some((_, existing)) => {
                    let described = (g.describe(), existing.describe());
                    *existing = merge(existing.clone(), g)
                        .ok_or_else(|| conflict(&described.0, &described.1))?;
                }
                None => columns.push((key.text.clone(), g)),
            }
        }
    }
    if columns.is_empty() {
        return Err(ctx.error(
            elements_node.pos,
            field,
            "cannot infer a schema from no rows; give `config.schema` (a mapping of column to type)",
        ));
    }
    Ok(Schema::new(
        columns
            .into_iter()
            .map(|(n, g)| Field::new(n, g.resolve()))
            .collect(),
    ))
}

/// `ReadFromJson`, `ReadFromCsv`, `ReadFromText`.
pub(crate) fn read_files(def: &TransformDef, format: FileFormat) -> Result<Built> {
    let config = match format {
        FileFormat::Text => def.config(&["path", "watch", "poll_interval", "rate"])?,
        _ => def.config(&[
            "path",
            "schema",
            "watch",
            "poll_interval",
            "rate",
            "error_handling",
        ])?,
    };
    let path = required_text(&config, "path")?;
    let schema = match format {
        FileFormat::Text => Schema::new(vec![Field::new("line", DataType::String)]),
        _ => schema(def.ctx, config.require("schema")?, &config.field("schema"))?,
    };
    let watch = config.bool("watch")?.unwrap_or(false);
    let poll_interval = config.duration("poll_interval")?;
    if poll_interval.is_some() && !watch {
        return Err(config.error(
            config.key_pos("poll_interval"),
            "poll_interval",
            "only applies with `watch: true`",
        ));
    }
    let rate = config
        .get("rate")
        .map(|n| rate(def.ctx, n, &config.field("rate")))
        .transpose()?;
    let bad_records = error_handling(&config)?;
    Ok(read(
        SourceSpec::Files {
            path,
            format,
            watch,
            poll_interval,
            rate,
        },
        schema,
        bad_records,
    ))
}

/// `GenerateSequence`: rows `{value}` counting up from `start`.
pub(crate) fn generate_sequence(def: &TransformDef) -> Result<Built> {
    let config = def.config(&["start", "count", "end", "rate", "partitions"])?;
    config.exclusive("count", "end")?;
    let start = match config.get("start") {
        None => 0,
        Some(n) => match n.value {
            Value::Int(i) => i,
            _ => return Err(def.ctx.wrong_kind(n, &config.field("start"), "an integer")),
        },
    };
    let count = match (config.u64("count")?, config.get("end")) {
        (Some(c), _) => Some(c),
        (None, Some(n)) => match n.value {
            // Beam's `end` is exclusive.
            Value::Int(end) if end >= start => Some((end - start) as u64),
            Value::Int(end) => {
                return Err(def.ctx.error(
                    n.pos,
                    &config.field("end"),
                    format!("end {end} is before start {start}"),
                ));
            }
            _ => return Err(def.ctx.wrong_kind(n, &config.field("end"), "an integer")),
        },
        (None, None) => None,
    };
    let rate = config
        .get("rate")
        .map(|n| rate(def.ctx, n, &config.field("rate")))
        .transpose()?;
    let partitions = match config.get("partitions") {
        None => 1,
        Some(n) => match n.value {
            Value::Int(p) if p >= 1 && p <= i64::from(u32::MAX) => p as u32,
            _ => {
                return Err(def.ctx.error(
                    n.pos,
                    &config.field("partitions"),
                    "expected a positive integer",
                ))
            }
        },
    };
    let schema = Schema::new(vec![Field::new("value", DataType::Int64)]);
    Ok(read(
        SourceSpec::Sequence {
            start,
            count,
            rate,
            partitions,
        },
        schema,
        BadRecordPolicy::Fail,
    ))
}

/// Rows per second: a number, or Beam's `{elements: n, seconds: s}`.
fn rate(ctx: Ctx, node: &Node, field: &str) -> Result<f64> {
    let positive = |n: &Node, f: &str| -> Result<f64> {
        match n.value {
            Value::Int(i) if i > 0 => Ok(i as f64),
            Value::Float(x) if x > 0.0 && x.is_finite() => Ok(x),
            _ => Err(ctx.error(
                n.pos,
                f,
                format!(
                    "expected a positive number, found {}",
                    n.scalar_text().unwrap_or(n.kind())
                ),
            )),
        }
    };
    match &node.value {
        Value::Map(_) => {
            let section = Section::new(ctx, node, field, &["elements", "seconds"], "rate")?;
            let elements = positive(section.require("elements")?, &section.field("elements"))?;
            let seconds = match section.get("seconds") {
                Some(n) => positive(n, &section.field("seconds"))?,
                None => 1.0,
            };
            Ok(elements / seconds)
        }
        _ => positive(node, field),
    }
}

/// `ReadFromNexmark` (extension): one table of the Nexmark event stream.
pub(crate) fn read_nexmark(def: &TransformDef) -> Result<Built> {
    let config = def.config(&[
        "table",
        "events",
        "partitions",
        "first_event_id",
        "base_time",
        "rate",
        "out_of_order_group_size",
        "realtime",
    ])?;
    let table_node = config.require("table")?;
    let table_name = string(&def.ctx, table_node, &config.field("table"))?;
    let table = NexmarkTable::by_name(&table_name).ok_or_else(|| {
        config.error(
            table_node.pos,
            "table",
            format!("unknown Nexmark table `{table_name}` (tables: person, auction, bid)"),
        )
    })?;
    // Points at the value, like every other field error.
    let value_pos = |key: &str| config.get(key).map(|n| n.pos).unwrap_or(config.pos);
    let positive = |key: &str| -> Result<Option<u64>> {
        match config.u64(key)? {
            Some(0) => Err(config.error(value_pos(key), key, "must be at least 1")),
            other => Ok(other),
        }
    };
    let partitions = match positive("partitions")? {
        None => 1,
        Some(p) => u32::try_from(p).map_err(|_| {
            config.error(value_pos("partitions"), "partitions", "too many partitions")
        })?,
    };
    let realtime = match config.get("realtime") {
        None => false,
        Some(n) => match n.value {
            Value::Bool(b) => b,
            _ => {
                return Err(def
                    .ctx
                    .wrong_kind(n, &config.field("realtime"), "true or false"))
            }
        },
    };
    let base_time = match config.get("base_time") {
        // A default taken when the file is read would move at every restart, and a restored
        // run would generate its remaining events at other times.
        None if realtime => {
            return Err(config.error(
                value_pos("realtime"),
                "realtime",
                "wall-clock mode needs `base_time` (the wall-clock time of the first event, \
                 milliseconds since the epoch), so that a restored run generates the same \
                 events at the same times",
            ))
        }
        None => crate::io::NEXMARK_BASE_TIME,
        Some(n) => match n.value {
            Value::Int(ms) if ms >= 0 => ms,
            _ => {
                return Err(def.ctx.wrong_kind(
                    n,
                    &config.field("base_time"),
                    "milliseconds since the epoch (a non-negative integer)",
                ))
            }
        },
    };
    let rate = config
        .get("rate")
        .map(|n| rate(def.ctx, n, &config.field("rate")))
        .transpose()?;
    if realtime && rate.is_none() {
        return Err(config.error(
            value_pos("realtime"),
            "realtime",
            "wall-clock mode paces events by their event times, so it needs a `rate`",
        ));
    }
    Ok(read(
        SourceSpec::Nexmark {
            table,
            events: config.u64("events")?,
            partitions,
            first_event_id: config.u64("first_event_id")?.unwrap_or(0),
            base_time,
            rate,
            out_of_order_group_size: positive("out_of_order_group_size")?.unwrap_or(1),
            realtime,
        },
        table.schema(),
        BadRecordPolicy::Fail,
    ))
}

/// `WriteToMeter` (extension): counts rows and their latency, keeping nothing.
pub(crate) fn write_meter(def: &TransformDef) -> Result<Built> {
    let config = def.config(&["name"])?;
    let name = required_text(&config, "name")?;
    Ok(write(SinkSpec::Meter { name }, SinkMetadata::default()))
}

/// `ReadFromMemory`: a test source registered by name.
pub(crate) fn read_memory(def: &TransformDef) -> Result<Built> {
    let config = def.config(&["name", "schema", "error_handling"])?;
    let name = required_text(&config, "name")?;
    let schema = schema(def.ctx, config.require("schema")?, &config.field("schema"))?;
    let bad_records = error_handling(&config)?;
    Ok(read(SourceSpec::Memory { name }, schema, bad_records))
}

/// The `include_window` / `include_pane` extensions every sink takes.
fn sink_metadata(config: &Section) -> Result<SinkMetadata> {
    Ok(SinkMetadata {
        window: config.bool("include_window")?,
        pane: config.bool("include_pane")?.unwrap_or(false),
    })
}

fn write(sink: SinkSpec, metadata: SinkMetadata) -> Built {
    Built::new(Transform::Write { sink, metadata })
}

/// `WriteToJson`, `WriteToCsv`, `WriteToText`.
pub(crate) fn write_files(def: &TransformDef, format: FileFormat) -> Result<Built> {
    let config = def.config(&["path", "include_window", "include_pane"])?;
    let path = required_text(&config, "path")?;
    Ok(write(
        SinkSpec::Files { path, format },
        sink_metadata(&config)?,
    ))
}

/// `ReadFromParquet`: a Parquet file or a directory of them (through its manifest when it
/// has one); columns matched to the declared schema by name.
pub(crate) fn read_parquet(def: &TransformDef) -> Result<Built> {
    let config = def.config(&["path", "schema"])?;
    let path = required_text(&config, "path")?;
    let schema = schema(def.ctx, config.require("schema")?, &config.field("schema"))?;
    Ok(read(
        SourceSpec::Parquet { path },
        schema,
        BadRecordPolicy::Fail,
    ))
}

/// `WriteToParquet`: a directory of Parquet files committed through a manifest.
pub(crate) fn write_parquet(def: &TransformDef) -> Result<Built> {
    let config = def.config(&["path", "include_window", "include_pane"])?;
    let path = required_text(&config, "path")?;
    Ok(write(SinkSpec::Parquet { path }, sink_metadata(&config)?))
}

/// `WriteToPostgres`: a PostgreSQL table, insert or upsert. A `password` field is refused:
/// passwords come from `password_env` or `password_file`, never from the pipeline file.
pub(crate) fn write_postgres(def: &TransformDef) -> Result<Built> {
    let config = def.config(&[
        "connection",
        "host",
        "port",
        "database",
        "user",
        "password",
        "password_env",
        "password_file",
        "table",
        "mode",
        "key",
        "batch_size",
        "job",
        "include_window",
        "include_pane",
    ])?;
    if config.get("password").is_some() {
        return Err(config.error(
            config.key_pos("password"),
            "password",
            "passwords do not belong in pipeline files; name an environment variable with `password_env` or a file with `password_file`",
        ));
    }
    config.exclusive("password_env", "password_file")?;
    config.exclusive("connection", "host")?;
    config.exclusive("connection", "port")?;
    let table = required_text(&config, "table")?;
    let port = match config.get("port") {
        None => None,
        Some(n) => match n.value {
            Value::Int(p) if (1..=i64::from(u16::MAX)).contains(&p) => Some(p as u16),
            _ => {
                return Err(config.error(n.pos, "port", "expected a port number (1-65535)"));
            }
        },
    };
    let mode_name = config.str("mode")?.unwrap_or_else(|| "insert".into());
    let key = config.names("key")?;
    let mode = match (mode_name.as_str(), key) {
        ("insert", None) => PostgresWriteMode::Insert,
        ("insert", Some(_)) => {
            return Err(config.error(
                config.key_pos("key"),
                "key",
                "only applies with `mode: upsert`",
            ))
        }
        ("upsert", Some(key)) if !key.is_empty() => PostgresWriteMode::Upsert { key },
        ("upsert", _) => {
            return Err(config.error(
                config.key_pos("mode"),
                "key",
                "`mode: upsert` needs the key columns in `key`",
            ))
        }
        (other, _) => {
            let pos = config.get("mode").map(|n| n.pos).unwrap_or(config.pos);
            return Err(config.error(
                pos,
                "mode",
                format!("unknown mode `{other}` (modes: insert, upsert)"),
            ));
        }
    };
    let batch_size = match config.u64("batch_size")? {
        Some(0) => {
            let pos = config
                .get("batch_size")
                .map(|n| n.pos)
                .unwrap_or(config.pos);
            return Err(config.error(pos, "batch_size", "must be at least 1"));
        }
        Some(n) => n,
        None => POSTGRES_DEFAULT_BATCH_SIZE,
    };
    let spec = PostgresSinkSpec {
        connection: config.str("connection")?,
        host: config.str("host")?,
        port,
        database: config.str("database")?,
        user: config.str("user")?,
        password_env: config.str("password_env")?,
        password_file: config.str("password_file")?,
        table,
        mode,
        batch_size,
        job: config.str("job")?,
    };
    Ok(write(
        SinkSpec::Postgres(Box::new(spec)),
        sink_metadata(&config)?,
    ))
}

/// `ReadFromJetStream`: JSON messages of a JetStream stream, a partition per subject.
pub(crate) fn read_jetstream(def: &TransformDef) -> Result<Built> {
    let config = def.config(&[
        "url",
        "stream",
        "subjects",
        "schema",
        "message_timestamp",
        "bounded",
        "rate",
        "error_handling",
    ])?;
    let url = config
        .str("url")?
        .unwrap_or_else(|| NATS_DEFAULT_URL.into());
    let stream = required_text(&config, "stream")?;
    let subjects = config.names("subjects")?.unwrap_or_default();
    let mut schema = schema(def.ctx, config.require("schema")?, &config.field("schema"))?;
    let message_timestamp = config.str("message_timestamp")?;
    if let Some(column) = &message_timestamp {
        if schema.field(column).is_some() {
            return Err(config.error(
                config.key_pos("message_timestamp"),
                "message_timestamp",
                format!("column `{column}` is already in the schema; name a new column for the message timestamp"),
            ));
        }
        schema
            .fields
            .push(Field::new(column.clone(), DataType::Timestamp));
    }
    let bad_records = error_handling(&config)?;
    Ok(read(
        SourceSpec::JetStream(Box::new(JetStreamSourceSpec {
            url,
            stream,
            subjects,
            message_timestamp,
            bounded: config.bool("bounded")?.unwrap_or(false),
            rate: config
                .get("rate")
                .map(|n| rate(def.ctx, n, &config.field("rate")))
                .transpose()?,
        })),
        schema,
        bad_records,
    ))
}

/// `WriteToJetStream`: rows published as JSON to a subject, with idempotent message ids.
pub(crate) fn write_jetstream(def: &TransformDef) -> Result<Built> {
    let config = def.config(&[
        "url",
        "subject",
        "job",
        "create_stream",
        "include_window",
        "include_pane",
    ])?;
    let url = config
        .str("url")?
        .unwrap_or_else(|| NATS_DEFAULT_URL.into());
    let subject = required_text(&config, "subject")?;
    let create_stream = match config.get("create_stream") {
        None => None,
        Some(node) => {
            let field = config.field("create_stream");
            let section = Section::new(
                def.ctx,
                node,
                &field,
                &["name", "subjects"],
                "create_stream",
            )?;
            let name = required_text(&section, "name")?;
            let subjects = section.names("subjects")?.unwrap_or_default();
            if subjects.is_empty() {
                return Err(section.error(
                    section.key_pos("subjects"),
                    "subjects",
                    "name the subjects the stream captures, e.g. [orders.>]",
                ));
            }
            Some(StreamSetup { name, subjects })
        }
    };
    Ok(write(
        SinkSpec::JetStream {
            url,
            subject,
            job: config.str("job")?,
            create_stream,
        },
        sink_metadata(&config)?,
    ))
}

/// `LogForTesting`: rows on standard output.
pub(crate) fn log_for_testing(def: &TransformDef) -> Result<Built> {
    let config = def.config(&["include_window", "include_pane"])?;
    Ok(write(SinkSpec::Stdout, sink_metadata(&config)?))
}

/// `WriteToMemory`: a test sink registered by name.
pub(crate) fn write_memory(def: &TransformDef) -> Result<Built> {
    let config = def.config(&["name", "guarantee", "include_window", "include_pane"])?;
    let name = required_text(&config, "name")?;
    let guarantee = match config.str("guarantee")?.as_deref() {
        None => None,
        Some("at_least_once" | "at-least-once") => Some(DeliveryGuarantee::AtLeastOnce),
        Some("idempotent") => Some(DeliveryGuarantee::Idempotent),
        Some("transactional") => Some(DeliveryGuarantee::Transactional),
        Some(other) => {
            let pos = config.get("guarantee").map_or(config.pos, |n| n.pos);
            return Err(config.error(
                pos,
                "guarantee",
                format!("`{other}` is not a guarantee (one of: transactional, idempotent, at_least_once)"),
            ));
        }
    };
    Ok(write(
        SinkSpec::Memory { name, guarantee },
        sink_metadata(&config)?,
    ))
}

/// `AssertEqual`: the expected rows, as JSON (non-mapping elements wrapped as in `Create`).
pub(crate) fn assert_equal(def: &TransformDef) -> Result<Built> {
    let config = def.config(&["elements"])?;
    let field = config.field("elements");
    let elements = rows(def.ctx, config.require("elements")?, &field)?
        .iter()
        .enumerate()
        .map(|(i, row)| super::fields::to_json(&def.ctx, row, &index_path(&field, i)))
        .collect::<Result<Vec<_>>>()?;
    Ok(Built::new(Transform::AssertEqual { elements }))
}

/// A required, non-empty string field (paths and registry names).
fn required_text(config: &Section, key: &str) -> Result<String> {
    let node = config.require(key)?;
    let text = string(&config.ctx, node, &config.field(key))?;
    if text.is_empty() {
        return Err(config.error(node.pos, key, "must not be empty"));
    }
    Ok(text)
}
