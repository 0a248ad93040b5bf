//! The repository's own servers (the stand-ins for services that have no
//! local equivalent), built natively with one cargo call.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

use anyhow::Context;

use crate::project;

/// Every server binary of the workspace the stack runs.
pub const SERVERS: [&str; 3] = ["loki-standin", "access-standin", "tidb-gateway"];

/// Builds [`SERVERS`] and returns each executable's path as cargo reports
/// it: in the dev profile, or with `optimised` in the `stand-ins` profile
/// (Cargo.toml says why).
pub fn build(optimised: bool) -> anyhow::Result<HashMap<&'static str, PathBuf>> {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command.args(["build", "--quiet"]);
    if optimised {
        command.args(["--profile", "stand-ins"]);
    }
    for name in SERVERS {
        command.args(["--package", name, "--bin", name]);
    }
    let out = project::output(
        command
            .arg("--message-format=json-render-diagnostics")
            .current_dir(project::root()),
    )?;
    let mut found = HashMap::new();
    for msg in out
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|msg| msg["reason"] == "compiler-artifact")
    {
        if let (Some(name), Some(exe)) =
            (msg["target"]["name"].as_str(), msg["executable"].as_str())
        {
            if let Some(server) = SERVERS.iter().find(|s| **s == name) {
                found.insert(*server, PathBuf::from(exe));
            }
        }
    }
    for name in SERVERS {
        found
            .get(name)
            .with_context(|| format!("cargo did not report the {name} executable"))?;
    }
    Ok(found)
}
