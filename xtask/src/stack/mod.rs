//! The local stack: real servers on free 127.0.0.1 ports under one state
//! directory, plus the API Worker in `wrangler dev` and the web and admin
//! Pages sites in `wrangler pages dev`, bound to it (sites.rs). `cargo
//! xtask dev` and `cargo xtask test` both start it through
//! [`Stack::start`], so the tests run against exactly what a developer
//! runs.
//!
//! Each service has its own module that knows how to prepare its data
//! directory and command line; this module allocates ports, starts them all
//! (slow preparation in parallel), waits until each answers a real probe,
//! applies the migrations, and writes the [`StackManifest`].

mod access;
mod binaries;
mod bugsink;
mod loki;
mod mariadb;
pub mod process;
mod prometheus;
mod redis;
mod s3;
pub mod sites;
mod tidb;
mod worker;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context};
use stack_manifest::StackManifest;

use crate::install::{BuildTools, StackTools};
use crate::project;
use crate::ui::Ui;
pub use process::stop_recorded;
use process::Supervised;
pub use worker::worker_vars;

/// How long every server together may take to answer its probe.
const STARTUP_DEADLINE: Duration = Duration::from_secs(90);

pub struct StackOptions {
    pub state_dir: PathBuf,
    /// Port for the API Worker; 0 picks a free one.
    pub api_port: u16,
    /// Keep the previous data directories instead of starting empty.
    pub keep_data: bool,
    /// Run the repository's own stand-ins optimised (`cargo xtask bench`)
    /// instead of the dev builds tests and `dev` share with `cargo build`.
    pub optimised_stand_ins: bool,
    /// Have the TiDB gateway record its statements' times in this file
    /// (`cargo xtask bench --trace-statements`).
    pub trace_statements: Option<PathBuf>,
}

/// A running stack. Dropping it stops every process it started.
pub struct Stack {
    pub manifest: StackManifest,
    processes: Vec<Supervised>,
    pid_file: PathBuf,
}

/// How to tell that a freshly started server is ready to take requests.
enum Probe {
    /// The port accepts TCP connections.
    Tcp(u16),
    /// `GET url` answers 200.
    Http(String),
}

impl Probe {
    fn ready(&self, client: &reqwest::blocking::Client) -> bool {
        match self {
            Probe::Tcp(port) => TcpStream::connect_timeout(
                &SocketAddr::from(([127, 0, 0, 1], *port)),
                Duration::from_millis(200),
            )
            .is_ok(),
            Probe::Http(url) => client
                .get(url)
                .timeout(Duration::from_secs(2))
                .send()
                .is_ok_and(|r| r.status().is_success()),
        }
    }
}

/// A server ready to be spawned.
struct Launch {
    name: &'static str,
    command: Command,
    probe: Probe,
}

/// Free ports on 127.0.0.1, all held until every one is chosen so that no
/// two services get the same one.
fn free_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()
        .context("cannot bind a free port on 127.0.0.1")?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

/// One free port on 127.0.0.1 (for servers started beside the stack).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(free_ports(1)?[0])
}

/// An Access token for the admin routes, signed with the stack's team key
/// as Access would issue it to `email`, valid for 10 minutes (empty if the
/// key cannot be read: the admin routes then answer 401, which the caller
/// reports).
pub fn admin_token(manifest: &StackManifest, email: &str) -> String {
    admin_token_valid_for(manifest, email, std::time::Duration::from_secs(600))
}

/// [`admin_token`] valid for `lifetime`, for callers that load the admin
/// routes longer than 10 minutes (a bench's warm-ups and rounds).
pub fn admin_token_valid_for(
    manifest: &StackManifest,
    email: &str,
    lifetime: std::time::Duration,
) -> String {
    let team = &manifest.access;
    let Ok(pem) = std::fs::read_to_string(&team.key_file) else {
        return String::new();
    };
    let Ok(key) = ::access::testing::SigningKey::from_pem(&team.kid, &pem) else {
        return String::new();
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    key.sign(&user_claims_valid_for(
        &team.team_domain,
        &team.aud,
        email,
        now,
        lifetime,
    ))
}

/// A user's claims as Access issues them, expiring `lifetime` after `now`.
fn user_claims_valid_for(
    team_domain: &str,
    aud: &str,
    email: &str,
    now: u64,
    lifetime: std::time::Duration,
) -> serde_json::Value {
    let mut claims = ::access::testing::user_claims(team_domain, aud, email, now);
    claims["exp"] = (now + lifetime.as_secs()).into();
    claims
}

/// Ports for the web and admin sites: beside a fixed API port (`cargo
/// xtask dev`'s 8787 gives 8788 and 8789, stable URLs for a developer) when
/// both are free, else the free ones picked for this stack.
fn site_ports(api_port: u16, free: [u16; 2]) -> [u16; 2] {
    let beside = [api_port.wrapping_add(1), api_port.wrapping_add(2)];
    if api_port != 0 && api_port < u16::MAX - 2 && beside.iter().all(|&p| port_is_free(p)) {
        beside
    } else {
        free
    }
}

fn port_is_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

impl Stack {
    /// Starts every server and, when `build` is given, the API Worker from
    /// the local bundle already built (`build::Variant::Local`). Returns
    /// once every service answers its probe and the migrations are applied.
    pub fn start(
        ui: &Ui,
        tools: &StackTools,
        build: Option<&BuildTools>,
        options: &StackOptions,
        interrupted: &AtomicBool,
    ) -> anyhow::Result<Stack> {
        let state = options.state_dir.clone();
        // Only the project's own state: never the siblings of a state
        // directory given elsewhere.
        if state.parent() == Some(project::local_dir().as_path()) {
            sweep_abandoned_runs(ui, &project::local_dir());
        }
        let pid_file = state.join("pids");
        let stale = stop_recorded(&pid_file);
        if stale > 0 {
            ui.info(format!(
                "  stopped {stale} server(s) left running by an earlier run"
            ));
        }
        if !options.keep_data {
            let _ = std::fs::remove_dir_all(&state);
        }
        std::fs::create_dir_all(state.join("logs"))?;

        // mariadb, redis, s3 (B2's CORS front), sentry, prometheus, loki,
        // api, api inspector, access, tidb, s3s-fs behind the front, web,
        // admin, web inspector, admin inspector
        let ports = free_ports(15)?;
        let api_port = match options.api_port {
            0 => ports[6],
            p if port_is_free(p) => p,
            p => bail!("port {p} for the API Worker is in use; pass --port 0 to pick a free one"),
        };
        let site_ports = site_ports(options.api_port, [ports[11], ports[12]]);
        let site_origins = sites::origins(&site_ports);

        // Slow preparation (templates, copies, compiling the stand-ins)
        // runs in parallel; no process is spawned from these threads.
        let (db, redis, s3, sentry, prom, binaries) = std::thread::scope(|scope| {
            let db = scope.spawn(|| mariadb::prepare(ui, tools, &state, ports[0]));
            let sentry = scope.spawn(|| bugsink::prepare(ui, tools, &state, ports[3]));
            let binaries = scope.spawn(|| binaries::build(options.optimised_stand_ins));
            let redis = redis::prepare(tools, &state, ports[1]);
            let s3 = s3::prepare(tools, &state, ports[2], ports[10], &site_origins);
            let prom = prometheus::prepare(tools, &state, ports[4]);
            anyhow::Ok((
                join(db)?,
                redis?,
                s3?,
                join(sentry)?,
                prom?,
                join(binaries)?,
            ))
        })?;
        let (s3, s3_cors) = s3;
        let loki = loki::prepare(&binaries["loki-standin"], ports[5])?;
        let access = access::prepare(&binaries["access-standin"], &state, ports[8])?;
        let tidb = tidb::prepare(
            &binaries["tidb-gateway"],
            &db.manifest,
            ports[9],
            options.trace_statements.as_deref(),
        );

        let mut manifest = StackManifest {
            state_dir: state.clone(),
            mariadb: db.manifest.clone(),
            tidb: tidb.manifest.clone(),
            redis: redis.manifest.clone(),
            s3: s3.manifest.clone(),
            sentry: sentry.manifest.clone(),
            prometheus: prom.manifest.clone(),
            loki: loki.manifest.clone(),
            access: access.manifest.clone(),
            api: None,
            sites: None,
        };
        let mut launches = vec![
            db.launch,
            redis.launch,
            s3.launch,
            s3_cors,
            sentry.launch,
            prom.launch,
            loki.launch,
            access.launch,
            tidb.launch,
        ];
        if let Some(build) = build {
            let api = worker::prepare(build, &manifest, api_port, ports[7], &site_origins)?;
            launches.extend(sites::prepare(
                &build.wrangler,
                &state,
                &api.manifest.binding_secret,
                &site_ports,
                &[ports[13], ports[14]],
            )?);
            manifest.api = Some(api.manifest);
            manifest.sites = Some(sites::manifest(&site_ports));
            launches.push(api.launch);
        }

        let mut stack = Stack {
            manifest,
            processes: Vec::new(),
            pid_file: pid_file.clone(),
        };
        let mut probes = Vec::new();
        for mut launch in launches {
            let log = state.join("logs").join(format!("{}.log", launch.name));
            stack.processes.push(process::spawn(
                launch.name,
                &mut launch.command,
                &log,
                &pid_file,
            )?);
            probes.push(launch.probe);
        }
        ui.step("wait for every server to answer", || {
            stack.wait_ready(&probes, interrupted)
        })?;
        ui.step("apply migrations/ to MariaDB", || {
            crate::migrate::apply_with_retry(&stack.manifest.mariadb.url, Duration::from_secs(20))
        })?;
        stack
            .manifest
            .write(&state.join(stack_manifest::FILE_NAME))?;
        Ok(stack)
    }

    fn wait_ready(&mut self, probes: &[Probe], interrupted: &AtomicBool) -> anyhow::Result<()> {
        let started = Instant::now();
        let client = reqwest::blocking::Client::new();
        let mut ready = vec![false; probes.len()];
        while !ready.iter().all(|&r| r) {
            if interrupted.load(Ordering::SeqCst) {
                bail!("interrupted");
            }
            for (i, probe) in probes.iter().enumerate() {
                if ready[i] {
                    continue;
                }
                let server = &mut self.processes[i];
                if let Some(status) = server.exited() {
                    bail!(
                        "{} exited during startup ({status}); the end of {}:\n{}",
                        server.name,
                        server.log_path().display(),
                        server.log_tail()
                    );
                }
                ready[i] = probe.ready(&client);
            }
            if started.elapsed() > STARTUP_DEADLINE {
                let waiting: Vec<&str> = self
                    .processes
                    .iter()
                    .zip(&ready)
                    .filter(|(_, &r)| !r)
                    .map(|(p, _)| p.name)
                    .collect();
                bail!(
                    "still not answering after {}s: {}",
                    STARTUP_DEADLINE.as_secs(),
                    waiting.join(", ")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// An error naming the first server that stopped by itself, if any.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        for server in &mut self.processes {
            if let Some(status) = server.exited() {
                bail!(
                    "{} stopped unexpectedly ({status}); the end of {}:\n{}",
                    server.name,
                    server.log_path().display(),
                    server.log_tail()
                );
            }
        }
        Ok(())
    }

    /// The pid of every server, for status output.
    pub fn pids(&self) -> Vec<(&'static str, u32)> {
        self.processes.iter().map(|p| (p.name, p.pid())).collect()
    }

    /// Stops every server (the Worker first, the database last), then
    /// whatever else the pid file records: servers that tests stopped and
    /// started again as new processes.
    pub fn stop(&mut self) {
        for server in self.processes.iter_mut().rev() {
            server.stop(Duration::from_secs(10));
        }
        self.processes.clear();
        stop_recorded(&self.pid_file);
        let _ = std::fs::remove_file(&self.pid_file);
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The kinds of per-run state directory, `<kind>-<pid>` in `.local`:
/// `cargo xtask test`'s and `cargo xtask bench`'s (and its soak's). A run
/// deletes its own when it succeeds and keeps it when it fails, for its
/// logs. (`dev` has one directory, reused by every start.)
const PER_RUN_KINDS: [&str; 3] = ["test", "bench", "soak"];

/// How long the state of a failed run is kept for inspection.
const KEEP_FAILED_RUNS: Duration = Duration::from_secs(7 * 24 * 3600);

/// A per-run state directory whose run has ended without deleting it.
#[derive(Debug)]
struct Abandoned {
    dir: PathBuf,
    kind: &'static str,
    /// When the run last wrote to it (see [`last_touched`]).
    touched: SystemTime,
}

/// Cleans up after runs that ended without doing so (failed, or killed):
/// stops the servers still running from their state directories, then
/// deletes those directories older than [`KEEP_FAILED_RUNS`], except the
/// newest of each kind, so the last failure can always be looked at. A
/// directory whose run is alive, such as a test run beside this one, is
/// left alone.
pub fn sweep_abandoned_runs(ui: &Ui, local: &Path) {
    sweep(ui, local, process::pid_alive, SystemTime::now());
}

/// [`sweep_abandoned_runs`] with whether a pid is `alive` and the time
/// given.
fn sweep(ui: &Ui, local: &Path, alive: impl Fn(i32) -> bool, now: SystemTime) {
    let abandoned = abandoned_runs(local, alive);
    for run in &abandoned {
        let stopped = PID_FILES
            .iter()
            .map(|file| stop_recorded(&run.dir.join(file)))
            .sum::<usize>();
        if stopped > 0 {
            ui.info(format!(
                "  stopped {stopped} server(s) of an abandoned {} run in {}",
                run.kind,
                run.dir.display()
            ));
        }
    }
    for dir in expired(&abandoned, now, KEEP_FAILED_RUNS) {
        if std::fs::remove_dir_all(dir).is_ok() {
            ui.info(format!(
                "  deleted {}, the state of a run that failed over {} days ago",
                dir.display(),
                KEEP_FAILED_RUNS.as_secs() / (24 * 3600)
            ));
        }
    }
}

/// The pid files in a per-run state directory: the stack's and the bench's
/// own servers'.
const PID_FILES: [&str; 2] = ["pids", "bench-pids"];

/// The per-run state directories in `local` whose run's process is not
/// `alive`.
fn abandoned_runs(local: &Path, alive: impl Fn(i32) -> bool) -> Vec<Abandoned> {
    let Ok(entries) = std::fs::read_dir(local) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let (kind, pid) = name.split_once('-')?;
            let kind = *PER_RUN_KINDS.iter().find(|k| **k == kind)?;
            let pid = pid.parse::<i32>().ok()?;
            let dir = entry.path();
            if alive(pid) || !dir.is_dir() {
                return None;
            }
            let touched = last_touched(&dir)?;
            Some(Abandoned { dir, kind, touched })
        })
        .collect()
}

/// The latest modification time of the entries of `dir`, or of `dir` when
/// it has none. Not the directory's own time otherwise, nor its pid files':
/// the sweep removes those, which would make a dead run's state look new.
fn last_touched(dir: &Path) -> Option<SystemTime> {
    let entries = std::fs::read_dir(dir).ok()?;
    entries
        .flatten()
        .filter(|e| !PID_FILES.iter().any(|f| e.file_name() == *f))
        .filter_map(|e| e.metadata().and_then(|m| m.modified()).ok())
        .max()
        .or_else(|| dir.metadata().and_then(|m| m.modified()).ok())
}

/// Of `abandoned`, the directories to delete at `now`: those not touched
/// for `keep`, except the newest of each kind.
fn expired(abandoned: &[Abandoned], now: SystemTime, keep: Duration) -> Vec<&Path> {
    abandoned
        .iter()
        .filter(|run| {
            let newest_of_its_kind = abandoned
                .iter()
                .filter(|other| other.kind == run.kind)
                .all(|other| other.touched <= run.touched);
            let old = now.duration_since(run.touched).unwrap_or_default() > keep;
            old && !newest_of_its_kind
        })
        .map(|run| run.dir.as_path())
        .collect()
}

/// The result of a preparation thread; a panic there becomes an error.
fn join<T>(handle: std::thread::ScopedJoinHandle<'_, anyhow::Result<T>>) -> anyhow::Result<T> {
    handle
        .join()
        .unwrap_or_else(|_| Err(anyhow::anyhow!("preparation thread panicked")))
}

/// A prepared service: how to launch it and what the manifest says of it.
struct Prepared<M> {
    launch: Launch,
    manifest: M,
}

/// The environment of every wrangler the stack runs (the API's `wrangler
/// dev` and the sites' `wrangler pages dev`). One place, because the `API`
/// binding only connects when they agree: the sites find the Worker in the
/// dev registry the Worker registered itself in, kept per stack
/// (`<state>/wrangler-registry`) so a test stack's sites never reach a dev
/// stack's Worker of the same name. Nothing is sent to Cloudflare (no
/// metrics, no request.cf lookup), and wrangler's own logs stay in the
/// stack's `logs/`.
fn wrangler_env(command: &mut Command, state: &Path) {
    command
        .env("WRANGLER_REGISTRY_PATH", state.join("wrangler-registry"))
        .env("WRANGLER_SEND_METRICS", "false")
        .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
        .env("WRANGLER_LOG_PATH", state.join("logs/wrangler"))
        .env("NO_COLOR", "1");
}

/// Creates `dir` (and parents) and returns it.
fn data_dir(state: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let dir = state.join(name);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// Builds a per-machine template directory once: `build` fills a temporary
/// directory that is renamed into place only when complete, so an
/// interrupted build never leaves a half-made template behind.
fn cached_template(
    ui: &Ui,
    title: &str,
    path: PathBuf,
    build: impl FnOnce(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<PathBuf> {
    if path.is_dir() {
        return Ok(path);
    }
    let partial = path.with_extension(format!("partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial)?;
    if let Err(e) = ui.step(title, || build(&partial)) {
        let _ = std::fs::remove_dir_all(&partial);
        return Err(e);
    }
    if std::fs::rename(&partial, &path).is_err() && !path.is_dir() {
        bail!("cannot move {} into place", partial.display());
    }
    let _ = std::fs::remove_dir_all(&partial);
    Ok(path)
}

/// `cp -a SRC/. DEST`: a copy that keeps modes and is fast for many files.
fn copy_tree(src: &Path, dest: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dest)?;
    project::run(Command::new("cp").arg("-a").arg(src.join(".")).arg(dest))
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::fs::File;

    #[test]
    fn a_token_can_outlive_ten_minutes_and_is_otherwise_as_access_issues_it() {
        let day = std::time::Duration::from_secs(24 * 3600);
        let claims = user_claims_valid_for("https://t", "aud", "a@example.com", 1_000, day);
        assert_eq!(claims["iat"], 1_000);
        assert_eq!(claims["exp"], 1_000 + 24 * 3600);
        let mut usual = ::access::testing::user_claims("https://t", "aud", "a@example.com", 1_000);
        usual["exp"] = claims["exp"].clone();
        assert_eq!(claims, usual, "only the expiry differs");
    }

    #[test]
    fn free_ports_are_distinct_and_bindable() {
        let ports = free_ports(5).unwrap();
        let mut unique = ports.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 5);
        assert!(ports.iter().all(|&p| port_is_free(p)));
    }

    #[test]
    fn probes_see_a_listener() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let client = reqwest::blocking::Client::new();
        assert!(Probe::Tcp(port).ready(&client));
        drop(listener);
        assert!(!Probe::Tcp(port).ready(&client));
    }

    #[test]
    fn dead_runs_state_is_deleted_after_a_week_but_the_newest_failure_is_kept() {
        let local = project::scratch_dir("sweep");
        let day = Duration::from_secs(24 * 3600);
        let now = SystemTime::now();
        // name, days since its run last wrote to it
        let dirs = [
            ("test-101", 30),
            ("test-102", 20),
            ("test-103", 1),
            ("bench-201", 40),
            ("soak-301", 9),
            ("soak-302", 8),
            ("test-999", 50),
            ("dev", 60),
            ("fuzz", 60),
            ("test-notapid", 60),
        ];
        for (name, age) in dirs {
            let dir = local.join(name);
            std::fs::create_dir_all(dir.join("logs")).unwrap();
            std::fs::write(dir.join("pids"), "").unwrap();
            for path in [dir.join("logs"), dir.join("pids"), dir] {
                File::open(path)
                    .unwrap()
                    .set_modified(now - day * age)
                    .unwrap();
            }
        }
        // What the run wrote last counts, not the directory's own time.
        let written_today = local.join("test-102/logs");
        File::open(written_today)
            .unwrap()
            .set_modified(now)
            .unwrap();
        let alive = |pid| pid == 999;
        let names = |runs: &[Abandoned]| {
            let mut names: Vec<_> = runs
                .iter()
                .map(|run| run.dir.file_name().unwrap().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        };
        let abandoned = abandoned_runs(&local, alive);
        assert_eq!(
            names(&abandoned),
            [
                "bench-201",
                "soak-301",
                "soak-302",
                "test-101",
                "test-102",
                "test-103"
            ],
            "a live run's, dev's and other directories are no dead run's"
        );
        let mut deleted: Vec<_> = expired(&abandoned, now, 7 * day)
            .into_iter()
            .map(|dir| dir.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        deleted.sort();
        // test-103 and test-102 were written to this week; bench-201 and
        // soak-302 are the newest of their kinds.
        assert_eq!(deleted, ["soak-301", "test-101"]);

        let ui = Ui { json: true };
        sweep(&ui, &local, alive, now);
        for (name, _) in dirs {
            let deleted = ["soak-301", "test-101"].contains(&name);
            assert_eq!(!local.join(name).exists(), deleted, "{name}");
        }
        // The sweep removed the pid files; that does not make them new.
        let again = abandoned_runs(&local, alive);
        assert_eq!(
            names(&again),
            ["bench-201", "soak-302", "test-102", "test-103"]
        );
        let bench = again.iter().find(|run| run.kind == "bench").unwrap();
        assert!(now.duration_since(bench.touched).unwrap() > 30 * day);
        std::fs::remove_dir_all(local).unwrap();
    }

    #[test]
    fn templates_are_built_once_and_atomically() {
        let ui = Ui { json: true };
        let base = project::scratch_dir("template");
        let path = base.join("t");
        let failed = cached_template(&ui, "failing", path.clone(), |_| bail!("boom"));
        assert!(failed.is_err());
        assert!(!path.exists(), "a failed build must not leave a template");
        let mut calls = 0;
        for _ in 0..2 {
            cached_template(&ui, "ok", path.clone(), |dir| {
                calls += 1;
                std::fs::write(dir.join("f"), "x")?;
                Ok(())
            })
            .unwrap();
        }
        assert_eq!(calls, 1);
        assert_eq!(std::fs::read_to_string(path.join("f")).unwrap(), "x");
        std::fs::remove_dir_all(base).unwrap();
    }
}
