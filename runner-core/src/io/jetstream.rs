//! NATS JetStream: a source reading a stream by sequence number and an idempotent sink
//! publishing with message ids (async-nats on a private [`BlockingRuntime`]).

use super::blocking::BlockingRuntime;
use super::format::RowFormat;
use super::records::RecordCollector;
use super::{Sink, Source, SourcePoll};
use crate::error::{ExecError, ExecResult};
use arrow::record_batch::RecordBatch;
use async_nats::jetstream::{self, consumer, message::PublishMessage, stream::Stream};
use futures_util::StreamExt;
use serde_json::Value;
use std::time::Duration;
use weir_model::io::{
    BadRecordPolicy, DeliveryGuarantee, FileFormat, JetStreamSourceSpec, SinkMetadata, StreamSetup,
};
use weir_model::time::Timestamp;
use weir_model::Schema;

/// How long an idle ephemeral consumer of the source lives on the server after its last
/// fetch (the server deletes it then).
const CONSUMER_INACTIVE: Duration = Duration::from_secs(60);

/// How long one fetch may take before the source treats the server as unreachable (a fetch
/// to a consumer the server lost, e.g. after a restart, would otherwise wait for ever).
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a source keeps retrying a server it cannot read from before the run fails
/// (a restart of the server, a network blip); the wait between attempts grows from 100 ms.
const OUTAGE_BUDGET: Duration = Duration::from_secs(20);

/// How long a sink waits for the server's acknowledgement of one batch's messages.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);

fn nats_err(what: &str, e: impl std::fmt::Display) -> ExecError {
    ExecError::io(what.to_string(), std::io::Error::other(e.to_string()))
}

/// Connects to `url`; errors name `what` and the URL.
fn connect(rt: &BlockingRuntime, url: &str, what: &str) -> ExecResult<jetstream::Context> {
    let target = url.to_string();
    // The context spawns a task: create it on the runtime.
    rt.block_on(async move { async_nats::connect(target).await.map(jetstream::new) })
        .map_err(|e| nats_err(&format!("{what}: cannot connect to NATS at {url}"), e))
}

/// Rows from the JSON messages of a JetStream stream.
///
/// - Partitions: one per subject filter of `subjects` (in order), or one over the whole
///   stream. A subject filter must be one of the stream's subjects (or a subset of them).
/// - Position per partition: `{"seq": n}`, the stream sequence number of the last message
///   returned (0: none); a seek resumes after it, so a restored run replays exactly the
///   messages after its checkpoint or offset-log entry.
/// - Each message's payload is one JSON object, converted like a JSON-lines record (a
///   malformed one fails the run naming stream and sequence number, or becomes a dead
///   letter). With `message_timestamp`, that column holds the time the server stored the
///   message (milliseconds), for `AssignTimestamps`; otherwise take event time from a field.
/// - Bounded: each partition ends at the last message it had when the source was created;
///   unbounded: an empty fetch is [`SourcePoll::Pending`].
///
/// Messages are read through an ephemeral pull consumer per partition (no acks; the server
/// forgets it a minute after its last fetch), created at the partition's position.
///
/// A fetch that fails or times out (the server restarting, a network blip) is retried with
/// a fresh consumer after a growing wait, for up to 20 s; then the run
/// fails naming the server. A bounded partition whose fetch comes back empty before its end
/// is fetched once more through a fresh consumer (a restarted server forgets ephemeral
/// consumers) before its messages are taken as removed by the stream's limits.
pub struct JetStreamSource {
    node: String,
    spec: JetStreamSourceSpec,
    schema: Schema,
    policy: BadRecordPolicy,
    stream: Stream,
    partitions: Vec<Partition>,
    outage: Option<Outage>,
    // Last: the connection's tasks stop with it.
    rt: BlockingRuntime,
}

struct Partition {
    filter: Option<String>,
    /// Stream sequence of the last message returned.
    seq: u64,
    /// Bounded: the last sequence to read.
    end: Option<u64>,
    consumer: Option<consumer::PullConsumer>,
    ended: bool,
    /// Bounded: the last fetch came back empty before the end, and the consumer was made
    /// afresh to tell a lost consumer from messages removed by the stream's limits.
    empty_before_end: bool,
}

/// A source's trouble reaching the server: since when, the last error, the next try.
struct Outage {
    since: std::time::Instant,
    error: String,
    backoff: Duration,
    retry_at: std::time::Instant,
}

impl std::fmt::Debug for JetStreamSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JetStreamSource")
            .field("node", &self.node)
            .field("url", &self.spec.url)
            .field("stream", &self.spec.stream)
            .finish()
    }
}

impl JetStreamSource {
    /// A source for node `node` reading rows of `schema` (which includes the
    /// `message_timestamp` column when there is one).
    pub fn new(
        node: &str,
        spec: &JetStreamSourceSpec,
        schema: &Schema,
        bad_records: &BadRecordPolicy,
    ) -> ExecResult<Self> {
        let what = format!("ReadFromJetStream `{node}`");
        let rt = BlockingRuntime::new(&what)?;
        let js = connect(&rt, &spec.url, &what)?;
        let name = spec.stream.clone();
        let mut stream = rt
            .block_on(async move { js.get_stream(name).await })
            .map_err(|e| {
                nats_err(
                    &format!("{what}: stream `{}` at {}", spec.stream, spec.url),
                    e,
                )
            })?;
        let filters: Vec<Option<String>> = if spec.subjects.is_empty() {
            vec![None]
        } else {
            spec.subjects.iter().cloned().map(Some).collect()
        };
        let mut partitions = Vec::new();
        for filter in filters {
            let end = if spec.bounded {
                Some(
                    last_sequence(&rt, &mut stream, filter.as_deref()).map_err(|e| {
                        nats_err(&format!("{what}: reading stream `{}`", spec.stream), e)
                    })?,
                )
            } else {
                None
            };
            partitions.push(Partition {
                filter,
                seq: 0,
                end,
                consumer: None,
                ended: false,
                empty_before_end: false,
            });
        }
        Ok(JetStreamSource {
            node: node.to_string(),
            spec: spec.clone(),
            schema: schema.clone(),
            policy: bad_records.clone(),
            stream,
            partitions,
            outage: None,
            rt,
        })
    }

    fn partition(&self, p: u32) -> ExecResult<usize> {
        let i = p as usize;
        if i < self.partitions.len() {
            Ok(i)
        } else {
            Err(ExecError::Internal(format!(
                "stream `{}` has no partition {p}",
                self.spec.stream
            )))
        }
    }

    /// Fetches up to `max` messages after partition `i`'s position: (sequence, published
    /// ms, payload).
    fn fetch(&mut self, i: usize, max: usize) -> ExecResult<Vec<(u64, i64, Vec<u8>)>> {
        let what = format!(
            "ReadFromJetStream `{}`: stream `{}` at {}",
            self.node, self.spec.stream, self.spec.url
        );
        if self.partitions[i].consumer.is_none() {
            let part = &self.partitions[i];
            let config = consumer::pull::Config {
                deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: part.seq + 1,
                },
                ack_policy: consumer::AckPolicy::None,
                filter_subject: part.filter.clone().unwrap_or_default(),
                inactive_threshold: CONSUMER_INACTIVE,
                ..Default::default()
            };
            let stream = self.stream.clone();
            let created = self
                .rt
                .block_on(async move { stream.create_consumer(config).await })
                .map_err(|e| nats_err(&format!("{what}: creating a consumer"), e))?;
            self.partitions[i].consumer = Some(created);
        }
        let consumer = self.partitions[i].consumer.clone().expect("created above");
        let fetched = self.rt.block_on(async move {
            let fetch = async {
                let mut batch = consumer.fetch().max_messages(max).messages().await?;
                let mut out = Vec::new();
                while let Some(message) = batch.next().await {
                    let message = message?;
                    let info = message.info()?;
                    let published = (info.published.unix_timestamp_nanos() / 1_000_000) as i64;
                    out.push((info.stream_sequence, published, message.payload.to_vec()));
                }
                Ok::<_, async_nats::Error>(out)
            };
            match tokio::time::timeout(FETCH_TIMEOUT, fetch).await {
                Ok(result) => result,
                Err(_) => Err(format!("no answer within {FETCH_TIMEOUT:?}").into()),
            }
        });
        fetched.map_err(|e| nats_err(&format!("{what}: fetching messages"), e))
    }

    /// A failed fetch: the partition's consumer is made afresh at the next try, after a
    /// growing wait, until the server has been unreachable for [`OUTAGE_BUDGET`]; then the
    /// run fails with the last error. Nothing was read, so nothing is lost or repeated.
    fn retry_later(&mut self, i: usize, error: ExecError) -> ExecResult<SourcePoll> {
        self.partitions[i].consumer = None;
        let now = std::time::Instant::now();
        let outage = self.outage.get_or_insert(Outage {
            since: now,
            error: String::new(),
            backoff: Duration::from_millis(100),
            retry_at: now,
        });
        outage.error = error.to_string();
        if now.duration_since(outage.since) >= OUTAGE_BUDGET {
            return Err(nats_err(
                &format!(
                    "ReadFromJetStream `{}`: the NATS server at {} was unreachable for {:?}",
                    self.node, self.spec.url, OUTAGE_BUDGET
                ),
                &outage.error,
            ));
        }
        tracing::warn!("{}; retrying in {:?}", outage.error, outage.backoff);
        outage.retry_at = now + outage.backoff;
        outage.backoff = (outage.backoff * 2).min(Duration::from_secs(2));
        Ok(SourcePoll::Pending)
    }
}

/// The last sequence of the stream, or of `subject` in it (0 when it has no message).
fn last_sequence(
    rt: &BlockingRuntime,
    stream: &mut Stream,
    subject: Option<&str>,
) -> Result<u64, async_nats::Error> {
    match subject {
        None => rt.block_on(async move { Ok(stream.info().await?.state.last_sequence) }),
        Some(subject) => {
            let subject = subject.to_string();
            let stream = stream.clone();
            rt.block_on(async move {
                use async_nats::jetstream::stream::LastRawMessageErrorKind;
                match stream.get_last_raw_message_by_subject(&subject).await {
                    Ok(m) => Ok(m.sequence),
                    Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(0),
                    Err(e) => Err(e.into()),
                }
            })
        }
    }
}

impl Source for JetStreamSource {
    fn partitions(&self) -> u32 {
        self.partitions.len() as u32
    }

    fn poll(&mut self, partition: u32, max_rows: usize, _now: Timestamp) -> ExecResult<SourcePoll> {
        let i = self.partition(partition)?;
        let part = &self.partitions[i];
        if part.ended || part.end.is_some_and(|end| part.seq >= end) {
            self.partitions[i].ended = true;
            self.partitions[i].consumer = None;
            return Ok(SourcePoll::Ended);
        }
        let max = match part.end {
            Some(end) => max_rows.max(1).min((end - part.seq) as usize),
            None => max_rows.max(1),
        };
        if self
            .outage
            .as_ref()
            .is_some_and(|o| std::time::Instant::now() < o.retry_at)
        {
            return Ok(SourcePoll::Pending);
        }
        let messages = match self.fetch(i, max) {
            Ok(messages) => {
                self.outage = None;
                messages
            }
            Err(e) => return self.retry_later(i, e),
        };
        let end = self.partitions[i].end;
        let part = &mut self.partitions[i];
        if messages.is_empty() {
            if let Some(end) = end {
                if part.empty_before_end {
                    // A fresh consumer found nothing either. Only the server can tell
                    // whether the messages up to the end are gone (removed by the stream's
                    // limits: its first sequence is past them) or not readable yet (a
                    // server still recovering): the latter is an outage.
                    let stream = self.stream.clone();
                    let first = self
                        .rt
                        .block_on(async move {
                            let mut stream = stream;
                            stream.info().await.map(|i| i.state.first_sequence)
                        })
                        .map_err(|e| nats_err("reading the stream's state", e));
                    let part = &mut self.partitions[i];
                    part.consumer = None;
                    return match first {
                        Ok(first) if first > end => {
                            part.ended = true;
                            Ok(SourcePoll::Ended)
                        }
                        Ok(first) => self.retry_later(
                            i,
                            nats_err(
                                &format!(
                                    "ReadFromJetStream `{}`: stream `{}`",
                                    self.node, self.spec.stream
                                ),
                                format!(
                                    "no message after sequence {} although the stream holds {first}..={end}",
                                    self.partitions[i].seq
                                ),
                            ),
                        ),
                        Err(e) => self.retry_later(i, e),
                    };
                }
                // The consumer may be the one lost (a server restart forgets it): try again
                // with a new one before asking the server.
                part.empty_before_end = true;
                part.consumer = None;
            }
            return Ok(SourcePoll::Pending);
        }
        part.empty_before_end = false;
        let source_name = format!("{} stream {}", self.spec.url, self.spec.stream);
        let (schema, policy) = (self.schema.clone(), self.policy.clone());
        let mut collector = RecordCollector::new(&schema, &policy);
        for (seq, published, payload) in messages {
            if let Some(e) = end.filter(|e| seq > *e) {
                // Past the end (the messages before it were removed): the partition is done.
                self.partitions[i].seq = e;
                break;
            }
            self.partitions[i].seq = seq;
            match serde_json::from_slice::<Value>(&payload) {
                Ok(Value::Object(mut row)) => {
                    if let Some(column) = &self.spec.message_timestamp {
                        row.insert(column.clone(), Value::from(published));
                    }
                    collector.row(row, &source_name, seq, || {
                        String::from_utf8_lossy(&payload).into_owned()
                    })?;
                }
                Ok(other) => collector.bad(
                    &source_name,
                    seq,
                    format!(
                        "expected a JSON object, got {}",
                        super::records::short(&other)
                    ),
                    String::from_utf8_lossy(&payload).into_owned(),
                )?,
                Err(e) => collector.bad(
                    &source_name,
                    seq,
                    format!("invalid JSON: {e}"),
                    String::from_utf8_lossy(&payload).into_owned(),
                )?,
            }
        }
        let (data, dead_letters) = collector.finish()?;
        Ok(SourcePoll::Batch { data, dead_letters })
    }

    fn position(&self, partition: u32) -> Value {
        match self.partitions.get(partition as usize) {
            Some(p) => serde_json::json!({"seq": p.seq}),
            None => Value::Null,
        }
    }

    fn seek(&mut self, partition: u32, position: &Value) -> ExecResult<()> {
        let i = self.partition(partition)?;
        let seq = position.get("seq").and_then(Value::as_u64).ok_or_else(|| {
            ExecError::Internal(format!(
                "`{position}` is not a position of stream `{}`",
                self.spec.stream
            ))
        })?;
        let part = &mut self.partitions[i];
        part.seq = seq;
        part.consumer = None;
        part.ended = false;
        part.empty_before_end = false;
        Ok(())
    }
}

/// An idempotent JetStream sink: rows are buffered between commits; a commit of epoch `e`
/// publishes each row as a JSON object (the columns a file sink writes) to `subject` with
/// the header `Nats-Msg-Id: <sink id>:<e>:<k>`, `k` numbering the epoch's rows in the order
/// of their JSON text (so a replay numbers the same rows the same way whatever order they
/// arrive in), in arrival order, and waits for every acknowledgement.
///
/// The stream capturing `subject` drops a message whose id it has seen within its
/// duplicate window (`duplicate_window`, 2 minutes by default): a batch or checkpoint
/// replayed within the window is not stored twice. A replay later than the window after the
/// first attempt would be; size the window above the longest restart time. Message ids stay
/// unique per sink id, so a fresh run of the same job within the window needs another `job`.
pub struct JetStreamSink {
    what: String,
    subject: String,
    sink_id: String,
    format: RowFormat,
    pending: Vec<u8>,
    js: jetstream::Context,
    rt: BlockingRuntime,
}

impl std::fmt::Debug for JetStreamSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JetStreamSink")
            .field("what", &self.what)
            .finish()
    }
}

impl JetStreamSink {
    /// A sink for node `node` publishing rows of `schema` to `subject` at `url`; creates
    /// the stream `create_stream` first when the server has no stream of that name.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        node: &str,
        url: &str,
        subject: &str,
        job: Option<&str>,
        create_stream: Option<&StreamSetup>,
        metadata: SinkMetadata,
        schema: &Schema,
        windowed: bool,
    ) -> ExecResult<Self> {
        let what = format!("WriteToJetStream `{node}` (subject {subject} at {url})");
        let format = RowFormat::new(node, FileFormat::JsonLines, metadata, schema, windowed)?;
        let rt = BlockingRuntime::new(&what)?;
        let js = connect(&rt, url, &what)?;
        if let Some(setup) = create_stream {
            let (context, name) = (js.clone(), setup.name.clone());
            let config = jetstream::stream::Config {
                name: setup.name.clone(),
                subjects: setup.subjects.clone(),
                ..Default::default()
            };
            rt.block_on(async move {
                match context.get_stream(&name).await {
                    Ok(_) => Ok(()),
                    Err(_) => context.create_stream(config).await.map(|_| ()),
                }
            })
            .map_err(|e| nats_err(&format!("{what}: creating stream `{}`", setup.name), e))?;
        }
        Ok(JetStreamSink {
            what,
            subject: subject.to_string(),
            sink_id: job.map_or_else(|| format!("{node}@{subject}"), str::to_string),
            format,
            pending: Vec::new(),
            js,
            rt,
        })
    }
}

impl Sink for JetStreamSink {
    fn write(&mut self, batch: &RecordBatch, _now: Timestamp) -> ExecResult<()> {
        self.format.write_batch(batch, &mut self.pending)
    }

    fn commit(&mut self, epoch: u64, _now: Timestamp) -> ExecResult<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let text = std::mem::take(&mut self.pending);
        let rows: Vec<&[u8]> = text
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        // Ids number the rows in the order of their JSON text, so that a replay that
        // delivers the same rows in another order gives each the same id; the messages
        // themselves go out in arrival order.
        let mut by_text: Vec<usize> = (0..rows.len()).collect();
        by_text.sort_by_key(|&i| rows[i]);
        let mut rank = vec![0; rows.len()];
        for (k, &i) in by_text.iter().enumerate() {
            rank[i] = k;
        }
        let messages: Vec<(String, Vec<u8>)> = rows
            .iter()
            .enumerate()
            .map(|(i, row)| {
                (
                    format!("{}:{epoch}:{}", self.sink_id, rank[i]),
                    row.to_vec(),
                )
            })
            .collect();
        let (js, subject) = (self.js.clone(), self.subject.clone());
        let published = self.rt.block_on(async move {
            let mut acks = Vec::with_capacity(messages.len());
            for (id, payload) in messages {
                let publish = PublishMessage::build()
                    .payload(payload.into())
                    .message_id(id);
                acks.push(js.send_publish(subject.clone(), publish).await?);
            }
            for ack in acks {
                tokio::time::timeout(PUBLISH_TIMEOUT, ack)
                    .await
                    .map_err(|_| "timed out waiting for the server's acknowledgement")??;
            }
            Ok::<_, async_nats::Error>(())
        });
        published.map_err(|e| {
            nats_err(
                &format!(
                    "{}: publishing epoch {epoch} (is there a stream capturing the subject?)",
                    self.what
                ),
                e,
            )
        })
    }

    fn guarantee(&self) -> DeliveryGuarantee {
        DeliveryGuarantee::Idempotent
    }
}

/// Deletes stream `name` when it exists and creates it afresh, capturing `subjects`, with
/// the server's defaults otherwise (file storage, a 2-minute duplicate window). For test
/// and demo setup: Weir's sources and sinks never create or change streams.
pub fn recreate_stream(url: &str, name: &str, subjects: &[String]) -> ExecResult<()> {
    let what = format!("recreating stream `{name}`");
    let rt = BlockingRuntime::new(&what)?;
    let js = connect(&rt, url, &what)?;
    let (name, subjects) = (name.to_string(), subjects.to_vec());
    rt.block_on(async move {
        let _ = js.delete_stream(&name).await;
        js.create_stream(jetstream::stream::Config {
            name,
            subjects,
            ..Default::default()
        })
        .await
        .map(|_| ())
    })
    .map_err(|e| nats_err(&format!("{what} at {url}"), e))
}
