//! Prometheus with the remote-write receiver, standing in for Grafana
//! Cloud's metrics endpoint: samples pushed by the Worker are queried back
//! with PromQL.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context};
use stack_manifest::Prometheus;

use super::{data_dir, Launch, Prepared, Probe};
use crate::install::StackTools;

pub(super) fn prepare(
    tools: &StackTools,
    state: &Path,
    port: u16,
) -> anyhow::Result<Prepared<Prometheus>> {
    let dir = data_dir(state, "prometheus")?;
    let config = dir.join("prometheus.yml");
    // Nothing to scrape: every sample arrives by remote write.
    std::fs::write(
        &config,
        "global:\n  scrape_interval: 15s\nscrape_configs: []\n",
    )?;
    let url = format!("http://127.0.0.1:{port}");
    let version = Command::new(&tools.prometheus)
        .arg("--version")
        .output()
        .with_context(|| format!("running {} --version", tools.prometheus.display()))?;
    let receiver = remote_write_receiver(&String::from_utf8_lossy(&version.stdout))?;
    let mut command = Command::new(&tools.prometheus);
    command
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .args([
            receiver,
            "--storage.tsdb.retention.time=2d",
            "--log.level=warn",
        ]);
    Ok(Prepared {
        launch: Launch {
            name: "prometheus",
            command,
            probe: Probe::Http(format!("{url}/-/ready")),
        },
        manifest: Prometheus {
            remote_write_url: format!("{url}/api/v1/write"),
            url,
        },
    })
}

/// The flag that turns the remote-write receiver on, by the version
/// `prometheus --version` prints: `--web.enable-remote-write-receiver` from
/// 2.33 (Debian 12 has 2.42, Ubuntu 24.04 2.45), a feature flag from 2.25
/// to 2.32 (Ubuntu 22.04 has 2.31), none before.
fn remote_write_receiver(version: &str) -> anyhow::Result<&'static str> {
    let number = version
        .split_whitespace()
        .skip_while(|word| *word != "version")
        .nth(1)
        .with_context(|| format!("no version in {version:?}"))?;
    let mut parts = number.split(['.', '+', '-']).map(str::parse::<u32>);
    let (Some(Ok(major)), Some(Ok(minor))) = (parts.next(), parts.next()) else {
        bail!("no version in {version:?}");
    };
    Ok(match (major, minor) {
        (2, 33..) | (3.., _) => "--web.enable-remote-write-receiver",
        (2, 25..=32) => "--enable-feature=remote-write-receiver",
        _ => {
            bail!("Prometheus {major}.{minor} has no remote-write receiver (2.25 or later needed)")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_receiver_is_turned_on_as_the_installed_version_takes_it() {
        let flag = |line: &str| remote_write_receiver(line).map_err(|e| e.to_string());
        // Debian 12, Ubuntu 24.04, a 3.x release.
        for line in [
            "prometheus, version 2.42.0+ds (branch: debian/sid, revision: 2.42.0+ds-5+deb12u1)",
            "prometheus, version 2.45.3+ds (branch: debian/sid, revision: 2.45.3+ds-2build1)",
            "prometheus, version 3.1.0 (branch: HEAD, revision: 7a7ca1e)",
        ] {
            assert_eq!(
                flag(line).as_deref(),
                Ok("--web.enable-remote-write-receiver")
            );
        }
        // Ubuntu 22.04.
        assert_eq!(
            flag("prometheus, version 2.31.2+ds1 (branch: debian/sid, revision: 2.31.2+ds1-1ubuntu1)")
                .as_deref(),
            Ok("--enable-feature=remote-write-receiver")
        );
        // Ubuntu 20.04: too old, said so.
        assert_eq!(
            flag("prometheus, version 2.15.2+ds (branch: debian/sid)").unwrap_err(),
            "Prometheus 2.15 has no remote-write receiver (2.25 or later needed)"
        );
        assert!(flag("").unwrap_err().starts_with("no version in"));
    }
}
