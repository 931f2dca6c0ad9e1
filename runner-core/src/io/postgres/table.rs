//! A PostgreSQL sink's output seen from outside the job: what a reader of its table sees
//! (committed rows only), and a reset to nothing (for `weir soak` and tests).

use super::client::{self, describe, PgConnection};
use super::{gid_prefix, literal, sql};
use crate::error::{ExecError, ExecResult};
use weir_model::io::PostgresSinkSpec;

/// The table of a PostgreSQL sink `node` (with its connection settings and sink id).
#[derive(Debug, Clone)]
pub struct SinkTable {
    node: String,
    spec: PostgresSinkSpec,
    sink_id: String,
}

impl SinkTable {
    /// The output of sink `node` configured by `spec`.
    pub fn new(node: &str, spec: &PostgresSinkSpec) -> Self {
        SinkTable {
            node: node.to_string(),
            spec: spec.clone(),
            sink_id: super::sink_id(node, spec),
        }
    }

    fn connect(&self, what: &str) -> ExecResult<PgConnection> {
        let (config, target) = client::config(&self.node, &self.spec)?;
        PgConnection::connect(&config, &format!("{what} ({target})"))
    }

    /// Every committed row of the table as a JSON object (PostgreSQL's `row_to_json`), in
    /// no particular order; none when the table does not exist.
    pub fn committed_rows(&self) -> ExecResult<Vec<String>> {
        let what = format!("reading table `{}`", self.spec.table);
        let mut conn = self.connect(&what)?;
        let table = sql::quote_table(&self.spec.table);
        let query = format!("SELECT row_to_json(t)::text FROM {table} t");
        let rows = conn.run(|c| async move {
            match c.query(&query, &[]).await {
                Ok(rows) => Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect()),
                Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => {
                    Ok(Vec::new())
                }
                Err(e) => Err(e),
            }
        });
        rows.map_err(|e| {
            ExecError::io(
                format!("{what} for sink `{}`", self.node),
                std::io::Error::other(describe(&e)),
            )
        })
    }

    /// Drops the table, forgets the sink's progress rows and rolls back its prepared
    /// transactions: the next run of the sink starts from nothing.
    pub fn reset(&self) -> ExecResult<()> {
        let what = format!("resetting table `{}`", self.spec.table);
        let mut conn = self.connect(&what)?;
        let table = sql::quote_table(&self.spec.table);
        let prefix = gid_prefix(&self.sink_id);
        let sink_id = self.sink_id.clone();
        let result = conn.run(|c| async move {
            let gids = c
                .query(
                    "SELECT gid FROM pg_prepared_xacts WHERE database = current_database()",
                    &[],
                )
                .await?;
            for g in gids.iter().map(|r| r.get::<_, String>(0)) {
                if g.starts_with(&prefix) {
                    c.batch_execute(&format!("ROLLBACK PREPARED {}", literal(&g)))
                        .await?;
                }
            }
            c.batch_execute(&format!("DROP TABLE IF EXISTS {table}"))
                .await?;
            c.batch_execute(sql::CREATE_PROGRESS).await?;
            c.execute(
                "DELETE FROM weir_sink_progress WHERE sink_id = $1::text",
                &[&sink_id],
            )
            .await?;
            Ok::<_, tokio_postgres::Error>(())
        });
        result.map_err(|e| {
            ExecError::io(
                format!("{what} for sink `{}`", self.node),
                std::io::Error::other(describe(&e)),
            )
        })
    }
}
