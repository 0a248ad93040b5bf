//! `access-standin --listen 127.0.0.1:PORT --key-file team-key.pem --kid KID`
use clap::Parser;

use access::testing::SigningKey;

/// A local stand-in for a Cloudflare Access team domain's certs endpoint.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on. Use port 0 to pick a free one; the bound
    /// address is printed on stdout as `listening on ADDR`.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,
    /// The team's signing key (PKCS#8 PEM). Created with a fresh 2048-bit
    /// RSA key when the file does not exist; tests sign tokens with it.
    #[arg(long)]
    key_file: std::path::PathBuf,
    /// The key id the certs endpoint publishes the key under.
    #[arg(long, default_value = "standin-key-1")]
    kid: String,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let key = match std::fs::read_to_string(&args.key_file) {
        Ok(pem) => SigningKey::from_pem(&args.kid, &pem).map_err(anyhow::Error::msg)?,
        Err(_) => {
            let key = SigningKey::generate(&args.kid);
            std::fs::write(&args.key_file, key.to_pem())?;
            key
        }
    };
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!("listening on {}", listener.local_addr()?);
    let app = access_standin::router(access_standin::Team::new(vec![key.jwk()]));
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
