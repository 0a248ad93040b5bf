//! `cloudflare-standin --listen 127.0.0.1:0 --token T --account ID[:NAME] --zone ID:NAME[:ACCOUNT_ID]`
//!
//! Prints the bound address (`127.0.0.1:PORT`) alone as its first line on
//! stdout; the API is then
//! at `http://ADDR/client/v4` and the control API at `http://ADDR/__standin/`.
use clap::Parser;
use cloudflare_standin::{Account, Config, StandIn, Zone};

/// A stateful stand-in for the Cloudflare API v4, validating requests
/// against Cloudflare's published OpenAPI document.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,
    /// The API token clients must send as `Authorization: Bearer`.
    #[arg(long, env = "CLOUDFLARE_STANDIN_TOKEN", hide_env_values = true)]
    token: String,
    /// An account, `ID` or `ID:NAME` (repeatable).
    #[arg(long = "account")]
    accounts: Vec<String>,
    /// A zone, `ID:NAME` or `ID:NAME:ACCOUNT_ID` (repeatable; the account
    /// defaults to the first one).
    #[arg(long = "zone")]
    zones: Vec<String>,
}

fn parse(args: Args) -> anyhow::Result<Config> {
    let accounts: Vec<Account> = args
        .accounts
        .iter()
        .map(|spec| {
            let (id, name) = spec.split_once(':').unwrap_or((spec, "Stand-in account"));
            Account {
                id: id.to_owned(),
                name: name.to_owned(),
            }
        })
        .collect();
    let zones = args
        .zones
        .iter()
        .map(|spec| {
            let mut fields = spec.splitn(3, ':');
            let id = fields.next().unwrap_or_default().to_owned();
            let name = fields
                .next()
                .ok_or_else(|| anyhow::anyhow!("--zone {spec}: expected ID:NAME[:ACCOUNT_ID]"))?
                .to_owned();
            let account_id = match fields.next() {
                Some(account) => account.to_owned(),
                None => accounts
                    .first()
                    .map(|a| a.id.clone())
                    .ok_or_else(|| anyhow::anyhow!("--zone {spec}: no account to own it"))?,
            };
            Ok(Zone {
                id,
                name,
                account_id,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Config {
        token: args.token,
        accounts,
        zones,
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let listen = args.listen;
    let standin = StandIn::start_on(listen, parse(args)?).await?;
    println!("{}", standin.addr());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
    Ok(())
}
