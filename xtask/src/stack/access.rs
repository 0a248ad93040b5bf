//! The repository's Access stand-in (crates/access-standin), standing in
//! for the Cloudflare Access team domain: it publishes the team's signing
//! key, which it keeps in the state directory for tests to sign with.

use std::path::{Path, PathBuf};
use std::process::Command;

use stack_manifest::Access;

use super::{Launch, Prepared, Probe};
use crate::project::random_hex;

pub(super) fn prepare(binary: &Path, state: &Path, port: u16) -> anyhow::Result<Prepared<Access>> {
    let key_file: PathBuf = state.join("access-team-key.pem");
    let kid = format!("standin-{}", random_hex(4));
    let mut command = Command::new(binary);
    command
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--key-file")
        .arg(&key_file)
        .args(["--kid", &kid]);
    let url = format!("http://127.0.0.1:{port}");
    Ok(Prepared {
        launch: Launch {
            name: "access",
            command,
            probe: Probe::Http(format!("{url}/ready")),
        },
        manifest: Access {
            certs_url: format!("{url}/cdn-cgi/access/certs"),
            team_domain: url,
            aud: random_hex(32),
            binding_aud: random_hex(32),
            service_token_client_id: format!("{}.access", random_hex(16)),
            key_file,
            kid,
        },
    })
}
