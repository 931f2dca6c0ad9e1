//! Collection schemas: a small, serializable set of column types that map one-to-one onto Arrow.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

use arrow::datatypes::{
    DataType as ArrowType, Field as ArrowField, Schema as ArrowSchema, TimeUnit,
};

/// A column type. Timestamps are milliseconds since the epoch, like Spark and Flink.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataType {
    /// true / false.
    Boolean,
    /// 64-bit signed integer.
    Int64,
    /// 64-bit float.
    Float64,
    /// UTF-8 text.
    String,
    /// Milliseconds since the Unix epoch.
    Timestamp,
    /// A list of values of one type.
    List(Box<DataType>),
    /// A nested record.
    Struct(Vec<Field>),
}

impl DataType {
    /// Whether values of this type can be added, compared numerically, summed.
    pub fn is_numeric(&self) -> bool {
        matches!(self, DataType::Int64 | DataType::Float64)
    }

    /// Whether values can be ordered (min/max, comparisons).
    pub fn is_orderable(&self) -> bool {
        matches!(
            self,
            DataType::Boolean
                | DataType::Int64
                | DataType::Float64
                | DataType::String
                | DataType::Timestamp
        )
    }

    /// The Arrow type this maps to.
    pub fn to_arrow(&self) -> ArrowType {
        match self {
            DataType::Boolean => ArrowType::Boolean,
            DataType::Int64 => ArrowType::Int64,
            DataType::Float64 => ArrowType::Float64,
            DataType::String => ArrowType::Utf8,
            DataType::Timestamp => ArrowType::Timestamp(TimeUnit::Millisecond, None),
            DataType::List(item) => {
                ArrowType::List(Arc::new(ArrowField::new("item", item.to_arrow(), true)))
            }
            DataType::Struct(fields) => ArrowType::Struct(
                fields
                    .iter()
                    .map(Field::to_arrow)
                    .collect::<Vec<_>>()
                    .into(),
            ),
        }
    }

    /// The Weir type for an Arrow type, if Weir has one. Narrower integer and float types
    /// widen to 64 bits; large strings map to `String`.
    pub fn from_arrow(t: &ArrowType) -> Option<DataType> {
        Some(match t {
            ArrowType::Boolean => DataType::Boolean,
            ArrowType::Int8
            | ArrowType::Int16
            | ArrowType::Int32
            | ArrowType::Int64
            | ArrowType::UInt8
            | ArrowType::UInt16
            | ArrowType::UInt32
            | ArrowType::UInt64 => DataType::Int64,
            ArrowType::Float16 | ArrowType::Float32 | ArrowType::Float64 => DataType::Float64,
            ArrowType::Utf8 | ArrowType::LargeUtf8 | ArrowType::Utf8View => DataType::String,
            ArrowType::Timestamp(_, _) | ArrowType::Date64 => DataType::Timestamp,
            ArrowType::List(f) | ArrowType::LargeList(f) => {
                DataType::List(Box::new(DataType::from_arrow(f.data_type())?))
            }
            ArrowType::Struct(fields) => DataType::Struct(
                fields
                    .iter()
                    .map(|f| {
                        Some(Field {
                            name: f.name().clone(),
                            data_type: DataType::from_arrow(f.data_type())?,
                            nullable: f.is_nullable(),
                        })
                    })
                    .collect::<Option<Vec<_>>>()?,
            ),
            _ => return None,
        })
    }

    /// Parses a type name as written in pipeline files: `bool`, `int`/`int64`/`long`,
    /// `float`/`double`/`float64`, `string`/`str`, `timestamp`, `list<T>`.
    pub fn parse(name: &str) -> Option<DataType> {
        let n = name.trim().to_ascii_lowercase();
        Some(match n.as_str() {
            "bool" | "boolean" => DataType::Boolean,
            "int" | "int64" | "integer" | "long" | "bigint" => DataType::Int64,
            "float" | "double" | "float64" | "number" => DataType::Float64,
            "string" | "str" | "text" | "utf8" => DataType::String,
            "timestamp" | "time" => DataType::Timestamp,
            _ => {
                let inner = n.strip_prefix("list<")?.strip_suffix('>')?;
                DataType::List(Box::new(DataType::parse(inner)?))
            }
        })
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataType::Boolean => write!(f, "bool"),
            DataType::Int64 => write!(f, "int64"),
            DataType::Float64 => write!(f, "float64"),
            DataType::String => write!(f, "string"),
            DataType::Timestamp => write!(f, "timestamp"),
            DataType::List(t) => write!(f, "list<{t}>"),
            DataType::Struct(fields) => {
                write!(f, "struct<")?;
                for (i, fl) in fields.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{}: {}", fl.name, fl.data_type)?;
                }
                write!(f, ">")
            }
        }
    }
}

/// A named, typed column.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Field {
    /// Column name.
    pub name: String,
    /// Column type.
    #[serde(rename = "type")]
    pub data_type: DataType,
    /// Whether the column may hold nulls.
    #[serde(default = "default_true")]
    pub nullable: bool,
}

fn default_true() -> bool {
    true
}

impl Field {
    /// A nullable field.
    pub fn new(name: impl Into<String>, data_type: DataType) -> Self {
        Field {
            name: name.into(),
            data_type,
            nullable: true,
        }
    }
    /// The Arrow field this maps to.
    pub fn to_arrow(&self) -> ArrowField {
        ArrowField::new(&self.name, self.data_type.to_arrow(), self.nullable)
    }
}

/// The columns of a collection, in order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct Schema {
    /// The columns.
    pub fields: Vec<Field>,
}

impl Schema {
    /// A schema of the given fields.
    pub fn new(fields: Vec<Field>) -> Self {
        Schema { fields }
    }
    /// The field called `name`.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }
    /// The position of the field called `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }
    /// Column names, in order.
    pub fn names(&self) -> Vec<&str> {
        self.fields.iter().map(|f| f.name.as_str()).collect()
    }
    /// The Arrow schema this maps to.
    pub fn to_arrow(&self) -> Arc<ArrowSchema> {
        Arc::new(ArrowSchema::new(
            self.fields.iter().map(Field::to_arrow).collect::<Vec<_>>(),
        ))
    }
    /// The Weir schema for an Arrow schema, or the name of the first column whose type Weir
    /// does not model.
    pub fn from_arrow(schema: &ArrowSchema) -> Result<Schema, String> {
        schema
            .fields()
            .iter()
            .map(|f| {
                DataType::from_arrow(f.data_type())
                    .map(|t| Field {
                        name: f.name().clone(),
                        data_type: t,
                        nullable: f.is_nullable(),
                    })
                    .ok_or_else(|| {
                        format!(
                            "column `{}` has unsupported type {}",
                            f.name(),
                            f.data_type()
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Schema::new)
    }
}

impl fmt::Display for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "(")?;
        for (i, fl) in self.fields.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{}: {}", fl.name, fl.data_type)?;
            if !fl.nullable {
                write!(f, "!")?;
            }
        }
        write!(f, ")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrow_round_trip_keeps_names_and_types() {
        let s = Schema::new(vec![
            Field::new("user", DataType::String),
            Field::new("ts", DataType::Timestamp),
            Field::new("tags", DataType::List(Box::new(DataType::String))),
        ]);
        assert_eq!(Schema::from_arrow(&s.to_arrow()).unwrap(), s);
    }

    #[test]
    fn parses_type_names() {
        assert_eq!(DataType::parse("int"), Some(DataType::Int64));
        assert_eq!(
            DataType::parse("list<double>"),
            Some(DataType::List(Box::new(DataType::Float64)))
        );
        assert_eq!(DataType::parse("blob"), None);
    }
}
