//! The repository's Loki stand-in (crates/loki-standin), standing in for
//! Grafana Cloud's Loki push endpoint, with Basic auth as there.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;
use stack_manifest::Loki;

use super::{Launch, Prepared, Probe};
use crate::project::{self, random_hex};

pub(super) fn prepare(_state: &Path, port: u16) -> anyhow::Result<Prepared<Loki>> {
    let binary = build()?;
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

/// Builds the stand-in and returns the path cargo reports for it.
fn build() -> anyhow::Result<PathBuf> {
    let out = project::output(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "build",
                "--quiet",
                "--package",
                "loki-standin",
                "--bin",
                "loki-standin",
            ])
            .arg("--message-format=json-render-diagnostics")
            .current_dir(project::root()),
    )?;
    out.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|msg| {
            msg["reason"] == "compiler-artifact" && msg["target"]["name"] == "loki-standin"
        })
        .find_map(|msg| msg["executable"].as_str().map(PathBuf::from))
        .context("cargo did not report the loki-standin executable")
}
