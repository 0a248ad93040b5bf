//! Bugsink, standing in for Sentry: it speaks Sentry's envelope ingestion
//! protocol, checks the DSN key, and has a REST API to read events back.
//!
//! Migrating its databases takes ~10 s, so a migrated and bootstrapped
//! directory (admin user, team, project, API token: scripts/bugsink/) is
//! kept per machine and Bugsink version and copied for each stack; the
//! configuration takes the port from the environment, so one template
//! serves every port. Events are digested inside the ingest request
//! (`TASK_ALWAYS_EAGER`), so no background worker runs.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use stack_manifest::Sentry;

use super::{cached_template, copy_tree, data_dir, Launch, Prepared, Probe};
use crate::install::StackTools;
use crate::project::{self, cache_dir, random_hex};
use crate::ui::Ui;

/// What the bootstrap created, stored in the template beside the databases.
#[derive(Serialize, Deserialize)]
struct Credentials {
    project_id: u64,
    sentry_key: String,
    api_token: String,
    admin_user: String,
    admin_password: String,
}

fn conf_dir() -> PathBuf {
    project::root().join("scripts/bugsink")
}

fn manage(venv: &Path, dir: &Path, port: u16) -> Command {
    let mut cmd = Command::new(venv.join("bin/bugsink-manage"));
    cmd.current_dir(dir)
        .env("DJANGO_SETTINGS_MODULE", "bugsink_conf")
        .env("PYTHONPATH", dir)
        .env("BUGSINK_PORT", port.to_string());
    cmd
}

pub(super) fn prepare(
    ui: &Ui,
    tools: &StackTools,
    state: &Path,
    port: u16,
) -> anyhow::Result<Prepared<Sentry>> {
    let venv = &tools.bugsink_venv;
    let bootstrap = std::fs::read_to_string(conf_dir().join("bootstrap.py"))?;
    let template_name = format!(
        "{}-{:016x}",
        venv.file_name().unwrap_or_default().to_string_lossy(),
        fingerprint(&bootstrap)
    );
    let template = cached_template(
        ui,
        "migrate and bootstrap a Bugsink database (once)",
        cache_dir().join(template_name),
        |dir| {
            std::fs::copy(
                conf_dir().join("bugsink_conf.py"),
                dir.join("bugsink_conf.py"),
            )?;
            // `migrate` must be the first argument: Bugsink lifts its
            // per-query timeout only then.
            project::run(manage(venv, dir, port).args(["migrate", "-v", "0"]))?;
            project::run(manage(venv, dir, port).args([
                "migrate",
                "snappea",
                "--database=snappea",
                "-v",
                "0",
            ]))?;
            let admin_password = random_hex(12);
            let out = project::output(
                manage(venv, dir, port)
                    .args(["shell", "--no-imports", "-c", &bootstrap])
                    .env("BUGSINK_ADMIN_EMAIL", "admin@example.com")
                    .env("BUGSINK_ADMIN_PASSWORD", &admin_password)
                    .env("BUGSINK_SENTRY_KEY", random_hex(16))
                    .env("BUGSINK_API_TOKEN", random_hex(20)),
            )?;
            let created: serde_json::Value = out
                .lines()
                .rev()
                .find_map(|l| serde_json::from_str(l).ok())
                .context("the Bugsink bootstrap printed no JSON")?;
            let credentials = Credentials {
                project_id: created["project_id"].as_u64().context("no project_id")?,
                sentry_key: created["sentry_key"]
                    .as_str()
                    .context("no sentry_key")?
                    .to_owned(),
                api_token: created["api_token"]
                    .as_str()
                    .context("no api_token")?
                    .to_owned(),
                admin_user: "admin@example.com".into(),
                admin_password,
            };
            std::fs::write(
                dir.join("credentials.json"),
                serde_json::to_vec_pretty(&credentials)?,
            )?;
            Ok(())
        },
    )?;
    let dir = data_dir(state, "bugsink")?;
    if !dir.join("credentials.json").exists() {
        copy_tree(&template, &dir)?;
    }
    // The configuration always comes from the repository, so editing it
    // needs no new template.
    std::fs::copy(
        conf_dir().join("bugsink_conf.py"),
        dir.join("bugsink_conf.py"),
    )?;
    let credentials: Credentials =
        serde_json::from_slice(&std::fs::read(dir.join("credentials.json"))?)?;

    let mut command = Command::new(venv.join("bin/gunicorn"));
    command
        .args(["--bind", &format!("127.0.0.1:{port}")])
        .args([
            "--workers",
            "2",
            "--timeout",
            "60",
            "--graceful-timeout",
            "5",
        ])
        // Otherwise gunicorn puts a control socket at one fixed path in
        // $HOME, shared by every stack.
        .arg("--no-control-socket")
        .arg("--chdir")
        .arg(&dir)
        .args([
            "--access-logfile",
            "-",
            "--error-logfile",
            "-",
            "bugsink.wsgi",
        ])
        .current_dir(&dir)
        .env("DJANGO_SETTINGS_MODULE", "bugsink_conf")
        .env("PYTHONPATH", &dir)
        .env("BUGSINK_PORT", port.to_string())
        .env("BUGSINK_SECRET_KEY", random_hex(32));
    let url = format!("http://127.0.0.1:{port}");
    Ok(Prepared {
        launch: Launch {
            name: "sentry",
            command,
            probe: Probe::Http(format!("{url}/health/ready")),
        },
        manifest: Sentry {
            dsn: format!(
                "http://{}@127.0.0.1:{port}/{}",
                credentials.sentry_key, credentials.project_id
            ),
            url,
            project_id: credentials.project_id,
            api_token: credentials.api_token,
            admin_user: credentials.admin_user,
            admin_password: credentials.admin_password,
        },
    })
}

/// A stable 64-bit FNV-1a hash, to name templates after their inputs.
fn fingerprint(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn fingerprint_is_stable_and_discriminating() {
        // FNV-1a's published test vector for "a".
        assert_eq!(super::fingerprint("a"), 0xaf63_dc4c_8601_ec8c);
        assert_ne!(super::fingerprint("a"), super::fingerprint("b"));
    }
}
