//! Faults injected into the stack's servers by the tests that show how the
//! Worker lives through them: a server frozen (SIGSTOP: connections stay
//! open and nothing answers) or stopped as an operator would (SIGTERM) and
//! started again as a new process.

use std::time::Duration;

use crate::{http, stack};

/// The stack's process whose command line names `program` and `mark`.
pub fn pid_of(program: &str, mark: &str) -> String {
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(program) && cmdline.contains(mark) {
            return entry.file_name().to_string_lossy().into_owned();
        }
    }
    panic!("no {program} of this stack is running");
}

/// SIGSTOPs a process (or, for `-PGID`, its whole group) and SIGCONTs it
/// when dropped, even if the test fails.
pub struct Frozen(String);

impl Frozen {
    pub fn new(program: &str, mark: &str) -> Self {
        let pid = pid_of(program, mark);
        signal("-STOP", &pid);
        Frozen(pid)
    }

    /// The process and every process of its group (gunicorn's workers).
    pub fn group(program: &str, mark: &str) -> Self {
        let group = stat_field(&pid_of(program, mark), GROUP).expect("a running process");
        let target = format!("-{group}");
        signal("-STOP", &target);
        Frozen(target)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        signal("-CONT", &self.0);
    }
}

/// Fields of /proc/PID/stat, counted after the command name: the state and
/// the process group.
const STATE: usize = 0;
const GROUP: usize = 2;

/// Field `n` (after the command name, which may hold spaces) of the
/// process's /proc stat line; `None` once it is gone.
fn stat_field(pid: &str, n: usize) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(n).map(str::to_owned)
}

pub fn signal(which: &str, pid: &str) {
    let status = std::process::Command::new("kill")
        .args([which, "--", pid])
        .status()
        .unwrap();
    assert!(status.success(), "kill {which} {pid}");
}

/// A server of the stack stopped as an operator would (SIGTERM, waited
/// for), to be started again as a new process with the command line,
/// environment and working directory it had.
pub struct Stopped {
    name: &'static str,
    command: Vec<String>,
    environment: Vec<(String, String)>,
    directory: std::path::PathBuf,
}

/// The NUL-separated fields of a /proc file.
fn proc_fields(pid: &str, file: &str) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/{file}"))
        .unwrap()
        .split(|&b| b == 0)
        .filter(|part| !part.is_empty())
        .map(|part| String::from_utf8_lossy(part).into_owned())
        .collect()
}

fn wait_gone(name: &str, pid: &str) {
    // Gone, or a zombie its parent (the stack) has not reaped yet.
    let running = || stat_field(pid, STATE).is_some_and(|state| state != "Z" && state != "X");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while running() {
        assert!(std::time::Instant::now() < deadline, "{name} did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Stopped {
    /// Stops the process whose command line names `program` and `mark`;
    /// `restart_with` is how to start it again (by default its own command
    /// line, which redis-server, having retitled itself, no longer has).
    pub fn new(
        name: &'static str,
        program: &str,
        mark: &str,
        restart_with: Option<Vec<String>>,
    ) -> Self {
        let pid = pid_of(program, mark);
        let stopped = Stopped::capture(name, &pid, restart_with);
        signal("-TERM", &pid);
        wait_gone(name, &pid);
        stopped
    }

    /// Stops the process group led by the process that `program` and
    /// `mark` find (gunicorn: the master and its workers).
    pub fn group(name: &'static str, program: &str, mark: &str) -> Self {
        let leader = stat_field(&pid_of(program, mark), GROUP).expect("a running process");
        let stopped = Stopped::capture(name, &leader, None);
        signal("-TERM", &format!("-{leader}"));
        wait_gone(name, &leader);
        stopped
    }

    fn capture(name: &'static str, pid: &str, restart_with: Option<Vec<String>>) -> Self {
        Stopped {
            name,
            command: restart_with.unwrap_or_else(|| proc_fields(pid, "cmdline")),
            environment: proc_fields(pid, "environ")
                .into_iter()
                .filter_map(|pair| {
                    let (key, value) = pair.split_once('=')?;
                    Some((key.to_owned(), value.to_owned()))
                })
                .collect(),
            directory: std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap(),
        }
    }

    /// Starts the server again in the stack's state directory, in a process
    /// group of its own recorded in the stack's pid file: the stack stops
    /// it when the run ends (nothing here waits for it; once this test
    /// process exits, init reaps it).
    #[allow(clippy::zombie_processes)]
    pub fn restart(self) {
        use std::io::Write as _;
        use std::os::unix::process::CommandExt as _;
        let state = &stack().state_dir;
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(
                state
                    .join("logs")
                    .join(format!("{}-restarted.log", self.name)),
            )
            .unwrap();
        let child = std::process::Command::new(&self.command[0])
            .args(&self.command[1..])
            .env_clear()
            .envs(self.environment)
            // In the state directory unless it ran somewhere inside it:
            // the stack stops a recorded process only if its command line
            // or directory names the state directory (a guard against pid
            // reuse), and the Loki stand-in's names neither.
            .current_dir(if self.directory.starts_with(state) {
                self.directory.as_path()
            } else {
                state.as_path()
            })
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap();
        // A `cargo xtask dev` stack keeps no pid file (it stops only its own
        // children): there the restarted server outlives the stack.
        let mut pids = std::fs::File::options()
            .create(true)
            .append(true)
            .open(state.join("pids"))
            .unwrap();
        writeln!(pids, "{}-restarted {}", self.name, child.id()).unwrap();
    }
}

/// Polls `url` until it answers `status`, for at most 30 s.
pub async fn until_status(url: &str, status: u16) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(response) = http().get(url).send().await {
            if response.status() == status {
                return;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{url} never answered {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The address a server of the stack listens on, from its URL: what its
/// command line names, which finds its process.
pub fn listen_address(url: &str) -> String {
    let url: url::Url = url.parse().unwrap();
    format!("127.0.0.1:{}", url.port().unwrap())
}

/// The telemetry sinks (Bugsink, Prometheus, the Loki stand-in) frozen
/// together until dropped. Bugsink is gunicorn's master and its workers: a
/// process group.
pub fn frozen_sinks() -> Vec<Frozen> {
    let state = stack().state_dir.to_string_lossy().into_owned();
    vec![
        Frozen::group("gunicorn", &listen_address(&stack().sentry.url)),
        Frozen::new("prometheus", &state),
        Frozen::new("loki-standin", &listen_address(&stack().loki.url)),
    ]
}

/// The telemetry sinks stopped together; restart each, then wait for
/// [`until_sinks_ready`].
pub fn stopped_sinks() -> Vec<Stopped> {
    let state = stack().state_dir.to_string_lossy().into_owned();
    vec![
        Stopped::group("sentry", "gunicorn", &listen_address(&stack().sentry.url)),
        Stopped::new("prometheus", "prometheus", &state, None),
        Stopped::new(
            "loki",
            "loki-standin",
            &listen_address(&stack().loki.url),
            None,
        ),
    ]
}

/// Waits until every sink answers its readiness check (the API's
/// `/readyz` does not look at them).
pub async fn until_sinks_ready() {
    until_status(&format!("{}/health/ready", stack().sentry.url), 200).await;
    until_status(&format!("{}/-/ready", stack().prometheus.url), 200).await;
    until_status(&format!("{}/ready", stack().loki.url), 200).await;
}
