//! The Nexmark benchmark's event stream, generated straight into Arrow arrays.
//!
//! The generator follows the Nexmark specification as the `nexmark` crate (RisingWave's
//! `nexmark-rs` 0.2, itself a port of Beam's and Flink's Java generator) implements it, with
//! its default configuration:
//!
//! - event number `n` is a person when `n % 50 == 0`, an auction when `n % 50` is 1..=3, a
//!   bid otherwise (the proportion 1:3:46);
//! - with an out-of-order group size `g`, the event at offset `k` has number
//!   `(k / g) * g + (k * 953) % g`;
//! - its id is `first_event_id + n`, and every random field is drawn from a `SmallRng`
//!   seeded with that id, in the crate's order (so the same rand version is used);
//! - its time is `base_time + round(n * delay_us / 1000)` in `f32`, `delay_us = 1e6 / rate`;
//! - person and auction ids count up from 1000 as such events occur; sellers, bidders and
//!   bid auctions are "hot" (the first of the latest batch of 100) with the crate's ratios,
//!   otherwise drawn among the active people / in-flight auctions;
//! - channels and URLs come from four hot channels or the crate's table of 10,000
//!   `channel-<i>` entries.
//!
//! The crate builds one `String` per field per event; here each field is drawn into a reused
//! buffer and appended to an Arrow builder, and events of other tables are skipped without
//! drawing anything. `nexmark_source_equals_the_nexmark_crate_on_the_first_million_events`
//! checks the result against the crate.

use super::pacing::RatePacer;
use super::{Source, SourcePoll};
use crate::batch;
use crate::error::{ExecError, ExecResult};
use arrow::array::{ArrayRef, Int64Builder, StringBuilder, TimestampMillisecondBuilder};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use weir_model::io::NexmarkTable;
use weir_model::time::Timestamp;
use weir_model::Schema;

/// People, auctions and bids per 50 events.
const PERSON_PROPORTION: usize = 1;
const AUCTION_PROPORTION: usize = 3;
const PROPORTION_DENOMINATOR: usize = 50;
const FIRST_PERSON_ID: usize = 1000;
const FIRST_AUCTION_ID: usize = 1000;
const FIRST_CATEGORY_ID: usize = 10;
const NUM_CATEGORIES: usize = 5;
/// People considered active when choosing a seller or bidder.
const ACTIVE_PEOPLE: usize = 1000;
/// Auctions considered in flight when choosing an auction to bid on.
const IN_FLIGHT_AUCTIONS: usize = 100;
const PERSON_ID_LEAD: usize = 10;
const AUCTION_ID_LEAD: usize = 10;
/// One in this many auctions has a random seller; the others a hot seller.
const HOT_SELLER_RATIO: usize = 4;
/// One in this many bids is for a random auction; the others for a hot auction.
const HOT_AUCTION_RATIO: usize = 2;
/// One in this many bids is by a random bidder; the others by a hot bidder.
const HOT_BIDDER_RATIO: usize = 4;
/// One in this many bids uses a random channel; the others a hot channel.
const HOT_CHANNEL_RATIO: usize = 2;
/// Hot people and auctions are the first of each batch of this many.
const HOT_BATCH: usize = 100;
const AVG_PERSON_BYTE_SIZE: usize = 200;
const AVG_AUCTION_BYTE_SIZE: usize = 500;
const AVG_BID_BYTE_SIZE: usize = 100;
/// Events per second the event times are spaced for when no rate is given.
pub const DEFAULT_EVENT_RATE: u64 = 10_000;
const NUM_CHANNELS: usize = 10_000;
const MIN_STRING_LENGTH: usize = 3;

const US_STATES: [&str; 6] = ["az", "ca", "id", "or", "wa", "wy"];
const US_CITIES: [&str; 10] = [
    "phoenix",
    "los angeles",
    "san francisco",
    "boise",
    "portland",
    "bend",
    "redmond",
    "seattle",
    "kent",
    "cheyenne",
];
const FIRST_NAMES: [&str; 11] = [
    "peter", "paul", "luke", "john", "saul", "vicky", "kate", "julie", "sarah", "deiter", "walter",
];
const LAST_NAMES: [&str; 9] = [
    "shultz", "abrams", "spencer", "white", "bartels", "walton", "smith", "jones", "noris",
];
const HOT_CHANNELS: [&str; 4] = ["Google", "Facebook", "Baidu", "Apple"];

/// The kind of a Nexmark event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NexmarkEventKind {
    /// A new person.
    Person,
    /// A new auction.
    Auction,
    /// A bid.
    Bid,
}

impl NexmarkEventKind {
    fn of_table(table: NexmarkTable) -> Self {
        match table {
            NexmarkTable::Person => NexmarkEventKind::Person,
            NexmarkTable::Auction => NexmarkEventKind::Auction,
            NexmarkTable::Bid => NexmarkEventKind::Bid,
        }
    }
}

/// Channel names and URLs: the four hot ones, and the 10,000 others.
struct Channels {
    hot_urls: Vec<String>,
    others: Vec<(String, String)>,
}

fn channels() -> &'static Channels {
    static CHANNELS: OnceLock<Channels> = OnceLock::new();
    CHANNELS.get_or_init(|| Channels {
        hot_urls: (0..HOT_CHANNELS.len() as u64).map(base_url).collect(),
        others: (0..NUM_CHANNELS)
            .map(|i| {
                let mut url = base_url(i as u64);
                let mut rng = SmallRng::seed_from_u64(i as u64);
                if rng.gen_range(0..10) > 0 {
                    url.push_str("&channel_id=");
                    url.push_str(&((i as i32).reverse_bits() as i64).abs().to_string());
                }
                (format!("channel-{i}"), url)
            })
            .collect(),
    })
}

/// An item URL with three random directory names.
fn base_url(seed: u64) -> String {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut dirs = [String::new(), String::new(), String::new()];
    for dir in &mut dirs {
        let len = rng.gen_range(MIN_STRING_LENGTH..5);
        for _ in 0..len {
            dir.push(if rng.gen_range(0..13) == 0 {
                '_'
            } else {
                rng.gen_range(b'a'..=b'z') as char
            });
        }
    }
    format!(
        "https://www.nexmark.com/{}/{}/{}/item.htm?query=1",
        dirs[0], dirs[1], dirs[2]
    )
}

/// Appends `len` random lowercase letters to `buf`.
fn push_letters(rng: &mut SmallRng, buf: &mut String, len: usize) {
    for _ in 0..len {
        buf.push(rng.gen_range(b'a'..=b'z') as char);
    }
}

/// The padding that brings an event to about `average` bytes.
fn push_extra(rng: &mut SmallRng, buf: &mut String, current_size: usize, average: usize) {
    if current_size > average {
        return;
    }
    let wanted = average - current_size;
    let delta = (wanted + 2) / 5;
    let len = wanted - delta
        + if delta == 0 {
            0
        } else {
            rng.gen_range(0..2 * delta)
        };
    push_letters(rng, buf, len);
}

/// A price in cents, log-uniform between 1 and 1,000,000 dollars.
fn price(rng: &mut SmallRng) -> usize {
    (10.0_f32.powf(rng.gen::<f32>() * 6.0) * 100.0).round() as usize
}

/// The latest person id (from 0) at event id `event_id`.
// The specification's formula, kept for any proportion (with one person per 50 events the
// `min` is always 0).
#[allow(clippy::unnecessary_min_or_max)]
fn last_person_id(event_id: usize) -> usize {
    let epoch = event_id / PROPORTION_DENOMINATOR;
    let offset = (event_id % PROPORTION_DENOMINATOR).min(PERSON_PROPORTION - 1);
    epoch * PERSON_PROPORTION + offset
}

/// A random active person id (from 0).
fn next_person_id(event_id: usize, rng: &mut SmallRng) -> usize {
    let people = last_person_id(event_id) + 1;
    let active = people.min(ACTIVE_PEOPLE);
    people - active + rng.gen_range(0..active + PERSON_ID_LEAD)
}

/// The latest auction id (from 0) at event id `event_id`.
fn last_auction_id(event_id: usize) -> usize {
    let mut epoch = event_id / PROPORTION_DENOMINATOR;
    let mut offset = event_id % PROPORTION_DENOMINATOR;
    if offset < PERSON_PROPORTION {
        // The crate underflows here for an event id below 50 (only reachable with a
        // `first_event_id` that is not a multiple of 50); saturate instead.
        epoch = epoch.saturating_sub(1);
        offset = AUCTION_PROPORTION - 1;
    } else if PERSON_PROPORTION + AUCTION_PROPORTION <= offset {
        offset = AUCTION_PROPORTION - 1;
    } else {
        offset -= PERSON_PROPORTION;
    }
    epoch * AUCTION_PROPORTION + offset
}

/// A random in-flight auction id (from 0).
fn next_auction_id(event_id: usize, rng: &mut SmallRng) -> usize {
    let max_auction = last_auction_id(event_id);
    let min_auction = max_auction.saturating_sub(IN_FLIGHT_AUCTIONS);
    min_auction + rng.gen_range(0..max_auction - min_auction + 1 + AUCTION_ID_LEAD)
}

/// Where events fall in time and in which order: the parts of the generator configuration a
/// source can set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NexmarkSchedule {
    /// Id of event number 0.
    pub first_event_id: u64,
    /// Event time of event number 0 (ms).
    pub base_time: i64,
    /// Microseconds of event time between consecutive events.
    pub inter_event_delay_us: f32,
    /// Events are shuffled within groups of this many.
    pub out_of_order_group_size: u64,
}

impl NexmarkSchedule {
    /// The schedule of a stream of `events_per_second`, as the crate's `first_rate`.
    pub fn new(
        first_event_id: u64,
        base_time: i64,
        events_per_second: u64,
        out_of_order_group_size: u64,
    ) -> Self {
        NexmarkSchedule {
            first_event_id,
            base_time,
            inter_event_delay_us: 1_000_000_f32 / events_per_second.max(1) as f32,
            out_of_order_group_size: out_of_order_group_size.max(1),
        }
    }

    /// The number of the event at `offset` in generation order.
    pub fn event_number(&self, offset: u64) -> u64 {
        let g = self.out_of_order_group_size;
        (offset / g) * g + (offset.wrapping_mul(953)) % g
    }

    /// The kind of event number `n`.
    pub fn kind(n: u64) -> NexmarkEventKind {
        let rem = (n % PROPORTION_DENOMINATOR as u64) as usize;
        if rem < PERSON_PROPORTION {
            NexmarkEventKind::Person
        } else if rem < PERSON_PROPORTION + AUCTION_PROPORTION {
            NexmarkEventKind::Auction
        } else {
            NexmarkEventKind::Bid
        }
    }

    /// The event time of event number `n` (computed in `f32`, as the crate does).
    pub fn timestamp(&self, n: u64) -> i64 {
        self.base_time + ((n as f32 * self.inter_event_delay_us) / 1000.0).round() as i64
    }
}

/// Arrow builders for one table's columns, filled event by event.
// One builder lives per poll, never in a collection: the variants' size difference costs
// nothing.
#[allow(clippy::large_enum_variant)]
enum TableBuilder {
    Person {
        id: Int64Builder,
        name: StringBuilder,
        email_address: StringBuilder,
        credit_card: StringBuilder,
        city: StringBuilder,
        state: StringBuilder,
        date_time: TimestampMillisecondBuilder,
        extra: StringBuilder,
    },
    Auction {
        id: Int64Builder,
        item_name: StringBuilder,
        description: StringBuilder,
        initial_bid: Int64Builder,
        reserve: Int64Builder,
        date_time: TimestampMillisecondBuilder,
        expires: TimestampMillisecondBuilder,
        seller: Int64Builder,
        category: Int64Builder,
        extra: StringBuilder,
    },
    Bid {
        auction: Int64Builder,
        bidder: Int64Builder,
        price: Int64Builder,
        channel: StringBuilder,
        url: StringBuilder,
        date_time: TimestampMillisecondBuilder,
        extra: StringBuilder,
    },
}

impl TableBuilder {
    fn new(table: NexmarkTable, rows: usize) -> Self {
        let ints = || Int64Builder::with_capacity(rows);
        let times = || TimestampMillisecondBuilder::with_capacity(rows);
        let text = |bytes: usize| StringBuilder::with_capacity(rows, rows * bytes);
        match table {
            NexmarkTable::Person => TableBuilder::Person {
                id: ints(),
                name: text(12),
                email_address: text(17),
                credit_card: text(19),
                city: text(8),
                state: text(2),
                date_time: times(),
                extra: text(140),
            },
            NexmarkTable::Auction => TableBuilder::Auction {
                id: ints(),
                item_name: text(20),
                description: text(100),
                initial_bid: ints(),
                reserve: ints(),
                date_time: times(),
                expires: times(),
                seller: ints(),
                category: ints(),
                extra: text(332),
            },
            NexmarkTable::Bid => TableBuilder::Bid {
                auction: ints(),
                bidder: ints(),
                price: ints(),
                channel: text(10),
                url: text(70),
                date_time: times(),
                extra: text(68),
            },
        }
    }

    /// Draws event number `n` (of this builder's table) and appends it.
    fn append(&mut self, schedule: &NexmarkSchedule, n: u64, buf: &mut String) {
        let event_id = (schedule.first_event_id + n) as usize;
        let time = schedule.timestamp(n);
        let rng = &mut SmallRng::seed_from_u64(event_id as u64);
        match self {
            TableBuilder::Person {
                id,
                name,
                email_address,
                credit_card,
                city,
                state,
                date_time,
                extra,
            } => {
                id.append_value((last_person_id(event_id) + FIRST_PERSON_ID) as i64);
                let first = FIRST_NAMES.choose(rng).expect("names");
                let last = LAST_NAMES.choose(rng).expect("names");
                buf.clear();
                buf.push_str(first);
                buf.push(' ');
                buf.push_str(last);
                let name_len = buf.len();
                name.append_value(&*buf);
                buf.clear();
                push_letters(rng, buf, 7);
                buf.push('@');
                push_letters(rng, buf, 5);
                buf.push_str(".com");
                let email_len = buf.len();
                email_address.append_value(&*buf);
                buf.clear();
                for group in 0..4 {
                    if group > 0 {
                        buf.push(' ');
                    }
                    let digits: i32 = rng.gen_range(0..10000);
                    use std::fmt::Write;
                    let _ = write!(buf, "{digits:04}");
                }
                let card_len = buf.len();
                credit_card.append_value(&*buf);
                let city_name = US_CITIES.choose(rng).expect("cities");
                let state_name = US_STATES.choose(rng).expect("states");
                city.append_value(city_name);
                state.append_value(state_name);
                date_time.append_value(time);
                let size = 8 + name_len + email_len + card_len + city_name.len() + state_name.len();
                buf.clear();
                push_extra(rng, buf, size, AVG_PERSON_BYTE_SIZE);
                extra.append_value(&*buf);
            }
            TableBuilder::Auction {
                id,
                item_name,
                description,
                initial_bid,
                reserve,
                date_time,
                expires,
                seller,
                category,
                extra,
            } => {
                id.append_value((last_auction_id(event_id) + FIRST_AUCTION_ID) as i64);
                buf.clear();
                push_letters(rng, buf, 20);
                item_name.append_value(&*buf);
                buf.clear();
                push_letters(rng, buf, 100);
                description.append_value(&*buf);
                let initial = price(rng);
                initial_bid.append_value(initial as i64);
                reserve.append_value((initial + price(rng)) as i64);
                // The auction runs until up to twice the time until `IN_FLIGHT_AUCTIONS`
                // more auctions have started.
                let events_for_auctions =
                    (IN_FLIGHT_AUCTIONS * PROPORTION_DENOMINATOR) / AUCTION_PROPORTION;
                let future = schedule.timestamp(n + events_for_auctions as u64);
                let horizon = (future - time) as u64;
                let length = 1 + rng.gen_range(0..(horizon * 2).max(1));
                date_time.append_value(time);
                expires.append_value(time + length as i64);
                let hot = rng.gen_range(0..HOT_SELLER_RATIO) > 0;
                let seller_id = if hot {
                    (last_person_id(event_id) / HOT_BATCH) * HOT_BATCH
                } else {
                    next_person_id(event_id, rng)
                };
                seller.append_value((seller_id + FIRST_PERSON_ID) as i64);
                let category_id = FIRST_CATEGORY_ID + rng.gen_range(0..NUM_CATEGORIES);
                category.append_value(category_id as i64);
                buf.clear();
                push_extra(rng, buf, 8 + 20 + 100 + 40, AVG_AUCTION_BYTE_SIZE);
                extra.append_value(&*buf);
            }
            TableBuilder::Bid {
                auction,
                bidder,
                price: bid_price,
                channel,
                url,
                date_time,
                extra,
            } => {
                let auction_id = if 0 < rng.gen_range(0..HOT_AUCTION_RATIO) {
                    (last_auction_id(event_id) / HOT_BATCH) * HOT_BATCH
                } else {
                    next_auction_id(event_id, rng)
                };
                let bidder_id = if 0 < rng.gen_range(0..HOT_BIDDER_RATIO) {
                    // The second of the batch, so hot bidders and hot sellers differ.
                    (last_person_id(event_id) / HOT_BATCH) * HOT_BATCH + 1
                } else {
                    next_person_id(event_id, rng)
                };
                auction.append_value((auction_id + FIRST_AUCTION_ID) as i64);
                bidder.append_value((bidder_id + FIRST_PERSON_ID) as i64);
                bid_price.append_value(price(rng) as i64);
                let all = channels();
                if rng.gen_range(0..HOT_CHANNEL_RATIO) > 0 {
                    let i = rng.gen_range(0..HOT_CHANNELS.len());
                    channel.append_value(HOT_CHANNELS[i]);
                    url.append_value(&all.hot_urls[i]);
                } else {
                    let (name, address) = all.others.choose(rng).expect("channels");
                    channel.append_value(name);
                    url.append_value(address);
                }
                date_time.append_value(time);
                buf.clear();
                push_extra(rng, buf, 32, AVG_BID_BYTE_SIZE);
                extra.append_value(&*buf);
            }
        }
    }

    fn finish(self) -> Vec<ArrayRef> {
        fn a<B: arrow::array::ArrayBuilder>(mut b: B) -> ArrayRef {
            b.finish()
        }
        match self {
            TableBuilder::Person {
                id,
                name,
                email_address,
                credit_card,
                city,
                state,
                date_time,
                extra,
            } => vec![
                a(id),
                a(name),
                a(email_address),
                a(credit_card),
                a(city),
                a(state),
                a(date_time),
                a(extra),
            ],
            TableBuilder::Auction {
                id,
                item_name,
                description,
                initial_bid,
                reserve,
                date_time,
                expires,
                seller,
                category,
                extra,
            } => vec![
                a(id),
                a(item_name),
                a(description),
                a(initial_bid),
                a(reserve),
                a(date_time),
                a(expires),
                a(seller),
                a(category),
                a(extra),
            ],
            TableBuilder::Bid {
                auction,
                bidder,
                price,
                channel,
                url,
                date_time,
                extra,
            } => vec![
                a(auction),
                a(bidder),
                a(price),
                a(channel),
                a(url),
                a(date_time),
                a(extra),
            ],
        }
    }
}

/// The most rows one poll returns, whatever the runner asks: an unbounded, unpaced source
/// would otherwise fill memory in one batch.
const MAX_ROWS_PER_POLL: usize = 1 << 16;

/// Offsets passed by every Nexmark source of the process.
static OFFSETS_PASSED: AtomicU64 = AtomicU64::new(0);

/// Rows of one Nexmark table (see the module documentation), split over `partitions`: the
/// event at offset `k` of the stream goes to partition `k % partitions`, and a partition
/// skips the events of other tables.
///
/// With `rate` (events per second of the whole stream, all tables), the offset `k` is due
/// once `rate * (now - first_poll) / 1000 > k - base`, as for
/// [`SequenceSource`](super::SequenceSource). A poll returns at most 65,536 rows. Position:
/// the next offset of the partition, so a seek replays exactly the same rows.
#[derive(Debug)]
pub struct NexmarkSource {
    table: NexmarkTable,
    schema: Schema,
    schedule: NexmarkSchedule,
    events: Option<u64>,
    /// Per partition: the next offset to generate.
    next: Vec<u64>,
    /// Per partition: polled or sought by this instance (the rate clock starts from these;
    /// a runner may open the source once per reader, each reading some partitions).
    used: Vec<bool>,
    /// Paces output to the target rate.
    pacer: RatePacer,
    /// Reused text buffer.
    buf: String,
}

/// The settings of a [`NexmarkSource`], as the pipeline gives them.
#[derive(Debug, Clone, PartialEq)]
pub struct NexmarkSettings {
    /// Which table to emit.
    pub table: NexmarkTable,
    /// Events of the whole stream; unbounded when absent.
    pub events: Option<u64>,
    /// Number of partitions.
    pub partitions: u32,
    /// Id of the first event.
    pub first_event_id: u64,
    /// Event time of the first event (ms).
    pub base_time: i64,
    /// Events per second (pacing and event-time spacing).
    pub rate: Option<f64>,
    /// Out-of-order group size (1: in order).
    pub out_of_order_group_size: u64,
    /// Wall-clock mode: an event is due when the processing-time clock reaches its event
    /// time (pacing anchored at `base_time`), not `1 / rate` after the previous one counted
    /// from the first poll.
    pub realtime: bool,
}

impl NexmarkSource {
    /// A source of `settings.table`; fails when `schema` is not that table's schema, there
    /// are no partitions, or the rate is not a positive number.
    pub fn new(schema: &Schema, settings: &NexmarkSettings) -> ExecResult<Self> {
        let bad = |m: String| ExecError::transform("ReadFromNexmark", m);
        let expected = settings.table.schema();
        if *schema != expected {
            return Err(bad(format!(
                "the {} table has the schema {expected}, not {schema}",
                settings.table.name()
            )));
        }
        if settings.partitions == 0 {
            return Err(bad("a Nexmark source needs at least one partition".into()));
        }
        if let Some(r) = settings.rate {
            if !(r.is_finite() && r > 0.0) {
                return Err(bad(format!(
                    "the rate must be a positive number of events per second, not {r}"
                )));
            }
        }
        let events_per_second = settings
            .rate
            .map(|r| r.round().max(1.0) as u64)
            .unwrap_or(DEFAULT_EVENT_RATE);
        Ok(NexmarkSource {
            table: settings.table,
            schema: expected,
            schedule: NexmarkSchedule::new(
                settings.first_event_id,
                settings.base_time,
                events_per_second,
                settings.out_of_order_group_size,
            ),
            events: settings.events,
            next: (0..u64::from(settings.partitions)).collect(),
            used: vec![false; settings.partitions as usize],
            // Anchored at the rate the event times are spaced for, so that they never drift
            // from the clock.
            pacer: match settings.rate {
                Some(_) if settings.realtime => {
                    RatePacer::anchored(events_per_second as f64, settings.base_time)
                }
                rate => RatePacer::new(rate),
            },
            buf: String::with_capacity(128),
        })
    }

    /// Events (of any table) that every Nexmark source of this process has passed so far,
    /// for progress reports; a stream read by `k` table sources counts each event `k` times.
    pub fn events_passed_in_process() -> u64 {
        OFFSETS_PASSED.load(Ordering::Relaxed)
    }

    fn parts(&self) -> u64 {
        self.next.len() as u64
    }

    fn ended(&self, p: usize) -> bool {
        self.events.is_some_and(|c| self.next[p] >= c)
    }
}

impl Source for NexmarkSource {
    fn partitions(&self) -> u32 {
        self.next.len() as u32
    }

    fn poll(&mut self, partition: u32, max_rows: usize, now: Timestamp) -> ExecResult<SourcePoll> {
        let p = partition as usize;
        if p >= self.next.len() {
            return Err(ExecError::Internal(format!(
                "a Nexmark source of {} partitions has no partition {p}",
                self.parts()
            )));
        }
        self.used[p] = true;
        let base = (0..self.next.len())
            .filter(|q| self.used[*q])
            .map(|q| self.next[q])
            .min()
            .unwrap_or(0);
        self.pacer.start(now, base);
        if self.ended(p) {
            return Ok(SourcePoll::Ended);
        }
        let limit = self.pacer.due(now).min(self.events.unwrap_or(u64::MAX));
        let max_rows = max_rows.clamp(1, MAX_ROWS_PER_POLL);
        let wanted = NexmarkEventKind::of_table(self.table);
        let step = self.parts();
        let mut builder = TableBuilder::new(self.table, max_rows.min(8192));
        let mut rows = 0;
        let mut offset = self.next[p];
        while offset < limit && rows < max_rows {
            let n = self.schedule.event_number(offset);
            if NexmarkSchedule::kind(n) == wanted {
                builder.append(&self.schedule, n, &mut self.buf);
                rows += 1;
            }
            offset += step;
        }
        OFFSETS_PASSED.fetch_add((offset - self.next[p]) / step, Ordering::Relaxed);
        self.next[p] = offset;
        if rows == 0 {
            return Ok(if self.ended(p) {
                SourcePoll::Ended
            } else {
                SourcePoll::Pending
            });
        }
        let data = batch::with_default_meta(&self.schema, builder.finish(), rows)?;
        Ok(SourcePoll::Batch {
            data,
            dead_letters: None,
        })
    }

    fn position(&self, partition: u32) -> serde_json::Value {
        match self.next.get(partition as usize) {
            Some(offset) => serde_json::Value::from(*offset),
            None => serde_json::Value::Null,
        }
    }

    fn seek(&mut self, partition: u32, position: &serde_json::Value) -> ExecResult<()> {
        let p = partition as usize;
        let parts = self.parts();
        // The partition's offsets are p, p + P, p + 2P, ...
        let offset = position
            .as_u64()
            .filter(|k| p < self.next.len() && *k >= p as u64 && (*k - p as u64) % parts == 0)
            .ok_or_else(|| {
                ExecError::Internal(format!(
                    "`{position}` is not a position of Nexmark partition {partition}"
                ))
            })?;
        self.next[p] = offset;
        self.used[p] = true;
        // The rate clock restarts from the restored positions at the next poll.
        self.pacer.reset();
        Ok(())
    }

    fn set_replaying(&mut self, replaying: bool) {
        self.pacer.set_replaying(replaying);
    }

    fn next_poll_time(&self) -> Option<Timestamp> {
        let next = (0..self.next.len())
            .filter(|p| !self.ended(*p))
            .map(|p| self.next[p])
            .min()?;
        self.pacer.due_time(next)
    }
}

#[cfg(test)]
mod tests;
