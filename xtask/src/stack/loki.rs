//! The repository's Loki stand-in (crates/loki-standin), standing in for
//! Grafana Cloud's Loki push endpoint, with Basic auth as there.

use std::path::Path;
use std::process::Command;

use stack_manifest::Loki;

use super::{Launch, Prepared, Probe};
use crate::project::random_hex;

pub(super) fn prepare(binary: &Path, port: u16) -> anyhow::Result<Prepared<Loki>> {
    let user = "123456".to_owned();
    let password = random_hex(16);
    let mut command = Command::new(binary);
    command
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("LOKI_STANDIN_BASIC_AUTH", format!("{user}:{password}"));
    let url = format!("http://127.0.0.1:{port}");
    Ok(Prepared {
        launch: Launch {
            name: "loki",
            command,
            probe: Probe::Http(format!("{url}/ready")),
        },
        manifest: Loki {
            push_url: format!("{url}/loki/api/v1/push"),
            url,
            user,
            password,
        },
    })
}
