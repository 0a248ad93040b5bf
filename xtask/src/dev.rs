//! `cargo xtask dev`: installs what is missing, builds the Worker, starts
//! the local stack, the Worker and the web and admin Pages sites bound to
//! it, prints where everything is, and stops it all on Ctrl-C or SIGTERM.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use stack_manifest::StackManifest;

use crate::stack::{Stack, StackOptions};
use crate::ui::{format_duration, Ui};
use crate::{build, flags, install, project};

pub fn run(ui: &Ui, flags: &flags::Dev) -> anyhow::Result<()> {
    let started = Instant::now();
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
    outcome
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
