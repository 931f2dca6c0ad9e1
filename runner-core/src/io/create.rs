//! Beam's Create: rows given inline in the pipeline, one partition, in order.

use super::records::RecordCollector;
use super::{Source, SourcePoll};
use crate::error::{ExecError, ExecResult};
use weir_model::{io::BadRecordPolicy, time::Timestamp, Schema};

/// The elements of a `Create` transform (JSON objects), in order, as one partition.
///
/// An element that is not an object or does not fit the schema is a bad record named
/// `"<node> element"` at line `index + 1`. Position: the index of the next element.
#[derive(Debug)]
pub struct CreateSource {
    source_name: String,
    elements: Vec<serde_json::Value>,
    schema: Schema,
    policy: BadRecordPolicy,
    next: usize,
}

impl CreateSource {
    /// A source over `elements` for node `node`.
    pub fn new(
        node: &str,
        elements: &[serde_json::Value],
        schema: &Schema,
        bad_records: &BadRecordPolicy,
    ) -> ExecResult<Self> {
        Ok(CreateSource {
            source_name: format!("{node} element"),
            elements: elements.to_vec(),
            schema: schema.clone(),
            policy: bad_records.clone(),
            next: 0,
        })
    }
}

impl Source for CreateSource {
    fn partitions(&self) -> u32 {
        1
    }

    fn poll(&mut self, partition: u32, max_rows: usize, _now: Timestamp) -> ExecResult<SourcePoll> {
        check_partition(partition)?;
        if self.next >= self.elements.len() {
            return Ok(SourcePoll::Ended);
        }
        let end = self.elements.len().min(self.next + max_rows.max(1));
        let mut collector = RecordCollector::new(&self.schema, &self.policy);
        for (index, element) in self.elements[self.next..end].iter().enumerate() {
            let line = (self.next + index + 1) as u64;
            match element {
                serde_json::Value::Object(row) => {
                    collector.row(row.clone(), &self.source_name, line, || element.to_string())?
                }
                other => collector.bad(
                    &self.source_name,
                    line,
                    format!(
                        "expected a JSON object, got {}",
                        super::records::short(other)
                    ),
                    other.to_string(),
                )?,
            }
        }
        let (data, dead_letters) = collector.finish()?;
        self.next = end;
        Ok(SourcePoll::Batch { data, dead_letters })
    }

    fn position(&self, partition: u32) -> serde_json::Value {
        debug_assert_eq!(partition, 0);
        serde_json::Value::from(self.next as u64)
    }

    fn seek(&mut self, partition: u32, position: &serde_json::Value) -> ExecResult<()> {
        check_partition(partition)?;
        let next = position
            .as_u64()
            .filter(|n| *n as usize <= self.elements.len())
            .ok_or_else(|| {
                ExecError::Internal(format!(
                    "`{position}` is not a position of {}s",
                    self.source_name
                ))
            })?;
        self.next = next as usize;
        Ok(())
    }
}

fn check_partition(partition: u32) -> ExecResult<()> {
    if partition == 0 {
        Ok(())
    } else {
        Err(ExecError::Internal(format!(
            "a Create source has one partition, not partition {partition}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::batch_to_rows;
    use serde_json::json;
    use weir_model::{DataType, Field};

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("user", DataType::String),
            Field::new("n", DataType::Int64),
        ])
    }

    fn batch_of(poll: SourcePoll) -> (Vec<serde_json::Value>, Vec<serde_json::Value>) {
        match poll {
            SourcePoll::Batch { data, dead_letters } => (
                batch_to_rows(&data)
                    .into_iter()
                    .map(serde_json::Value::Object)
                    .collect(),
                dead_letters
                    .map(|d| {
                        batch_to_rows(&d)
                            .into_iter()
                            .map(serde_json::Value::Object)
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            other => panic!("expected a batch, got {other:?}"),
        }
    }

    #[test]
    fn yields_the_elements_in_order_then_ends_and_replays_from_a_position() {
        let elements = vec![
            json!({"user": "a", "n": 1}),
            json!({"user": "b"}),
            json!({"user": "c", "n": 3}),
        ];
        let mut s =
            CreateSource::new("Create", &elements, &schema(), &BadRecordPolicy::Fail).unwrap();
        let (rows, dead) = batch_of(s.poll(0, 2, 0).unwrap());
        assert_eq!(
            rows,
            vec![
                json!({"user": "a", "n": 1}),
                json!({"user": "b", "n": null})
            ]
        );
        assert!(dead.is_empty());
        assert_eq!(s.position(0), json!(2));
        let (rows, _) = batch_of(s.poll(0, 2, 0).unwrap());
        assert_eq!(rows, vec![json!({"user": "c", "n": 3})]);
        assert!(matches!(s.poll(0, 2, 0).unwrap(), SourcePoll::Ended));
        s.seek(0, &json!(1)).unwrap();
        let (rows, _) = batch_of(s.poll(0, 10, 0).unwrap());
        assert_eq!(rows.len(), 2);
    }

    #[test]
    fn a_misfit_element_fails_naming_node_index_and_field() {
        let elements = vec![
            json!({"user": "a", "n": 1}),
            json!({"user": "b", "n": "two"}),
        ];
        let mut s =
            CreateSource::new("People", &elements, &schema(), &BadRecordPolicy::Fail).unwrap();
        let err = s.poll(0, 10, 0).unwrap_err();
        match &err {
            ExecError::BadRecord {
                source_name,
                line,
                message,
            } => {
                assert_eq!(source_name, "People element");
                assert_eq!(*line, 2);
                assert!(message.contains("`n`"), "{message}");
            }
            other => panic!("{other}"),
        }
    }

    #[test]
    fn misfits_go_to_dead_letters_under_that_policy() {
        let elements = vec![json!({"user": "a", "n": 1}), json!(7), json!({"user": 5})];
        let policy = BadRecordPolicy::DeadLetter { tag: "bad".into() };
        let mut s = CreateSource::new("C", &elements, &schema(), &policy).unwrap();
        let (rows, dead) = batch_of(s.poll(0, 10, 0).unwrap());
        assert_eq!(rows, vec![json!({"user": "a", "n": 1})]);
        assert_eq!(
            dead,
            vec![
                json!({"source": "C element", "line": 2, "error": "expected a JSON object, got 7", "record": "7"}),
                json!({"source": "C element", "line": 3, "error": "field `user`: expected string, got 5", "record": "{\"user\":5}"}),
            ]
        );
    }
}
