//! Test streams (Beam's `TestStream`): a scripted sequence of element arrivals, watermark
//! advances and processing-time advances, so any model rule can be tested exactly.

use serde::{Deserialize, Serialize};
use weir_model::time::{Duration, Timestamp};
use weir_model::udf::Row;

/// One step of a test stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "step")]
pub enum TestStep {
    /// Delivers rows to a `Read` node's partition; each row has an event timestamp.
    AddElements {
        /// The `Read` node fed by this step.
        source: String,
        /// Partition of that source.
        #[serde(default)]
        partition: u32,
        /// (row, event timestamp) pairs, in arrival order.
        elements: Vec<(Row, Timestamp)>,
    },
    /// Advances the watermark of every test-driven source (never backwards).
    AdvanceWatermarkTo {
        /// The new watermark.
        watermark: Timestamp,
    },
    /// Advances the manual processing-time clock.
    AdvanceProcessingTime {
        /// By how much.
        by: Duration,
    },
    /// Ends the input: every test-driven source's watermark goes to the maximum.
    AdvanceWatermarkToInfinity,
}

/// A scripted input for [`crate::DirectRunner::execute_test_stream`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TestStream {
    /// The steps, in order.
    pub steps: Vec<TestStep>,
}

impl TestStream {
    /// An empty stream.
    pub fn new() -> Self {
        TestStream::default()
    }
    /// Adds rows with event timestamps to partition 0 of `source`.
    pub fn add_elements(self, source: &str, elements: Vec<(Row, Timestamp)>) -> Self {
        self.add_elements_to(source, 0, elements)
    }
    /// Adds rows with event timestamps to a partition of `source`.
    pub fn add_elements_to(
        mut self,
        source: &str,
        partition: u32,
        elements: Vec<(Row, Timestamp)>,
    ) -> Self {
        self.steps.push(TestStep::AddElements {
            source: source.to_string(),
            partition,
            elements,
        });
        self
    }
    /// Advances the watermark.
    pub fn advance_watermark_to(mut self, watermark: Timestamp) -> Self {
        self.steps.push(TestStep::AdvanceWatermarkTo { watermark });
        self
    }
    /// Advances processing time.
    pub fn advance_processing_time(mut self, by: Duration) -> Self {
        self.steps.push(TestStep::AdvanceProcessingTime { by });
        self
    }
    /// Ends the input.
    pub fn advance_watermark_to_infinity(mut self) -> Self {
        self.steps.push(TestStep::AdvanceWatermarkToInfinity);
        self
    }
}
