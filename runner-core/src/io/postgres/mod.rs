//! `WriteToPostgres`: a PostgreSQL table as a transactional sink.
//!
//! - **Per batch/epoch** ([`Sink::commit`], the micro-batch and direct runners): the rows of
//!   the batch and a row `(sink id, batch id)` of the progress table `weir_sink_progress`
//!   are written in one transaction. A batch id already recorded is a replay: the
//!   transaction is rolled back and nothing is written (Spark's idempotent sink by batch id).
//! - **Two-phase commit** ([`NativeTwoPhaseCommit`], the continuous runner): at a barrier the
//!   rows since the last one go into a transaction that is `PREPARE TRANSACTION`-ed as
//!   `weir:<sink id>:<checkpoint>:<subtask>`, together with its progress row;
//!   `COMMIT PREPARED` follows when the checkpoint completes. On restore, prepared
//!   transactions of checkpoints the restored checkpoint still lists are committed and every
//!   other one of this sink is rolled back (read from `pg_prepared_xacts`). This needs the
//!   server setting `max_prepared_transactions > 0`; the sink checks it and says how to set
//!   it.
//!
//! The table is created when missing (`CREATE TABLE IF NOT EXISTS`, columns mapped from
//! Arrow: bool → BOOLEAN, int64 → BIGINT, float64 → DOUBLE PRECISION, string → TEXT,
//! timestamp → TIMESTAMPTZ, lists and structs → JSONB; the upsert key becomes the primary
//! key). An existing table is used as it is. Rows are written by multi-row `INSERT`s of at
//! most `batch_size` rows; an upsert keeps the last row of each key within a batch. A lost
//! connection is retried with backoff (every step is safe to repeat).

mod client;
mod sql;
mod table;

pub use table::SinkTable;

use super::{NativeTwoPhaseCommit, Sink};
use crate::error::{ExecError, ExecResult};
use arrow::record_batch::RecordBatch;
use client::{describe, PgConnection, Target};
use sql::{Column, Values};
use std::collections::HashMap;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config};
use weir_model::io::{DeliveryGuarantee, PostgresSinkSpec, PostgresWriteMode, SinkMetadata};
use weir_model::time::Timestamp;
use weir_model::Schema;

/// The longest transaction id PostgreSQL accepts (bytes, excluding the terminator).
const MAX_GID: usize = 199;

/// How many times a lost connection is retried before the sink fails.
const RETRIES: u32 = 4;

/// PostgreSQL allows at most this many parameters in one statement.
const MAX_PARAMS: usize = 65_535;

/// A sink writing into a PostgreSQL table; see the module documentation.
pub struct PostgresSink {
    node: String,
    spec: PostgresSinkSpec,
    /// Id in `weir_sink_progress` and in transaction ids.
    sink_id: String,
    config: Config,
    target: Target,
    conn: Option<PgConnection>,
    columns: Vec<Column>,
    window: bool,
    pane: bool,
    /// Rows written since the last commit or prepare.
    pending: Vec<RecordBatch>,
    /// `max_prepared_transactions` was found > 0.
    two_phase_checked: bool,
}

impl std::fmt::Debug for PostgresSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the config: it holds the password.
        f.debug_struct("PostgresSink")
            .field("node", &self.node)
            .field("target", &self.target.to_string())
            .field("table", &self.spec.table)
            .finish()
    }
}

impl PostgresSink {
    /// A sink for node `node` writing rows of `schema`; connects, and creates the progress
    /// table and the target table when missing.
    pub fn new(
        node: &str,
        spec: &PostgresSinkSpec,
        metadata: SinkMetadata,
        schema: &Schema,
        windowed: bool,
    ) -> ExecResult<Self> {
        let (mut config, target) = client::config(node, spec)?;
        let window = metadata.window.unwrap_or(windowed);
        let pane = metadata.pane;
        let columns = sql::columns(schema, window, pane);
        for (i, c) in columns.iter().enumerate().skip(schema.fields.len()) {
            if columns[..i].iter().any(|o| o.name == c.name) {
                return Err(ExecError::transform(
                    node,
                    format!(
                        "column `{0}` clashes with the {0} metadata column the sink writes",
                        c.name
                    ),
                ));
            }
        }
        if let PostgresWriteMode::Upsert { key } = &spec.mode {
            if let Some(k) = key.iter().find(|k| !columns.iter().any(|c| &c.name == *k)) {
                return Err(ExecError::transform(
                    node,
                    format!("upsert key column `{k}` is not written by the sink"),
                ));
            }
        }
        let sink_id = sink_id(node, spec);
        if gid(&sink_id, u64::MAX, u32::MAX).len() > MAX_GID {
            return Err(ExecError::transform(
                node,
                format!(
                    "the sink id `{sink_id}` is too long for a transaction id; set a shorter `job`"
                ),
            ));
        }
        // Shows in pg_stat_activity; PostgreSQL keeps 63 bytes of it.
        let application: String = format!("weir {sink_id}").chars().take(63).collect();
        config.application_name(&application);
        let mut sink = PostgresSink {
            node: node.to_string(),
            spec: spec.clone(),
            sink_id,
            config,
            target,
            conn: None,
            columns,
            window,
            pane,
            pending: Vec::new(),
            two_phase_checked: false,
        };
        let create_table = sql::create_table(&sink.spec.table, &sink.columns, &sink.spec.mode);
        sink.with_client("creating the tables", |c| {
            let create_table = create_table.clone();
            Box::pin(async move {
                create_if_missing(c, sql::CREATE_PROGRESS).await?;
                create_if_missing(c, &create_table).await
            })
        })?;
        Ok(sink)
    }

    /// `sink `node` (user@host:port/db, table t)` for messages.
    fn what(&self) -> String {
        format!(
            "WriteToPostgres `{}` ({}, table {})",
            self.node, self.target, self.spec.table
        )
    }

    /// The open connection, (re)connecting when there is none or the server closed it.
    fn connection(&mut self) -> ExecResult<&mut PgConnection> {
        if self.conn.as_ref().is_none_or(PgConnection::is_closed) {
            self.conn = Some(PgConnection::connect(&self.config, &self.what())?);
        }
        Ok(self.conn.as_mut().expect("connected above"))
    }

    /// Runs `f` on the client; a failure names the sink, its target and `doing`.
    ///
    /// A lost connection (the server restarted or ended the session, a network blip: see
    /// [`is_connection_loss`]) is retried on a new connection after a backoff of 0.1 s, 0.4 s, 1.6 s and
    /// 6.4 s; every operation of the sink is safe to repeat (commits check the progress
    /// table, prepares check `pg_prepared_xacts`). Server errors fail at once.
    fn with_client<T: Send>(
        &mut self,
        doing: &str,
        f: impl for<'c> Fn(&'c mut Client) -> PgFuture<'c, T>,
    ) -> ExecResult<T> {
        let what = self.what();
        let mut backoff = std::time::Duration::from_millis(100);
        let mut attempt = 0;
        loop {
            let result = match self.connection() {
                Ok(conn) => conn.run(&f),
                Err(e) if attempt < RETRIES => {
                    tracing::warn!("{what}: {e}; retrying in {backoff:?}");
                    std::thread::sleep(backoff);
                    backoff *= 4;
                    attempt += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            match result {
                Ok(v) => return Ok(v),
                Err(e) if is_connection_loss(&e) && attempt < RETRIES => {
                    tracing::warn!(
                        "{what}: {doing}: {}; reconnecting in {backoff:?}",
                        describe(&e)
                    );
                    self.conn = None;
                    std::thread::sleep(backoff);
                    backoff *= 4;
                    attempt += 1;
                }
                Err(e) => {
                    return Err(ExecError::io(
                        format!("{what}: {doing}"),
                        std::io::Error::other(describe(&e)),
                    ))
                }
            }
        }
    }

    /// The rows pending, as the `INSERT`s to run: (SQL, parameter values, rows).
    fn statements(&self) -> Vec<(String, Vec<Values>, usize)> {
        let per_statement = (self.spec.batch_size as usize)
            .min(MAX_PARAMS / self.columns.len().max(1))
            .max(1);
        let batches: Vec<(Vec<Values>, usize)> = self
            .pending
            .iter()
            .map(|b| (sql::values(b, self.window, self.pane), b.num_rows()))
            .collect();
        // An upsert statement may not touch a key twice: keep each key's last row.
        let keep: Option<Vec<Vec<bool>>> = match &self.spec.mode {
            PostgresWriteMode::Insert => None,
            PostgresWriteMode::Upsert { key } => {
                let key_idx: Vec<usize> = key
                    .iter()
                    .filter_map(|k| self.columns.iter().position(|c| &c.name == k))
                    .collect();
                let mut last: HashMap<Vec<String>, (usize, usize)> = HashMap::new();
                for (b, (values, rows)) in batches.iter().enumerate() {
                    for r in 0..*rows {
                        let k: Vec<String> = key_idx
                            .iter()
                            .map(|&i| format!("{:?}", values[i].param(r)))
                            .collect();
                        last.insert(k, (b, r));
                    }
                }
                let mut keep: Vec<Vec<bool>> =
                    batches.iter().map(|(_, rows)| vec![false; *rows]).collect();
                for (b, r) in last.into_values() {
                    keep[b][r] = true;
                }
                Some(keep)
            }
        };
        // Flatten the kept rows, then cut them into statements.
        let mut rows: Vec<(usize, usize)> = Vec::new();
        for (b, (_, n)) in batches.iter().enumerate() {
            for r in 0..*n {
                if keep.as_ref().is_none_or(|k| k[b][r]) {
                    rows.push((b, r));
                }
            }
        }
        let mut out = Vec::new();
        for chunk in rows.chunks(per_statement) {
            let text = sql::insert(
                &self.spec.table,
                &self.columns,
                &self.spec.mode,
                chunk.len(),
            );
            let values = (0..self.columns.len())
                .map(|c| gather(&batches, c, chunk))
                .collect();
            out.push((text, values, chunk.len()));
        }
        out
    }

    /// Fails unless the server can prepare transactions.
    fn check_two_phase(&mut self) -> ExecResult<()> {
        if self.two_phase_checked {
            return Ok(());
        }
        let max: String = self.with_client("reading max_prepared_transactions", |c| {
            Box::pin(async move {
                let row = c.query_one("SHOW max_prepared_transactions", &[]).await?;
                Ok(row.get::<_, String>(0))
            })
        })?;
        if max.trim() == "0" {
            return Err(ExecError::transform(
                &self.node,
                prepared_transactions_disabled(&self.target),
            ));
        }
        self.two_phase_checked = true;
        Ok(())
    }

    /// Whether the progress table records `batch`.
    fn recorded(&mut self, batch: u64) -> ExecResult<bool> {
        let id = self.sink_id.clone();
        self.with_client("reading weir_sink_progress", |c| {
            let id = id.clone();
            Box::pin(async move {
                let rows = c
                    .query(sql::PROGRESS_RECORDED, &[&id, &(batch as i64)])
                    .await?;
                Ok(!rows.is_empty())
            })
        })
    }
}

type PgFuture<'c, T> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<T, tokio_postgres::Error>> + Send + 'c>,
>;

/// Column `c`'s values at `rows` ((batch, row) pairs).
fn gather(batches: &[(Vec<Values>, usize)], c: usize, rows: &[(usize, usize)]) -> Values {
    macro_rules! pick {
        ($variant:ident) => {
            Values::$variant(
                rows.iter()
                    .map(|&(b, r)| match &batches[b].0[c] {
                        Values::$variant(v) => v[r].clone(),
                        _ => None,
                    })
                    .collect(),
            )
        };
    }
    match batches.first().map(|(v, _)| &v[c]) {
        Some(Values::Bool(_)) => pick!(Bool),
        Some(Values::Int(_)) => pick!(Int),
        Some(Values::Float(_)) => pick!(Float),
        Some(Values::Time(_)) => pick!(Time),
        Some(Values::Text(_)) | None => pick!(Text),
    }
}

/// `CREATE ... IF NOT EXISTS`, tolerating the race of two sessions creating it at once.
async fn create_if_missing(c: &Client, statement: &str) -> Result<(), tokio_postgres::Error> {
    match c.batch_execute(statement).await {
        Err(e)
            if e.code() == Some(&SqlState::UNIQUE_VIOLATION)
                || e.code() == Some(&SqlState::DUPLICATE_TABLE) =>
        {
            Ok(())
        }
        other => other,
    }
}

/// The id of sink `node` in the progress table and in transaction ids.
fn sink_id(node: &str, spec: &PostgresSinkSpec) -> String {
    spec.job
        .clone()
        .unwrap_or_else(|| format!("{node}@{}", spec.table))
}

/// What every transaction id of a sink starts with.
fn gid_prefix(sink_id: &str) -> String {
    format!("weir:{sink_id}:")
}

/// The transaction id of (sink, checkpoint, subtask).
fn gid(sink_id: &str, checkpoint: u64, subtask: u32) -> String {
    format!("{}{checkpoint}:{subtask}", gid_prefix(sink_id))
}

/// Why the continuous runner cannot use a server whose `max_prepared_transactions` is 0,
/// and how to set it.
fn prepared_transactions_disabled(target: &Target) -> String {
    format!(
        "PostgreSQL at {host}:{port} has max_prepared_transactions = 0, so it cannot prepare the \
         transactions of the continuous runner's two-phase commit. Set it as a superuser with \
         `ALTER SYSTEM SET max_prepared_transactions = 16` (e.g. `psql -h {host} -p {port} -U postgres \
         -c \"ALTER SYSTEM SET max_prepared_transactions = 16\"`) and restart the server (e.g. \
         `pg_ctlcluster <version> main restart`), or use the micro-batch runner",
        host = target.host,
        port = target.port,
    )
}

/// Whether `e` means the connection is gone rather than that the statement failed: no
/// server error at all (I/O, closed), or SQLSTATE class 08 (connection exception) or 57P
/// (the server is shutting down, restarting, or ended the session).
fn is_connection_loss(e: &tokio_postgres::Error) -> bool {
    match e.as_db_error() {
        None => true,
        Some(db) => {
            let code = db.code().code();
            code.starts_with("08") || code.starts_with("57P")
        }
    }
}

/// A SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// (checkpoint, subtask) of a transaction id of sink `sink_id`.
fn parse_gid(sink_id: &str, gid: &str) -> Option<(u64, u32)> {
    let rest = gid
        .strip_prefix("weir:")?
        .strip_prefix(sink_id)?
        .strip_prefix(':')?;
    let (checkpoint, subtask) = rest.split_once(':')?;
    Some((checkpoint.parse().ok()?, subtask.parse().ok()?))
}

/// Runs the inserts of `statements` and records `(sink_id, batch)`; `Ok(false)` when the
/// batch was recorded before. Leaves the transaction open.
async fn write_in_transaction(
    c: &Client,
    sink_id: &str,
    batch: u64,
    statements: &[(String, Vec<Values>, usize)],
) -> Result<bool, tokio_postgres::Error> {
    let recorded = c
        .execute(sql::RECORD_PROGRESS, &[&sink_id, &(batch as i64)])
        .await?;
    if recorded == 0 {
        return Ok(false);
    }
    for (text, values, rows) in statements {
        let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
            Vec::with_capacity(values.len() * rows);
        for r in 0..*rows {
            for v in values {
                params.push(v.param(r));
            }
        }
        c.execute(text.as_str(), &params).await?;
    }
    Ok(true)
}

impl Sink for PostgresSink {
    fn write(&mut self, batch: &RecordBatch, _now: Timestamp) -> ExecResult<()> {
        if batch.num_rows() > 0 {
            self.pending.push(batch.clone());
        }
        Ok(())
    }

    /// One transaction: the rows and the progress row of batch `epoch`; a batch already
    /// recorded is skipped. A batch without rows records nothing.
    fn commit(&mut self, epoch: u64, _now: Timestamp) -> ExecResult<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let statements = self.statements();
        let id = self.sink_id.clone();
        let doing = format!("committing batch {epoch}");
        self.with_client(&doing, |c| {
            let (id, statements) = (id.clone(), statements.clone());
            Box::pin(async move {
                c.batch_execute("BEGIN").await?;
                let result = write_in_transaction(c, &id, epoch, &statements).await;
                match result {
                    Ok(true) => c.batch_execute("COMMIT").await,
                    Ok(false) => c.batch_execute("ROLLBACK").await,
                    Err(e) => {
                        let _ = c.batch_execute("ROLLBACK").await;
                        Err(e)
                    }
                }
            })
        })?;
        self.pending.clear();
        Ok(())
    }

    fn guarantee(&self) -> DeliveryGuarantee {
        DeliveryGuarantee::Transactional
    }

    fn native_two_phase(&mut self) -> Option<&mut dyn NativeTwoPhaseCommit> {
        Some(self)
    }
}

impl NativeTwoPhaseCommit for PostgresSink {
    fn prepare(&mut self, checkpoint: u64, subtask: u32) -> ExecResult<()> {
        self.check_two_phase()?;
        let statements = self.statements();
        let id = self.sink_id.clone();
        let gid = gid(&id, checkpoint, subtask);
        let doing = format!("preparing the transaction of checkpoint {checkpoint}");
        self.with_client(&doing, |c| {
            let (id, gid, statements) = (id.clone(), gid.clone(), statements.clone());
            Box::pin(async move {
                // Prepared by an attempt whose connection was lost before the reply.
                let done = c
                    .query(
                        "SELECT 1 FROM pg_prepared_xacts WHERE gid = $1::text",
                        &[&gid],
                    )
                    .await?;
                if !done.is_empty() {
                    return Ok(());
                }
                c.batch_execute("BEGIN").await?;
                // A checkpoint id recorded before (a replay of a checkpoint a crash cut short
                // after its commit) writes nothing, as a replayed micro-batch does; the empty
                // transaction is still prepared so that its commit finds it. (A new run of the
                // same checkpoint directory never reuses an id; a new directory with the same
                // sink id would, so give each job its own `job`.)
                let result = write_in_transaction(c, &id, checkpoint, &statements).await;
                if let Err(e) = result {
                    let _ = c.batch_execute("ROLLBACK").await;
                    return Err(e);
                }
                c.batch_execute(&format!("PREPARE TRANSACTION {}", literal(&gid)))
                    .await
            })
        })?;
        self.pending.clear();
        Ok(())
    }

    fn commit_prepared(&mut self, checkpoint: u64, subtask: u32) -> ExecResult<()> {
        let gid = gid(&self.sink_id, checkpoint, subtask);
        let doing = format!("committing the prepared transaction of checkpoint {checkpoint}");
        let missing = self.with_client(&doing, |c| {
            let gid = gid.clone();
            Box::pin(async move {
                match c
                    .batch_execute(&format!("COMMIT PREPARED {}", literal(&gid)))
                    .await
                {
                    Ok(()) => Ok(false),
                    Err(e) if e.code() == Some(&SqlState::UNDEFINED_OBJECT) => Ok(true),
                    Err(e) => Err(e),
                }
            })
        })?;
        // Not prepared (any more): committed before a crash if its progress row is there.
        if missing && !self.recorded(checkpoint)? {
            return Err(ExecError::transform(
                &self.node,
                format!(
                    "{}: the transaction of checkpoint {checkpoint} is neither prepared nor committed; \
                     it was rolled back outside Weir",
                    self.what()
                ),
            ));
        }
        Ok(())
    }

    fn recover(&mut self, keep: &[u64], subtask: u32) -> ExecResult<()> {
        self.check_two_phase()?;
        let gids: Vec<String> = self.with_client("listing pg_prepared_xacts", |c| {
            Box::pin(async move {
                let rows = c
                    .query(
                        "SELECT gid FROM pg_prepared_xacts WHERE database = current_database()",
                        &[],
                    )
                    .await?;
                Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
            })
        })?;
        let abort: Vec<String> = gids
            .into_iter()
            .filter(|g| {
                parse_gid(&self.sink_id, g)
                    .is_some_and(|(cp, st)| st == subtask && !keep.contains(&cp))
            })
            .collect();
        if abort.is_empty() {
            return Ok(());
        }
        self.with_client(
            "rolling back prepared transactions of failed checkpoints",
            |c| {
                let abort = abort.clone();
                Box::pin(async move {
                    for g in abort {
                        match c
                            .batch_execute(&format!("ROLLBACK PREPARED {}", literal(&g)))
                            .await
                        {
                            Err(e) if e.code() != Some(&SqlState::UNDEFINED_OBJECT) => {
                                return Err(e)
                            }
                            _ => {}
                        }
                    }
                    Ok(())
                })
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_without_prepared_transactions_is_refused_saying_how_to_enable_them() {
        let target = Target {
            host: "db.local".into(),
            port: 5433,
            database: "test".into(),
            user: "weir".into(),
        };
        let message = prepared_transactions_disabled(&target);
        assert!(message.contains("db.local:5433"), "{message}");
        assert!(
            message.contains("ALTER SYSTEM SET max_prepared_transactions = 16"),
            "{message}"
        );
        assert!(message.contains("restart"), "{message}");
    }

    #[test]
    fn transaction_ids_name_sink_checkpoint_and_subtask() {
        let g = gid("Out@t:x", 12, 0);
        assert_eq!(g, "weir:Out@t:x:12:0");
        assert_eq!(parse_gid("Out@t:x", &g), Some((12, 0)));
        assert_eq!(parse_gid("Out@t", &g), None);
        assert_eq!(parse_gid("Out@t:x", "weir:Out@t:x:12"), None);
    }
}
