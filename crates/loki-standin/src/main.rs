//! `loki-standin --listen 127.0.0.1:3100 [--basic-auth user:password]`
use clap::Parser;

/// A local stand-in for Grafana Cloud Loki: accepts pushes and answers
/// `query_range` so tests can read the lines back.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on. Use port 0 to pick a free one; the bound
    /// address is printed on stdout as `listening on ADDR`.
    #[arg(long, default_value = "127.0.0.1:3100")]
    listen: std::net::SocketAddr,
    /// Require HTTP Basic auth with these credentials (`user:password`), as
    /// Grafana Cloud does (user id and access token).
    #[arg(long, env = "LOKI_STANDIN_BASIC_AUTH", hide_env_values = true)]
    basic_auth: Option<String>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!("listening on {}", listener.local_addr()?);
    let app = loki_standin::router(loki_standin::Config {
        basic_auth: args.basic_auth,
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                _ = term.recv() => {},
                _ = tokio::signal::ctrl_c() => {},
            }
        })
        .await?;
    Ok(())
}
