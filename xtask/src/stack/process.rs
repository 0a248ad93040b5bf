//! Servers as child processes that are always stopped: each runs in its own
//! process group (so a server's own children, such as wrangler's workerd or
//! gunicorn's workers, are stopped with it), gets SIGTERM if xtask itself
//! dies (`PR_SET_PDEATHSIG`, Linux only), and is recorded in a pid file so
//! that a later run can clean up after a run that was killed with SIGKILL
//! (on macOS, the only cleanup after a killed xtask).
//!
//! Linux reads `/proc` to tell what a process is; elsewhere (macOS) the
//! same questions go through `kill(pid, 0)` and `ps`, so xtask builds and
//! runs there too.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

/// A running server started by the stack.
pub struct Supervised {
    pub name: &'static str,
    child: Child,
    log: PathBuf,
}

/// Starts `cmd` as `name`, with stdout and stderr appended to `log`, and
/// records its process group in `pid_file`.
///
/// Must be called from the main thread: on Linux the parent-death signal is
/// tied to the thread that forks, and would fire when a worker thread ends.
pub fn spawn(
    name: &'static str,
    cmd: &mut Command,
    log: &Path,
    pid_file: &Path,
) -> anyhow::Result<Supervised> {
    let out = File::options().create(true).append(true).open(log)?;
    let err = out.try_clone()?;
    cmd.stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0);
    #[cfg(target_os = "linux")]
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().with_context(|| {
        format!(
            "cannot start {name} ({})",
            cmd.get_program().to_string_lossy()
        )
    })?;
    let mut pids = File::options().create(true).append(true).open(pid_file)?;
    writeln!(pids, "{name} {}", child.id())?;
    Ok(Supervised {
        name,
        child,
        log: log.to_path_buf(),
    })
}

impl Supervised {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if the server has stopped by itself.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The end of the server's log, for error messages.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log, 4096)
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// SIGTERM to the whole group, SIGKILL to whatever is left after `grace`.
    pub fn stop(&mut self, grace: Duration) {
        let group = self.child.id() as i32;
        signal_group(group, libc::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if self.exited().is_some() && !group_alive(group) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        signal_group(group, libc::SIGKILL);
        let _ = self.child.wait();
        // Members of the group other than the leader die with SIGKILL; give
        // the kernel a moment to reap them before the caller checks.
        let deadline = Instant::now() + Duration::from_secs(2);
        while group_alive(group) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn signal_group(group: i32, signal: i32) {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe {
        libc::kill(-group, signal);
    }
}

/// Whether any process of group `group` is still running. On Linux zombies,
/// which hold no resources and wait only for their parent to reap them, do
/// not count (it reads `/proc/PID/stat`); elsewhere a group counts until
/// its last member is reaped.
pub fn group_alive(group: i32) -> bool {
    if cfg!(target_os = "linux") {
        group_alive_in_proc(group)
    } else {
        signal_reaches(-group)
    }
}

/// [`group_alive`] from `/proc`: a member that is not a zombie.
fn group_alive_in_proc(group: i32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|entry| {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            return false;
        };
        // `pid (comm) state ppid pgrp ...`; comm may contain spaces.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            return false;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next();
        let pgrp = fields.nth(1).and_then(|f| f.parse::<i32>().ok());
        pgrp == Some(group) && state != Some("Z") && state != Some("X")
    })
}

/// Whether `kill(target, 0)` finds a process (`target` < 0: a group);
/// one we may not signal exists all the same.
fn signal_reaches(target: i32) -> bool {
    // SAFETY: signal 0 only checks that the target exists.
    let found = unsafe { libc::kill(target, 0) } == 0;
    found || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Whether process `pid` exists (xtask's own pid counts).
pub fn pid_alive(pid: i32) -> bool {
    pid > 0 && signal_reaches(pid)
}

/// Stops every process group recorded in `pid_file` by an earlier run that
/// did not get to clean up, then removes the file. Returns how many groups
/// were still alive.
pub fn stop_recorded(pid_file: &Path) -> usize {
    let Ok(text) = std::fs::read_to_string(pid_file) else {
        return 0;
    };
    let groups: Vec<i32> = text
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
        .filter(|&g: &i32| g > 1 && group_alive(g) && group_belongs_to(g, pid_file))
        .collect();
    for &g in &groups {
        signal_group(g, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while groups.iter().any(|&g| group_alive(g)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    for &g in &groups {
        signal_group(g, libc::SIGKILL);
    }
    let _ = std::fs::remove_file(pid_file);
    groups.len()
}

/// Guards against pid reuse: a recorded group is ours only if its leader's
/// command line or working directory mentions the state directory.
fn group_belongs_to(group: i32, pid_file: &Path) -> bool {
    let Some(state_dir) = pid_file.parent() else {
        return false;
    };
    let state_dir = state_dir.to_string_lossy().into_owned();
    // A leader that already exited leaves no process; its group members
    // were started by us all the same (the group id is the leader's pid).
    if !pid_alive(group) {
        return true;
    }
    let (cmdline, cwd) = if cfg!(target_os = "linux") {
        let cmdline = std::fs::read(format!("/proc/{group}/cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        let cwd = std::fs::read_link(format!("/proc/{group}/cwd"))
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        (cmdline, cwd)
    } else {
        // No portable way to read another process's working directory:
        // a server known only by it is left running, never a stranger
        // killed.
        (command_line_from_ps(group), String::new())
    };
    cmdline.contains(&state_dir) || (!cwd.is_empty() && Path::new(&cwd).starts_with(&state_dir))
}

/// The command line of process `pid` as `ps` shows it (empty when there is
/// no such process).
fn command_line_from_ps(pid: i32) -> String {
    Command::new("ps")
        .args(["-o", "command=", "-p", &pid.to_string()])
        .stderr(Stdio::null())
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// An exclusive lock on a file, held until dropped or until the process
/// ends however it ends (the kernel releases a `flock` with its last open
/// descriptor, and xtask's descriptors close on exec, so a server left
/// running by a killed xtask does not hold it). The file names its holder's
/// pid for the message of whoever finds it taken.
#[derive(Debug)]
pub struct OwnerLock {
    _file: File,
}

impl OwnerLock {
    /// Takes the lock at `path`, or says which process holds it (`None`
    /// when it has not written its pid yet).
    pub fn acquire(path: &Path) -> anyhow::Result<Result<OwnerLock, Option<u32>>> {
        let mut file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Ok(Err(text.trim().parse().ok()));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", path.display()))
            }
        }
        file.set_len(0)?;
        write!(file, "{}", std::process::id())?;
        Ok(Ok(OwnerLock { _file: file }))
    }
}

/// The last `max` bytes of a log file, lossily decoded.
pub fn log_tail(path: &Path, max: u64) -> String {
    let Ok(mut file) = File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(max)));
    let mut buf = Vec::new();
    let _ = file.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        crate::project::scratch_dir(&format!("process-{name}"))
    }

    #[test]
    fn stop_takes_the_whole_group_down() {
        let dir = temp_dir("group");
        let pids = dir.join("pids");
        // A parent that ignores SIGTERM with a grandchild: both must go.
        let mut server = spawn(
            "sleeper",
            Command::new("sh").args(["-c", "trap '' TERM; sleep 300 & echo started; wait"]),
            &dir.join("log"),
            &pids,
        )
        .unwrap();
        let group = server.pid() as i32;
        let deadline = Instant::now() + Duration::from_secs(5);
        while !log_tail(server.log_path(), 100).contains("started") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(group_alive(group));
        server.stop(Duration::from_millis(300));
        assert!(!group_alive(group), "the grandchild survived");
        assert!(std::fs::read_to_string(&pids)
            .unwrap()
            .contains(&format!("sleeper {group}")));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_portable_checks_agree_with_proc() {
        let dir = temp_dir("portable");
        let mut server = spawn(
            "sleeper",
            // The directory is on the command line, as a server's data
            // directory is.
            Command::new("sh").args(["-c", "sleep 300; :", &dir.to_string_lossy()]),
            &dir.join("log"),
            &dir.join("pids"),
        )
        .unwrap();
        let group = server.pid() as i32;
        assert!(group_alive_in_proc(group) && signal_reaches(-group));
        assert!(pid_alive(group) && pid_alive(std::process::id() as i32));
        assert!(command_line_from_ps(group).contains(&*dir.to_string_lossy()));
        assert!(group_belongs_to(group, &dir.join("pids")));
        assert!(!group_belongs_to(group, Path::new("/elsewhere/pids")));
        server.stop(Duration::from_secs(5));
        assert!(!group_alive_in_proc(group));
        // kill(2) still finds the sleep until its new parent reaps it.
        let deadline = Instant::now() + Duration::from_secs(5);
        while signal_reaches(-group) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!signal_reaches(-group));
        assert!(!pid_alive(group));
        assert_eq!(command_line_from_ps(group), "");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_owner_lock_is_held_until_dropped_and_names_its_holder() {
        let dir = temp_dir("lock");
        let path = dir.join("dev.lock");
        let held = OwnerLock::acquire(&path).unwrap().unwrap();
        // flock conflicts between two opens even within one process, as
        // between two xtasks.
        let refused = OwnerLock::acquire(&path).unwrap().err();
        assert_eq!(refused, Some(Some(std::process::id())));
        drop(held);
        assert!(
            OwnerLock::acquire(&path).unwrap().is_ok(),
            "released on drop"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn recorded_groups_of_a_dead_run_are_stopped() {
        let dir = temp_dir("recorded");
        let pids = dir.join("pids");
        let server = spawn(
            "orphan",
            Command::new("sleep").arg("300").current_dir(&dir),
            &dir.join("log"),
            &pids,
        )
        .unwrap();
        let group = server.pid() as i32;
        // Forget the handle, as a killed xtask would.
        std::mem::forget(server);
        assert!(group_alive(group));
        assert_eq!(stop_recorded(&pids), 1);
        assert!(!group_alive(group));
        assert!(!pids.exists());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
