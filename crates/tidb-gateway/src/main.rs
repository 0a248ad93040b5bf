//! `tidb-gateway --listen 127.0.0.1:4000 --mysql 127.0.0.1:3306`: serves
//! TiDB Cloud's HTTP SQL API in front of a MariaDB server.
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;

/// A local stand-in for TiDB Cloud Serverless's HTTP SQL API
/// (`POST /v1beta/sql`), executing every statement on MariaDB. Clients log
/// in with Basic auth as a MariaDB user; `TiDB-Database` picks the
/// database.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address to serve HTTP on. Use port 0 to pick a free one; the bound
    /// address is printed on stdout as `listening on ADDR`.
    #[arg(long, default_value = "127.0.0.1:4000")]
    listen: std::net::SocketAddr,
    /// MariaDB (or MySQL) server to run statements on, as HOST:PORT.
    #[arg(long)]
    mysql: String,
    /// Seconds a transaction or stateful session may stay idle before it
    /// is rolled back and its connection returned (TiDB Cloud: 600).
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..))]
    session_timeout_secs: u64,
    /// Seconds one statement may take; a database that does not answer in
    /// time is reported as unreachable (500, code 1105), like one that is
    /// down.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    query_timeout_secs: u64,
    /// Write one JSON line per statement to FILE: when it came, when its
    /// answer was ready, its first keyword and (hashed) its session; never
    /// its text or values. For telling a client's time between statements
    /// from the database's (`cargo xtask bench --trace-statements`).
    #[arg(long, value_name = "FILE")]
    trace_statements: Option<std::path::PathBuf>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!("listening on {}", listener.local_addr()?);
    let config = tidb_gateway::GatewayConfig {
        session_timeout: Duration::from_secs(args.session_timeout_secs),
        query_timeout: Duration::from_secs(args.query_timeout_secs),
        trace_statements: match &args.trace_statements {
            Some(path) => Some(std::sync::Arc::new(
                tidb_gateway::StatementTrace::create(path)
                    .with_context(|| format!("cannot create {}", path.display()))?,
            )),
            None => None,
        },
        ..tidb_gateway::GatewayConfig::new(args.mysql)
    };
    tidb_gateway::serve_until(listener, config, async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {},
            _ = tokio::signal::ctrl_c() => {},
        }
    })
    .await?;
    Ok(())
}
