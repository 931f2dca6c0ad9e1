//! Chains driven by hand: the operator-side rules without a runtime.

use super::chain::{Chain, NodeStatus, Outgoing};
use crate::watermark::{InputWatermarks, WatermarkStatus};
use serde_json::json;
use weir_model::plan::Plan;
use weir_model::time::MIN_TIMESTAMP;
use weir_runner_core::batch::{with_meta, ElementMeta};
use weir_runner_core::convert::rows_to_arrays;
use weir_runner_core::operator::BuildEnv;

fn plan() -> Plan {
    let text = "pipeline:
  transforms:
    - {type: ReadFromMemory, name: Events, config: {name: unused, schema: {user: string, ts: int64}}}
    - {type: AssignTimestamps, name: Time, input: Events, config: {timestamp: ts, max_out_of_orderness: 0s}}
    - {type: WindowInto, name: Windows, input: Time, config: {windowing: {type: fixed, size: 10s}}}
    - {type: Combine, name: Count, input: Windows, config: {group_by: user, combine: {n: {fn: count}}}}
    - {type: WriteToMemory, name: Out, input: Count, config: {name: out}}
";
    weir_model::plan(&weir_model::file::parse_str(text, "test").unwrap()).unwrap()
}

/// The source-side chain `Events -> Time -> Windows` of one split, turning rows into the
/// windowed batch that would cross the exchange.
fn windowed(plan: &Plan, rows: &[(&str, i64)]) -> arrow::record_batch::RecordBatch {
    let names: Vec<String> = ["Events", "Time", "Windows"].map(String::from).to_vec();
    let mut chain = Chain::new(
        plan,
        &names,
        &["Windows".to_string()],
        &BuildEnv::default(),
        &[0],
        0,
        false,
    )
    .unwrap();
    let schema = &plan.collection("Events").unwrap().schema;
    let rows: Vec<_> = rows
        .iter()
        .map(|(u, ts)| json!({"user": u, "ts": ts}).as_object().unwrap().clone())
        .collect();
    let metas = vec![ElementMeta::unwindowed(MIN_TIMESTAMP); rows.len()];
    let batch = with_meta(schema, rows_to_arrays(&rows, schema).unwrap(), &metas).unwrap();
    chain.emit_from_source(None, batch, 0, 0).unwrap();
    match chain.take_outgoing().pop() {
        Some(Outgoing::Data { batch, .. }) => batch,
        other => panic!("expected windowed rows, got {other:?}"),
    }
}

fn count_chain(plan: &Plan) -> Chain {
    Chain::new(
        plan,
        &["Count".to_string()],
        &["Count".to_string()],
        &BuildEnv::default(),
        &[],
        0,
        false,
    )
    .unwrap()
}

#[test]
fn an_idle_channel_releases_a_watermark_it_was_holding_back() {
    let plan = plan();
    let mut chain = count_chain(&plan);
    let mut valve = InputWatermarks::new(2);
    chain
        .deliver(0, windowed(&plan, &[("a", 1_000)]), 0)
        .unwrap();
    // Channel 0 is far ahead; channel 1 has said nothing: the window cannot fire.
    valve.update(0, WatermarkStatus::Watermark(20_000));
    chain
        .advance(NodeStatus::at(valve.current()), false, 0)
        .unwrap();
    assert!(chain.take_outgoing().is_empty());
    // Channel 1 goes idle: the min is channel 0's watermark and [0, 10 s) fires.
    valve.update(1, WatermarkStatus::Idle);
    chain
        .advance(NodeStatus::at(valve.current()), false, 0)
        .unwrap();
    let out = chain.take_outgoing();
    assert!(
        matches!(&out[0], Outgoing::Data { batch, .. } if batch.num_rows() == 1),
        "{out:?}"
    );
    // The fired pane leaves before the watermark that fired it, which is forwarded as is.
    assert!(
        matches!(out.last(), Some(Outgoing::Status { status, .. }) if status.watermark == 20_000),
        "{out:?}"
    );
}

#[test]
fn a_window_fires_when_the_watermark_reaches_its_last_millisecond() {
    let plan = plan();
    let mut chain = count_chain(&plan);
    chain
        .deliver(0, windowed(&plan, &[("a", 9_999)]), 0)
        .unwrap();
    chain.advance(NodeStatus::at(9_998), false, 0).unwrap();
    assert!(chain
        .take_outgoing()
        .iter()
        .all(|o| matches!(o, Outgoing::Status { .. })));
    chain.advance(NodeStatus::at(9_999), false, 0).unwrap();
    let out = chain.take_outgoing();
    assert!(matches!(&out[0], Outgoing::Data { .. }), "{out:?}");
}

#[test]
fn idleness_passes_through_operators() {
    let plan = plan();
    let mut chain = count_chain(&plan);
    chain.advance(NodeStatus::at(5), false, 0).unwrap();
    chain.take_outgoing();
    chain
        .advance(
            NodeStatus {
                watermark: 5,
                idle: true,
            },
            false,
            0,
        )
        .unwrap();
    assert!(matches!(
        chain.take_outgoing().as_slice(),
        [Outgoing::Status { status, .. }] if status.idle
    ));
}
