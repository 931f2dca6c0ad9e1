//! A blocking facade over tokio-postgres: a private runtime ([`BlockingRuntime`]) drives the
//! connection, and every call blocks on it.

use super::super::blocking::BlockingRuntime;
use crate::error::{ExecError, ExecResult};
use std::future::Future;
use tokio_postgres::{Client, Config, NoTls};
use weir_model::io::PostgresSinkSpec;

/// Where a sink connects, for messages: `user@host:port/database`, never the password.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: String,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}@{}:{}/{}",
            self.user, self.host, self.port, self.database
        )
    }
}

/// The connection settings of `spec`: its connection string overridden by `host`, `port`,
/// `database`, `user`; the password from `password_env` or `password_file`. Errors name the
/// variable or file, never their content.
pub(crate) fn config(node: &str, spec: &PostgresSinkSpec) -> ExecResult<(Config, Target)> {
    if spec.connection.is_some() && (spec.host.is_some() || spec.port.is_some()) {
        return Err(ExecError::transform(
            node,
            "give the server either in `connection` or with `host`/`port`, not both",
        ));
    }
    let mut config = match &spec.connection {
        Some(text) => text
            .parse::<Config>()
            .map_err(|e| ExecError::transform(node, format!("invalid `connection` string: {e}")))?,
        None => Config::new(),
    };
    if let Some(host) = &spec.host {
        config.host(host);
    }
    if config.get_hosts().is_empty() {
        config.host("127.0.0.1");
    }
    if let Some(port) = spec.port {
        config.port(port);
    }
    if let Some(db) = &spec.database {
        config.dbname(db);
    }
    if let Some(user) = &spec.user {
        config.user(user);
    }
    if config.get_user().is_none() {
        config.user("postgres");
    }
    if let Some(var) = &spec.password_env {
        let password = std::env::var(var).map_err(|_| {
            ExecError::transform(
                node,
                format!("`password_env`: the environment variable `{var}` is not set"),
            )
        })?;
        config.password(password);
    } else if let Some(file) = &spec.password_file {
        let password = std::fs::read_to_string(file).map_err(|e| {
            ExecError::transform(node, format!("`password_file`: cannot read {file}: {e}"))
        })?;
        config.password(password.trim());
    }
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "127.0.0.1".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("postgres").to_string();
    let database = config.get_dbname().unwrap_or(&user).to_string();
    Ok((
        config,
        Target {
            host,
            port,
            database,
            user,
        },
    ))
}

/// One open connection.
pub(crate) struct PgConnection {
    // Declared first so that it drops first: the client's channel closes with the runtime.
    client: Client,
    runtime: BlockingRuntime,
}

impl PgConnection {
    /// Connects (failing with `what` in the message, e.g. the sink and its target).
    pub fn connect(config: &Config, what: &str) -> ExecResult<Self> {
        let runtime = BlockingRuntime::new(what)?;
        let config = config.clone();
        let connect = async move { config.connect(NoTls).await };
        let (client, connection) = runtime.block_on(connect).map_err(|e| {
            ExecError::io(
                format!("{what}: cannot connect to PostgreSQL"),
                std::io::Error::other(describe(&e)),
            )
        })?;
        runtime.spawn(async move {
            // Ends when the client is dropped or the server closes the connection; the
            // next call then fails with the reason.
            let _ = connection.await;
        });
        Ok(PgConnection { client, runtime })
    }

    /// Runs `f` with the client to completion.
    pub fn run<'a, T, F, Fut>(&'a mut self, f: F) -> T
    where
        F: FnOnce(&'a mut Client) -> Fut,
        Fut: Future<Output = T> + Send + 'a,
        T: Send,
    {
        self.runtime.block_on(f(&mut self.client))
    }

    /// Whether the server closed the connection (a later call would fail).
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }
}

/// A PostgreSQL error as text: the server's message and SQLSTATE when it sent one.
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}
