//! Prometheus with the remote-write receiver, standing in for Grafana
//! Cloud's metrics endpoint: samples pushed by the Worker are queried back
//! with PromQL.

use std::path::Path;
use std::process::Command;

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
    let mut command = Command::new(&tools.prometheus);
    command
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .args([
            "--web.enable-remote-write-receiver",
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
