//! Where things are: the repository, the per-machine tool cache, and small
//! helpers to run commands with errors that say what failed and why.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context};

/// The repository root (the workspace that holds `xtask/`).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

/// Per-machine cache for installed tools and prepared server templates,
/// shared by every clone so a fresh clone (CI) does not reinstall them:
/// `$EDGE_API_CACHE`, else `$XDG_CACHE_HOME/edge-api`, else `~/.cache/edge-api`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("EDGE_API_CACHE") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| root().join(".local/cache"));
    base.join("edge-api")
}

/// What the rest of the project takes from the API Worker's wrangler.toml
/// (the one place both are written): its name, which the sites' `API`
/// binding names, and its compatibility date (not newer than the workerd of
/// the pinned wrangler), which the local sites and the bench Workers run
/// with too.
#[derive(Debug, serde::Deserialize)]
pub struct ApiWorker {
    pub name: String,
    pub compatibility_date: String,
}

impl ApiWorker {
    pub fn read() -> anyhow::Result<ApiWorker> {
        let path = root().join("wrangler.toml");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("reading {}", path.display()))
    }
}

/// Git-ignored directory for everything a local stack writes.
pub fn local_dir() -> PathBuf {
    root().join(".local")
}

/// An empty directory of the system's temp dir for one test, named after
/// it and this process (what an earlier run of the test left is deleted).
#[cfg(test)]
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xtask-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `cmd` to completion with its output captured; on failure the error
/// names the command and carries the end of its output.
pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    output(cmd).map(drop)
}

/// Runs `cmd` and returns its stdout; on failure, as [`run`].
pub fn output(cmd: &mut Command) -> anyhow::Result<String> {
    let shown = describe(cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot start `{shown}`"))?;
    if !out.status.success() {
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        bail!("`{shown}` failed ({}):\n{}", out.status, tail(&text, 40));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The program and arguments of `cmd`, for messages. Never used for commands
/// whose arguments carry secrets.
pub fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|s| s.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Finds `name` on PATH or in the sbin directories a non-root PATH lacks.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

pub fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Bytes an unprivileged user may still write on the filesystem that
/// holds `path`.
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: a valid NUL-terminated path and a zeroed struct statvfs fills.
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stats) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    #[allow(clippy::unnecessary_cast)] // the fields' types differ by platform
    Ok(stats.f_bavail as u64 * stats.f_frsize as u64)
}

/// A random lowercase hex string of `bytes` random bytes, for local-only
/// passwords and keys.
pub fn random_hex(bytes: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// The commit the tree is at, with `-dirty` when it has uncommitted changes;
/// `unknown` outside a git checkout.
pub fn git_commit() -> String {
    let root = root();
    let head = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(&root)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    let Some(head) = head else {
        return "unknown".into();
    };
    let dirty = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .current_dir(&root)
        .output()
        .map(|o| !o.stdout.is_empty())
        .unwrap_or(false);
    if dirty {
        format!("{head}-dirty")
    } else {
        head
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_space_is_read_off_the_filesystem() {
        let free = free_bytes(&root()).unwrap();
        assert!(free > 0, "this test wrote its binary there");
        let missing = free_bytes(&root().join("no such directory")).unwrap_err();
        assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
    }

    #[test]
    fn failed_commands_carry_their_output() {
        let err =
            run(Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"])).unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("sh -c"), "{text}");
        assert!(text.contains("out") && text.contains("err"), "{text}");
    }

    #[test]
    fn tail_keeps_the_end() {
        assert_eq!(tail("a\nb\nc", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
    }

    #[test]
    fn random_hex_is_hex_of_the_right_length() {
        let a = random_hex(16);
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, random_hex(16));
    }
}
