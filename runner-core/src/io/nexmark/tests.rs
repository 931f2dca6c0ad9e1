use super::*;
use arrow::array::{Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use nexmark::config::NexmarkConfig;
use nexmark::event::Event;
use nexmark::EventGenerator;
use weir_model::io::NEXMARK_BASE_TIME;

fn settings(table: NexmarkTable, events: u64) -> NexmarkSettings {
    NexmarkSettings {
        table,
        events: Some(events),
        partitions: 1,
        first_event_id: 0,
        base_time: NEXMARK_BASE_TIME,
        rate: None,
        out_of_order_group_size: 1,
        realtime: false,
    }
}

/// Every batch of `partition`, polled `max_rows` at a time until it ends.
fn drain(source: &mut NexmarkSource, partition: u32, max_rows: usize) -> Vec<RecordBatch> {
    let mut out = Vec::new();
    loop {
        match source.poll(partition, max_rows, 0).unwrap() {
            SourcePoll::Batch { data, .. } => out.push(data),
            SourcePoll::Ended => return out,
            SourcePoll::Pending => panic!("an unpaced source is never pending"),
        }
    }
}

fn ints(batch: &RecordBatch, column: usize) -> &Int64Array {
    batch.column(column).as_any().downcast_ref().unwrap()
}

fn texts(batch: &RecordBatch, column: usize) -> &StringArray {
    batch.column(column).as_any().downcast_ref().unwrap()
}

fn times(batch: &RecordBatch, column: usize) -> &TimestampMillisecondArray {
    batch.column(column).as_any().downcast_ref().unwrap()
}

/// Asserts that row `row` of `batch` (a table of `event`'s kind) holds `event`.
fn assert_row_is(batch: &RecordBatch, row: usize, event: &Event) {
    let i = |c: usize| ints(batch, c).value(row);
    let s = |c: usize| texts(batch, c).value(row).to_string();
    let t = |c: usize| times(batch, c).value(row);
    match event {
        Event::Person(p) => {
            assert_eq!(
                (i(0), s(1), s(2), s(3), s(4), s(5), t(6), s(7)),
                (
                    p.id as i64,
                    p.name.clone(),
                    p.email_address.clone(),
                    p.credit_card.clone(),
                    p.city.clone(),
                    p.state.clone(),
                    p.date_time as i64,
                    p.extra.clone()
                )
            );
        }
        Event::Auction(a) => {
            assert_eq!(
                (i(0), s(1), s(2), i(3), i(4), t(5), t(6), i(7), i(8), s(9)),
                (
                    a.id as i64,
                    a.item_name.clone(),
                    a.description.clone(),
                    a.initial_bid as i64,
                    a.reserve as i64,
                    a.date_time as i64,
                    a.expires as i64,
                    a.seller as i64,
                    a.category as i64,
                    a.extra.clone()
                )
            );
        }
        Event::Bid(b) => {
            assert_eq!(
                (i(0), i(1), i(2), s(3), s(4), t(5), s(6)),
                (
                    b.auction as i64,
                    b.bidder as i64,
                    b.price as i64,
                    b.channel.clone(),
                    b.url.clone(),
                    b.date_time as i64,
                    b.extra.clone()
                )
            );
        }
    }
}

fn table_of(event: &Event) -> NexmarkTable {
    match event {
        Event::Person(_) => NexmarkTable::Person,
        Event::Auction(_) => NexmarkTable::Auction,
        Event::Bid(_) => NexmarkTable::Bid,
    }
}

/// Checks every table of partition `partition` of a source with `settings` (the table field
/// is replaced) against the crate's generator over the same offsets.
fn assert_equals_crate(settings: &NexmarkSettings, partition: u32, max_rows: usize) {
    let config = NexmarkConfig {
        base_time: settings.base_time as u64,
        first_event_id: settings.first_event_id as usize,
        out_of_order_group_size: settings.out_of_order_group_size as usize,
        first_rate: settings
            .rate
            .map(|r| r.round() as usize)
            .unwrap_or(DEFAULT_EVENT_RATE as usize),
        next_rate: settings
            .rate
            .map(|r| r.round() as usize)
            .unwrap_or(DEFAULT_EVENT_RATE as usize),
        ..NexmarkConfig::default()
    };
    let events = settings.events.unwrap();
    let parts = u64::from(settings.partitions);
    let offsets = (events - u64::from(partition)).div_ceil(parts) as usize;
    let expected: Vec<Event> = EventGenerator::new(config)
        .with_offset(u64::from(partition))
        .with_step(parts)
        .take(offsets)
        .collect();
    for table in NexmarkTable::ALL {
        let mut source = NexmarkSource::new(
            &table.schema(),
            &NexmarkSettings {
                table,
                ..settings.clone()
            },
        )
        .unwrap();
        let batches = drain(&mut source, partition, max_rows);
        let mut wanted = expected.iter().filter(|e| table_of(e) == table);
        let mut rows = 0;
        for batch in &batches {
            for row in 0..batch.num_rows() {
                let event = wanted
                    .next()
                    .unwrap_or_else(|| panic!("{} has more rows than the crate", table.name()));
                assert_row_is(batch, row, event);
                rows += 1;
            }
        }
        assert!(
            wanted.next().is_none(),
            "{} has fewer rows ({rows}) than the crate",
            table.name()
        );
        // The position is the partition's first offset past the end.
        assert_eq!(
            source.position(partition),
            serde_json::json!(u64::from(partition) + offsets as u64 * parts)
        );
    }
}

#[test]
fn nexmark_source_equals_the_nexmark_crate_on_the_first_million_events() {
    assert_equals_crate(&settings(NexmarkTable::Bid, 1_000_000), 0, 8192);
}

#[test]
fn partitions_out_of_order_groups_ids_and_rates_follow_the_crate() {
    let custom = NexmarkSettings {
        partitions: 3,
        first_event_id: 500,
        base_time: 1_700_000_000_000,
        rate: Some(2_500.0),
        out_of_order_group_size: 100,
        ..settings(NexmarkTable::Bid, 20_000)
    };
    // The crate has no pacing; an unpaced source with the same event-time spacing is
    // compared, pacing being tested apart.
    let unpaced_spacing = NexmarkSettings {
        rate: None,
        ..custom.clone()
    };
    for p in 0..3 {
        assert_equals_crate(&unpaced_spacing, p, 7);
    }
    let paced = NexmarkSource::new(&NexmarkTable::Bid.schema(), &custom).unwrap();
    assert_eq!(paced.schedule.inter_event_delay_us, 400.0);
}

#[test]
fn tables_split_the_stream_one_to_three_to_forty_six() {
    let counts: Vec<usize> = NexmarkTable::ALL
        .into_iter()
        .map(|table| {
            let mut s = NexmarkSource::new(&table.schema(), &settings(table, 5_000)).unwrap();
            drain(&mut s, 0, 1000).iter().map(|b| b.num_rows()).sum()
        })
        .collect();
    assert_eq!(counts, vec![100, 300, 4600]);
}

#[test]
fn a_seek_replays_the_same_rows() {
    let mut s = NexmarkSource::new(
        &NexmarkTable::Bid.schema(),
        &NexmarkSettings {
            partitions: 2,
            ..settings(NexmarkTable::Bid, 1_000)
        },
    )
    .unwrap();
    let SourcePoll::Batch { data: first, .. } = s.poll(1, 10, 0).unwrap() else {
        panic!("expected rows")
    };
    let position = s.position(1);
    let SourcePoll::Batch { data: second, .. } = s.poll(1, 10, 0).unwrap() else {
        panic!("expected rows")
    };
    assert_ne!(first, second);
    s.seek(1, &position).unwrap();
    let SourcePoll::Batch { data: replayed, .. } = s.poll(1, 10, 0).unwrap() else {
        panic!("expected rows")
    };
    assert_eq!(replayed, second);
    assert!(
        s.seek(1, &serde_json::json!(4)).is_err(),
        "offset 4 belongs to partition 0"
    );
}

#[test]
fn a_rate_paces_events_by_processing_time() {
    // 1000 events per second: offset k is due 1 ms after offset k - 1.
    let mut s = NexmarkSource::new(
        &NexmarkTable::Bid.schema(),
        &NexmarkSettings {
            rate: Some(1000.0),
            ..settings(NexmarkTable::Bid, 1_000)
        },
    )
    .unwrap();
    assert!(matches!(
        s.poll(0, 100, 5_000).unwrap(),
        SourcePoll::Pending
    ));
    assert_eq!(s.next_poll_time(), Some(5_001));
    // By 5_010, offsets 0..10 are due: offset 0 is a person, 1..=3 auctions, 4..=9 bids.
    let SourcePoll::Batch { data, .. } = s.poll(0, 100, 5_010).unwrap() else {
        panic!("expected rows")
    };
    assert_eq!(data.num_rows(), 6);
    assert_eq!(s.position(0), serde_json::json!(10));
    // Event times are 1 ms apart from the base time.
    assert_eq!(times(&data, 5).value(0), NEXMARK_BASE_TIME + 4);
}

#[test]
fn in_wall_clock_mode_an_event_is_due_at_its_event_time() {
    // 1000 events per second from base time 1_000_000: offset k's event time is base + k.
    let mut s = NexmarkSource::new(
        &NexmarkTable::Bid.schema(),
        &NexmarkSettings {
            rate: Some(1000.0),
            base_time: 1_000_000,
            realtime: true,
            ..settings(NexmarkTable::Bid, 1_000)
        },
    )
    .unwrap();
    // The first poll comes 10 ms late: the events due by then come at once.
    let SourcePoll::Batch { data, .. } = s.poll(0, 100, 1_000_010).unwrap() else {
        panic!("expected rows")
    };
    assert_eq!(data.num_rows(), 6);
    assert_eq!(times(&data, 5).value(5), 1_000_009);
    assert!(matches!(
        s.poll(0, 100, 1_000_010).unwrap(),
        SourcePoll::Pending
    ));
    assert_eq!(s.next_poll_time(), Some(1_000_011));
}

#[test]
fn a_source_refuses_a_schema_that_is_not_its_tables() {
    let err = NexmarkSource::new(
        &NexmarkTable::Person.schema(),
        &settings(NexmarkTable::Bid, 10),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("bid table has the schema"), "{err}");
}
