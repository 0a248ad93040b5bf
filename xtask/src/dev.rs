//! `cargo xtask dev`: installs what is missing, builds the Worker, starts
//! the local stack, the Worker and the web and admin Pages sites bound to
//! it, prints where everything is, and stops it all on Ctrl-C or SIGTERM.
//!
//! One per clone: its state directory and ports are fixed, so a second one
//! refuses to start while the first lives (see [`claim`]).
//!
//! With `--json`, stdout gets one document: `{"ready": true, ...}` once
//! every server answers, or `{"ok": false, "error": ...}` if it never gets
//! there. A server that dies after `ready` is said on stderr only, and the
//! command exits 1 having stopped the rest.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::json;
use stack_manifest::StackManifest;

use crate::stack::process::OwnerLock;
use crate::stack::{Stack, StackOptions};
use crate::ui::{format_duration, Ui};
use crate::{build, flags, install, project};

pub fn run(ui: &Ui, flags: &flags::Dev) -> anyhow::Result<()> {
    let started = Instant::now();
    // First: a second dev must not rebuild the bundle the first serves, nor
    // stop its servers and delete its state (Stack::start does both).
    let _owner = claim(&project::local_dir())?;
    let interrupted = interrupt_flag()?;
    let build_tools = install::build_tools(ui)?;
    let stack_tools = install::stack_tools(ui)?;
    build::worker(ui, &build_tools, build::Variant::Local)?;
    let options = StackOptions {
        state_dir: state_dir(),
        api_port: flags.port,
        keep_data: flags.keep_data,
        optimised_stand_ins: false,
        trace_statements: None,
    };
    let mut stack = Stack::start(ui, &stack_tools, Some(&build_tools), &options, &interrupted)?;
    let startup = started.elapsed();
    let manifest_path = options.state_dir.join(stack_manifest::FILE_NAME);
    if ui.json {
        println!(
            "{}",
            json!({
                "ready": true,
                "startup_seconds": startup.as_secs_f64(),
                "manifest": manifest_path,
                "stack": stack.manifest,
                "pids": stack.pids().into_iter().collect::<std::collections::BTreeMap<_, _>>(),
            })
        );
    } else {
        print_table(&stack.manifest);
        eprintln!(
            "\n  credentials and URLs as JSON: {}",
            manifest_path.display()
        );
        eprintln!(
            "  ready in {} (from `cargo xtask dev` to every server answering); Ctrl-C stops everything",
            format_duration(startup)
        );
    }
    let outcome = loop {
        if interrupted.load(Ordering::SeqCst) {
            break Ok(());
        }
        if let Err(e) = stack.check_alive() {
            break Err(e);
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    ui.step("stop every server", || {
        stack.stop();
        Ok(())
    })?;
    // Under `--json` the one document, `ready`, is out already.
    outcome.map_err(|e| crate::DocumentPrinted(e).into())
}

/// Makes this process the clone's one `cargo xtask dev` for as long as the
/// returned lock lives, or fails naming the one that is. The lock file sits
/// beside the state directory (which the stack deletes and makes again),
/// and the kernel drops the lock when its holder dies: a stack whose xtask
/// was killed is still cleaned up by the next start, as before.
fn claim(local: &std::path::Path) -> anyhow::Result<OwnerLock> {
    std::fs::create_dir_all(local).with_context(|| format!("cannot create {}", local.display()))?;
    let holder = match OwnerLock::acquire(&local.join("dev.lock"))? {
        Ok(lock) => return Ok(lock),
        Err(holder) => holder,
    };
    let state = local.join("dev");
    let (who, stop) = match holder {
        Some(pid) => (
            format!(" (pid {pid})"),
            format!("Ctrl-C in its terminal or `kill {pid}`"),
        ),
        None => (String::new(), "Ctrl-C in its terminal".to_owned()),
    };
    bail!(
        "another `cargo xtask dev`{who} is running on {}; stop it first ({stop}), \
         or run `cargo xtask test`, which starts a stack of its own beside it",
        state.display()
    )
}

/// Where `cargo xtask dev` keeps its state (one per clone).
pub fn state_dir() -> std::path::PathBuf {
    project::local_dir().join("dev")
}

/// Turns SIGINT and SIGTERM into a flag that the startup and the wait loop
/// check, so that every exit path goes through the stack's cleanup.
pub fn interrupt_flag() -> anyhow::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    let set = flag.clone();
    ctrlc::set_handler(move || set.store(true, Ordering::SeqCst))?;
    Ok(flag)
}

fn print_table(stack: &StackManifest) {
    let state = stack.state_dir.display();
    let mut rows: Vec<(&str, String, String)> = Vec::new();
    if let Some(api) = &stack.api {
        rows.push((
            "api (Worker)",
            api.url.clone(),
            format!("curl {}/healthz", api.url),
        ));
    }
    if let Some(sites) = &stack.sites {
        rows.push((
            "web (Pages)",
            sites.web.url.clone(),
            "open in a browser; /api/* goes through the shim to the API".to_owned(),
        ));
        rows.push((
            "admin (Pages)",
            sites.admin.url.clone(),
            "needs a Cf-Access-Jwt-Assertion header (Access adds it in rc/stg/prd)".to_owned(),
        ));
    }
    rows.extend([
        (
            "mariadb",
            format!(
                "mysql://{}@{}:{}/{}",
                stack.mariadb.user, stack.mariadb.host, stack.mariadb.port, stack.mariadb.database
            ),
            format!(
                "mariadb -h {} -P {} -u {} -p {}   (password: mariadb.password)",
                stack.mariadb.host, stack.mariadb.port, stack.mariadb.user, stack.mariadb.database
            ),
        ),
        (
            "redis",
            format!("redis://{}:{}", stack.redis.host, stack.redis.port),
            format!(
                "redis-cli -p {} --askpass   (password: redis.password)",
                stack.redis.port
            ),
        ),
        (
            "s3 (B2)",
            stack.s3.endpoint.clone(),
            format!(
                "bucket {} path-style, SigV4 keys: s3.*; files in {state}/s3",
                stack.s3.bucket
            ),
        ),
        (
            "sentry (Bugsink)",
            stack.sentry.url.clone(),
            format!(
                "log in as {} (sentry.admin_password); DSN: sentry.dsn",
                stack.sentry.admin_user
            ),
        ),
        (
            "prometheus",
            stack.prometheus.url.clone(),
            format!(
                "PromQL UI; remote write at {}",
                stack.prometheus.remote_write_url
            ),
        ),
        (
            "loki (stand-in)",
            stack.loki.url.clone(),
            format!(
                "push {}, read /loki/api/v1/query_range; Basic auth loki.*",
                stack.loki.push_url
            ),
        ),
    ]);
    eprintln!();
    eprintln!("  {:<18} {:<40} how to reach it", "service", "url");
    for (name, url, how) in rows {
        eprintln!("  {name:<18} {url:<40} {how}");
    }
    eprintln!("  logs: {state}/logs/");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_dev_is_refused_before_it_touches_the_first() {
        let local = project::scratch_dir("dev-claim");
        let state = local.join("dev");
        std::fs::create_dir_all(&state).unwrap();
        std::fs::write(state.join("pids"), "mariadb 1\n").unwrap();

        let first = claim(&local).unwrap();
        let refused = format!("{:#}", claim(&local).unwrap_err());
        let pid = std::process::id();
        assert!(
            refused.contains(&format!("`cargo xtask dev` (pid {pid}) is running")),
            "{refused}"
        );
        assert!(refused.contains(&format!("kill {pid}")), "{refused}");
        assert_eq!(
            std::fs::read_to_string(state.join("pids")).unwrap(),
            "mariadb 1\n",
            "the first dev's state is left alone"
        );
        drop(first);
        // The first has ended: the next one starts (and cleans up after it).
        claim(&local).unwrap();
        std::fs::remove_dir_all(local).unwrap();
    }
}
