//! Installs what the build and the local stack need, idempotently: every
//! check is a file lookup, so a second run costs milliseconds. Tools that
//! take minutes to build (cargo-installed binaries, the Bugsink venv, a wasm
//! sysroot, server templates) are kept per machine in [`project::cache_dir`]
//! under a name that carries their version, and rebuilt only when it changes.
//!
//! What this installs and why (see ../shared/ENVIRONMENT.md):
//! - the `wasm32-unknown-unknown` target: from rustup when its download
//!   host answers, else built offline from Debian's `rustc-web` sources;
//! - `worker-build` at the `worker` version and `wasm-bindgen-cli` at the
//!   `wasm-bindgen` version in Cargo.lock (worker-build would download
//!   prebuilt ones from GitHub, which is not reachable everywhere);
//! - wrangler (with workerd) and binaryen's `wasm-opt` from package.json:
//!   `binaryen@132` is the wasm-opt release worker-build targets and runs the
//!   feature flags it passes; Debian's binaryen 108 predates some of them;
//! - MariaDB, Redis and Prometheus from Debian; `s3s-fs` from crates.io;
//!   Bugsink and schemathesis from PyPI, each in a venv pinned by
//!   scripts/*-requirements.txt;
//! - `cargo-fuzz` from crates.io and Debian's g++ (libFuzzer is C++), for
//!   the fuzz targets in fuzz/;
//! - for the browser suite, a Chromium driven by `playwright-core` from
//!   package.json: one already installed, else Debian's `chromium` on
//!   Debian, else the build Playwright downloads for its version (Ubuntu
//!   packages Chromium only as a snap, which does not run in a container,
//!   and macOS has no apt).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::project::{self, cache_dir, find_program, is_executable, output, run};
use crate::ui::Ui;

const WASM_TARGET: &str = "wasm32-unknown-unknown";
/// The toolchain name under which Debian's rustc is linked into rustup.
const DEBIAN_TOOLCHAIN: &str = "debian";
const S3S_FS_VERSION: &str = "0.14.1";
const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// What building the Worker needs.
#[derive(Debug, Clone)]
pub struct BuildTools {
    /// `RUSTUP_TOOLCHAIN` for the wasm build; `None` keeps the current one.
    pub wasm_toolchain: Option<String>,
    pub worker_build: PathBuf,
    pub wasm_bindgen: PathBuf,
    pub wasm_opt: PathBuf,
    pub wrangler: PathBuf,
}

/// What running the local stack needs, beyond the build.
#[derive(Debug, Clone)]
pub struct StackTools {
    pub mariadbd: PathBuf,
    pub mariadb_install_db: PathBuf,
    pub redis_server: PathBuf,
    pub prometheus: PathBuf,
    pub s3s_fs: PathBuf,
    /// A venv with Bugsink and gunicorn.
    pub bugsink_venv: PathBuf,
    /// Node.js, which runs B2's CORS front (scripts/b2-cors-front.mjs).
    pub node: PathBuf,
}

/// What the browser suite needs beyond the stack: node runs the tests
/// (e2e/browser/), which drive Chromium through playwright-core.
pub struct BrowserTools {
    pub node: PathBuf,
    pub chromium: PathBuf,
}

/// Node and a Chromium (the tests use playwright-core from the root
/// package.json, installed by `npm ci` with the build tools): a `chromium`
/// on the PATH that is not a snap's, else as [`chromium_source`] says.
pub fn browser_tools(ui: &Ui) -> anyhow::Result<BrowserTools> {
    node_modules(ui)?;
    let node = find_program("node").context("node is not installed")?;
    let installed = find_program("chromium").filter(|path| !is_snap(path));
    let chromium = match installed {
        Some(path) => path,
        None => match chromium_source(std::fs::read_to_string("/etc/os-release").ok().as_deref()) {
            ChromiumSource::Debian => {
                debian_programs(ui, &[("chromium", "chromium")])?;
                find_program("chromium").context("chromium is not installed")?
            }
            ChromiumSource::Playwright => playwright_chromium(ui, &node)?,
        },
    };
    Ok(BrowserTools { node, chromium })
}

/// Whether `program` runs through snap: snap's commands are links in
/// `/snap/bin` to `/usr/bin/snap`, which needs snapd to start anything.
fn is_snap(program: &Path) -> bool {
    program.starts_with("/snap")
        || std::fs::canonicalize(program).is_ok_and(|real| {
            real.starts_with("/snap") || real.file_name() == Some("snap".as_ref())
        })
}

/// Where the browser suite's Chromium comes from when none is installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChromiumSource {
    /// Debian's `chromium` package.
    Debian,
    /// The build of Chromium that playwright-core's version was made for,
    /// downloaded by its own installer into `~/.cache/ms-playwright`.
    Playwright,
}

/// Debian's package on Debian (by `/etc/os-release`); anywhere else
/// Playwright's build: Ubuntu's `chromium` packages are stubs that
/// install a snap, which needs snapd (absent in containers), and a
/// machine without `/etc/os-release` (macOS) has no apt.
fn chromium_source(os_release: Option<&str>) -> ChromiumSource {
    let debian = os_release.is_some_and(|text| {
        text.lines()
            .filter_map(|line| line.trim().strip_prefix("ID="))
            .any(|id| id.trim_matches('"') == "debian")
    });
    if debian {
        ChromiumSource::Debian
    } else {
        ChromiumSource::Playwright
    }
}

/// Playwright's Chromium, downloaded once by playwright-core's installer
/// (which skips a browser it already has) and found where playwright-core
/// says its build lives.
fn playwright_chromium(ui: &Ui, node: &Path) -> anyhow::Result<PathBuf> {
    let root = project::root();
    let path = PathBuf::from(output(Command::new(node).current_dir(&root).args([
        "-e",
        "process.stdout.write(require('playwright-core').chromium.executablePath())",
    ]))?);
    if !is_executable(&path) {
        let mut args = vec![
            "node_modules/playwright-core/cli.js",
            "install",
            "--no-shell",
        ];
        // Where apt is (Ubuntu), the libraries the build links against
        // come with it: a fresh machine lacks some (libnss3, for one).
        if find_program("apt-get").is_some() {
            ask_for_sudo(ui, "installing Chromium's libraries with apt-get")?;
            args.push("--with-deps");
        }
        args.push("chromium");
        ui.step(
            "download Playwright's Chromium (no Debian package here)",
            || run(Command::new(node).current_dir(&root).args(&args)),
        )?;
    }
    if !is_executable(&path) {
        bail!(
            "playwright-core installed Chromium, but {} is not there",
            path.display()
        );
    }
    Ok(path)
}

pub fn build_tools(ui: &Ui) -> anyhow::Result<BuildTools> {
    let lock = CargoLock::read()?;
    let wasm_toolchain = wasm_target(ui)?;
    let wasm_bindgen = cargo_tool(
        ui,
        "wasm-bindgen-cli",
        &lock.version_of("wasm-bindgen")?,
        "wasm-bindgen",
        // Not --locked: the registry mirror may lack some of its locked versions.
        &[],
    )?;
    let worker_build = cargo_tool(
        ui,
        "worker-build",
        &lock.version_of("worker")?,
        "worker-build",
        &[],
    )?;
    node_modules(ui)?;
    let bin = project::root().join("node_modules/.bin");
    Ok(BuildTools {
        wasm_toolchain,
        worker_build,
        wasm_bindgen,
        wasm_opt: bin.join("wasm-opt"),
        wrangler: bin.join("wrangler"),
    })
}

/// The pinned wrangler (`npm ci` first if needed), for what needs only it
/// (the deploy's site uploads), without the Rust build tools.
pub fn wrangler(ui: &Ui) -> anyhow::Result<PathBuf> {
    node_modules(ui)?;
    Ok(project::root().join("node_modules/.bin/wrangler"))
}

pub fn stack_tools(ui: &Ui) -> anyhow::Result<StackTools> {
    debian_programs(
        ui,
        &[
            ("mariadbd", "mariadb-server"),
            ("mariadb-install-db", "mariadb-server"),
            ("redis-server", "redis-server"),
            ("prometheus", "prometheus"),
        ],
    )?;
    let found = |name: &str| find_program(name).with_context(|| format!("{name} is not installed"));
    Ok(StackTools {
        mariadbd: found("mariadbd")?,
        mariadb_install_db: found("mariadb-install-db")?,
        redis_server: found("redis-server")?,
        prometheus: found("prometheus")?,
        s3s_fs: cargo_tool(
            ui,
            "s3s-fs",
            S3S_FS_VERSION,
            "s3s-fs",
            &["--locked", "--features", "binary"],
        )?,
        bugsink_venv: bugsink_venv(ui)?,
        node: found("node")?,
    })
}

/// Makes sure some toolchain can build for wasm32 and says which.
/// `EDGE_API_WASM_TOOLCHAIN=debian` skips rustup and uses (or sets up) the
/// offline Debian toolchain, as a machine without rustup's host would.
fn wasm_target(ui: &Ui) -> anyhow::Result<Option<String>> {
    let forced_debian =
        std::env::var("EDGE_API_WASM_TOOLCHAIN").is_ok_and(|v| v == DEBIAN_TOOLCHAIN);
    if forced_debian {
        return debian_wasm_toolchain(ui);
    }
    if has_wasm_sysroot(None) {
        return Ok(None);
    }
    if debian_toolchain_ready()? {
        return Ok(Some(DEBIAN_TOOLCHAIN.into()));
    }
    let from_rustup = ui.step(&format!("rustup target add {WASM_TARGET}"), || {
        let mut cmd = Command::new("rustup");
        cmd.args(["target", "add", WASM_TARGET]);
        run_with_timeout(&mut cmd, Duration::from_secs(45))
    });
    if from_rustup.is_ok() && has_wasm_sysroot(None) {
        return Ok(None);
    }
    ui.info(format!(
        "  rustup could not fetch {WASM_TARGET}; building it offline from Debian's Rust sources"
    ));
    debian_wasm_toolchain(ui)
}

/// Debian's rustc with a wasm32 std built from its sources, linked into
/// rustup as the `debian` toolchain (../shared/ENVIRONMENT.md).
fn debian_wasm_toolchain(ui: &Ui) -> anyhow::Result<Option<String>> {
    if debian_toolchain_ready()? {
        return Ok(Some(DEBIAN_TOOLCHAIN.into()));
    }
    debian_packages(ui, &["rustc-web", "cargo-web", "rust-web-src", "lld-22"])?;
    ui.step(
        "build the wasm32 standard library (once, ~1 min)",
        build_debian_sysroot,
    )?;
    if !rustup_toolchains()?.iter().any(|t| t == DEBIAN_TOOLCHAIN) {
        run(Command::new("rustup").args(["toolchain", "link", DEBIAN_TOOLCHAIN, "/usr"]))?;
    }
    if !debian_toolchain_ready()? {
        bail!("the Debian toolchain still cannot build for {WASM_TARGET}; see ../shared/ENVIRONMENT.md");
    }
    Ok(Some(DEBIAN_TOOLCHAIN.into()))
}

/// Whether `toolchain` (the current one when `None`) has a wasm32 std.
fn has_wasm_sysroot(toolchain: Option<&str>) -> bool {
    let mut cmd = Command::new("rustc");
    cmd.args(["--print", "target-libdir", "--target", WASM_TARGET]);
    if let Some(t) = toolchain {
        cmd.env("RUSTUP_TOOLCHAIN", t);
    }
    let Ok(dir) = output(&mut cmd) else {
        return false;
    };
    std::fs::read_dir(dir.trim())
        .map(|entries| {
            entries.flatten().any(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name.starts_with("libcore-") && name.ends_with(".rlib")
            })
        })
        .unwrap_or(false)
}

fn rustup_toolchains() -> anyhow::Result<Vec<String>> {
    Ok(output(Command::new("rustup").args(["toolchain", "list"]))?
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect())
}

/// Where the Debian sysroot's stamp lives: it records which rustc built it,
/// so an upgraded `rustc-web` triggers a rebuild instead of "can't find crate".
fn sysroot_stamp() -> PathBuf {
    PathBuf::from(format!(
        "/usr/lib/rustlib/{WASM_TARGET}/edge-api-sysroot.stamp"
    ))
}

fn debian_rustc_version() -> anyhow::Result<String> {
    output(Command::new("/usr/bin/rustc").arg("-vV"))
}

fn debian_toolchain_ready() -> anyhow::Result<bool> {
    if !Path::new("/usr/bin/rustc").exists()
        || !rustup_toolchains()?.iter().any(|t| t == DEBIAN_TOOLCHAIN)
    {
        return Ok(false);
    }
    let stamp = std::fs::read_to_string(sysroot_stamp()).unwrap_or_default();
    Ok(stamp == debian_rustc_version()? && has_wasm_sysroot(Some(DEBIAN_TOOLCHAIN)))
}

/// Builds std for wasm32 from Debian's sources with bitcode embedded (so
/// `lto = true` works) and installs it where rustc looks for the target.
fn build_debian_sysroot() -> anyhow::Result<()> {
    let dir = cache_dir().join("wasm-sysroot-build");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"sysroot\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\
         [lib]\npath = \"lib.rs\"\n[workspace]\n",
    )?;
    std::fs::write(dir.join("lib.rs"), "#![no_std]\n")?;
    let path = format!("/usr/bin:{}", std::env::var("PATH").unwrap_or_default());
    run(Command::new("/usr/bin/cargo")
        .args(["build", "--release", "--target", WASM_TARGET])
        .arg("-Zbuild-std=std,panic_abort,panic_unwind")
        .current_dir(&dir)
        .env("PATH", path)
        .env("RUSTC", "/usr/bin/rustc")
        .env("RUSTC_BOOTSTRAP", "1")
        .env("RUSTFLAGS", "-Cembed-bitcode=yes")
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO_TARGET_DIR"))?;
    let libdir = format!("/usr/lib/rustlib/{WASM_TARGET}/lib");
    let deps = dir.join(format!("target/{WASM_TARGET}/release/deps"));
    let mut rlibs: Vec<PathBuf> = std::fs::read_dir(&deps)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "rlib"))
        .collect();
    rlibs.sort();
    as_root(Command::new("rm").args(["-rf", &libdir]))?;
    as_root(Command::new("mkdir").args(["-p", &libdir]))?;
    as_root(Command::new("cp").args(&rlibs).arg(&libdir))?;
    let stamp = std::env::temp_dir().join("edge-api-sysroot.stamp");
    std::fs::write(&stamp, debian_rustc_version()?)?;
    as_root(Command::new("cp").arg(&stamp).arg(sysroot_stamp()))?;
    // Artifacts built against the previous sysroot fail with "can't find
    // crate"; the Worker's wasm target dir is cheap to rebuild.
    let _ = std::fs::remove_dir_all(crate::build::wasm_target_dir());
    Ok(())
}

/// LLVM's `wasm-ld` from Debian's lld package, for the Debian toolchain,
/// which ships no `rust-lld`; the newest LLVM found wins.
pub fn debian_wasm_linker() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let version = name.strip_prefix("llvm-")?.parse().ok()?;
            let linker = e.path().join("bin/wasm-ld");
            linker.exists().then_some((version, linker))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, path)| path)
}

/// cargo-fuzz, which builds the fuzz targets in fuzz/ for libFuzzer, and
/// the C++ compiler libFuzzer itself is built with (libfuzzer-sys).
pub fn cargo_fuzz(ui: &Ui) -> anyhow::Result<PathBuf> {
    debian_programs(ui, &[("c++", "g++")])?;
    cargo_tool(
        ui,
        "cargo-fuzz",
        CARGO_FUZZ_VERSION,
        "cargo-fuzz",
        &["--locked"],
    )
}

/// `cargo install KRATE --version VERSION` into its own versioned root.
fn cargo_tool(
    ui: &Ui,
    krate: &str,
    version: &str,
    bin: &str,
    extra: &[&str],
) -> anyhow::Result<PathBuf> {
    let root = cache_dir().join("tools").join(format!("{krate}-{version}"));
    let path = root.join("bin").join(bin);
    if is_executable(&path) {
        return Ok(path);
    }
    ui.step(
        &format!("cargo install {krate}@{version} (once, a few minutes)"),
        || {
            run(Command::new("cargo")
                .args(["install", krate, "--version", version, "--root"])
                .arg(&root)
                .args(extra)
                .env_remove("CARGO_TARGET_DIR"))
        },
    )?;
    Ok(path)
}

/// `npm ci` when node_modules does not match package-lock.json.
fn node_modules(ui: &Ui) -> anyhow::Result<()> {
    npm_ci(
        ui,
        &project::root(),
        "npm ci (wrangler, workerd, binaryen, playwright-core)",
    )
}

/// `npm ci` in `dir` unless its node_modules was installed from exactly
/// its current package-lock.json.
fn npm_ci(ui: &Ui, dir: &Path, title: &str) -> anyhow::Result<()> {
    let lock = std::fs::read(dir.join("package-lock.json"))
        .with_context(|| format!("{} is missing", dir.join("package-lock.json").display()))?;
    let stamp = dir.join("node_modules/.edge-api-installed-lock");
    if std::fs::read(&stamp).is_ok_and(|installed| installed == lock) {
        return Ok(());
    }
    if find_program("npm").is_none() {
        bail!("npm is not installed: install Node.js 20 or newer (with npm) first");
    }
    ui.step(title, || {
        run(Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(dir))?;
        std::fs::write(&stamp, &lock)?;
        Ok(())
    })
}

/// What `cargo xtask bench` needs beyond the build and the stack: wrk,
/// workerd (from the pinned wrangler) and the reference Worker's packages.
pub struct BenchTools {
    pub wrk: PathBuf,
    pub workerd: PathBuf,
}

pub fn bench_tools(ui: &Ui) -> anyhow::Result<BenchTools> {
    debian_programs(ui, &[("wrk", "wrk")])?;
    npm_ci(
        ui,
        &project::root().join("bench"),
        "npm ci in bench/ (Hono, @tidbcloud/serverless)",
    )?;
    Ok(BenchTools {
        wrk: find_program("wrk").context("wrk is not installed (Debian/Ubuntu package `wrk`)")?,
        workerd: workerd()?,
    })
}

/// workerd itself, from the platform package that the pinned wrangler
/// installed (`npm ci`), for running Workers without wrangler's proxy.
pub fn workerd() -> anyhow::Result<PathBuf> {
    let scope = project::root().join("node_modules/@cloudflare");
    let entries = std::fs::read_dir(&scope)
        .with_context(|| format!("{} is missing: run npm ci", scope.display()))?;
    for entry in entries {
        let path = entry?.path().join("bin/workerd");
        let name = path.to_string_lossy().into_owned();
        if name.contains("/workerd-") && is_executable(&path) {
            return Ok(path);
        }
    }
    bail!("no workerd binary under {}", scope.display())
}

/// A venv with Bugsink and gunicorn, pinned by scripts/bugsink-requirements.txt.
fn bugsink_venv(ui: &Ui) -> anyhow::Result<PathBuf> {
    python_venv(ui, "bugsink", "gunicorn")
}

/// A venv with schemathesis (property-based API tests against the running
/// Worker's OpenAPI document), pinned by scripts/schemathesis-requirements.txt.
pub fn schemathesis(ui: &Ui) -> anyhow::Result<PathBuf> {
    Ok(python_venv(ui, "schemathesis", "schemathesis")?.join("bin/schemathesis"))
}

/// A venv named after `package` and its pinned version, with exactly the
/// packages of scripts/PACKAGE-requirements.txt; `check_bin` tells that the
/// install completed.
fn python_venv(ui: &Ui, package: &str, check_bin: &str) -> anyhow::Result<PathBuf> {
    let requirements = project::root().join(format!("scripts/{package}-requirements.txt"));
    let pinned = std::fs::read_to_string(&requirements)
        .with_context(|| format!("reading {}", requirements.display()))?;
    let version = pinned
        .lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{package}==")))
        .with_context(|| format!("{} must pin {package}==VERSION", requirements.display()))?;
    let venv = cache_dir()
        .join("tools")
        .join(format!("{package}-{version}"));
    let stamp = venv.join("edge-api-requirements.txt");
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == pinned)
        && is_executable(&venv.join("bin").join(check_bin))
    {
        return Ok(venv);
    }
    ui.step(
        &format!("pip install {package}=={version} into a venv (once)"),
        || {
            let _ = std::fs::remove_dir_all(&venv);
            if run(Command::new("python3").args(["-m", "venv"]).arg(&venv)).is_err() {
                // Debian's python3 ships venv separately.
                let _ = std::fs::remove_dir_all(&venv);
                debian_packages(ui, &["python3-venv"])?;
                run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
            }
            run(Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
                .arg(&requirements))?;
            std::fs::write(&stamp, &pinned)?;
            Ok(())
        },
    )?;
    Ok(venv)
}

/// Installs the Debian packages that provide any of `programs` not found.
fn debian_programs(ui: &Ui, programs: &[(&str, &str)]) -> anyhow::Result<()> {
    let mut missing: Vec<&str> = programs
        .iter()
        .filter(|(program, _)| find_program(program).is_none())
        .map(|(_, package)| *package)
        .collect();
    missing.dedup();
    if missing.is_empty() {
        return Ok(());
    }
    debian_packages(ui, &missing)
}

/// `apt-get install` of whichever of `packages` is not installed yet.
fn debian_packages(ui: &Ui, packages: &[&str]) -> anyhow::Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| {
            !Command::new("dpkg-query")
                .args(["-W", "-f=${Status}", p])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if find_program("apt-get").is_none() {
        bail!(
            "these Debian packages are needed but this machine has no apt-get: {}; \
             install their equivalents with your package manager",
            missing.join(" ")
        );
    }
    let step = format!("apt-get install {}", missing.join(" "));
    ask_for_sudo(ui, &step)?;
    ui.step(&step, || {
        as_root(Command::new("apt-get").args(["update", "-qq"]))?;
        as_root(
            Command::new("apt-get")
                .args(["install", "-y", "-qq", "--no-install-recommends"])
                .args(&missing)
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )
    })
}

/// When not root and sudo needs a password, asks for it now, on the
/// terminal, before a spinner takes the line: a prompt under a spinner is
/// overwritten as it is typed. sudo remembers it for the steps after.
/// `what` names the step that needs root.
fn ask_for_sudo(ui: &Ui, what: &str) -> anyhow::Result<()> {
    if is_root() {
        return Ok(());
    }
    let cached = Command::new("sudo")
        .args(["-n", "true"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if cached {
        return Ok(());
    }
    ui.info(format!("  {what} needs root: sudo asks for your password"));
    let status = Command::new("sudo")
        .arg("-v")
        .status()
        .context("cannot run sudo")?;
    if !status.success() {
        bail!("sudo refused: run as root, or do this yourself first: {what}");
    }
    Ok(())
}

/// Whether xtask runs as root (CI, a container): then it installs and
/// starts servers without sudo.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Runs `cmd` as root: directly when we are root, through sudo otherwise.
fn as_root(cmd: &mut Command) -> anyhow::Result<()> {
    if is_root() {
        return run(cmd);
    }
    let mut sudo = Command::new("sudo");
    sudo.arg(cmd.get_program()).args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            sudo.env(k, v);
        }
    }
    run(&mut sudo)
}

/// Runs `cmd`, killing it if it has not finished within `limit` (for
/// downloads that hang instead of failing where their host is unreachable).
fn run_with_timeout(cmd: &mut Command, limit: Duration) -> anyhow::Result<()> {
    let shown = project::describe(cmd);
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start `{shown}`"))?;
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            if status.success() {
                return Ok(());
            }
            bail!("`{shown}` failed ({status})");
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            bail!("`{shown}` did not finish within {}s", limit.as_secs());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The resolved package versions of Cargo.lock.
struct CargoLock(toml::Table);

impl CargoLock {
    fn read() -> anyhow::Result<Self> {
        let path = project::root().join("Cargo.lock");
        let text = std::fs::read_to_string(&path).context("Cargo.lock is missing")?;
        Ok(CargoLock(
            text.parse().context("Cargo.lock is not valid TOML")?,
        ))
    }

    /// The single locked version of `name`; an error if there are several,
    /// since the wasm tools must match the one the Worker links.
    fn version_of(&self, name: &str) -> anyhow::Result<String> {
        let versions: Vec<&str> = self
            .0
            .get("package")
            .and_then(|p| p.as_array())
            .into_iter()
            .flatten()
            .filter(|p| p.get("name").and_then(|n| n.as_str()) == Some(name))
            .filter_map(|p| p.get("version").and_then(|v| v.as_str()))
            .collect();
        match versions.as_slice() {
            [one] => Ok((*one).to_owned()),
            [] => bail!("{name} is not in Cargo.lock"),
            many => bail!("Cargo.lock has several versions of {name}: {many:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snaps_command_is_told_from_a_program() {
        let dir = crate::project::scratch_dir("snap");
        let snap = dir.join("snap");
        std::fs::write(&snap, "").unwrap();
        let link = dir.join("chromium");
        std::os::unix::fs::symlink(&snap, &link).unwrap();
        assert!(is_snap(&link), "a link to snap");
        assert!(is_snap(Path::new("/snap/bin/chromium")));
        let program = dir.join("chromium-real");
        std::fs::write(&program, "").unwrap();
        assert!(!is_snap(&program));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn chromium_comes_from_debian_only_on_debian() {
        let debian = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\n\
                      VERSION_ID=\"12\"\nID=debian\n";
        assert_eq!(chromium_source(Some(debian)), ChromiumSource::Debian);
        // Ubuntu names Debian only as its kin; its chromium is a snap.
        let ubuntu = "NAME=\"Ubuntu\"\nVERSION_ID=\"24.04\"\nID=ubuntu\nID_LIKE=debian\n";
        assert_eq!(chromium_source(Some(ubuntu)), ChromiumSource::Playwright);
        assert_eq!(
            chromium_source(Some("ID=\"debian\"\n")),
            ChromiumSource::Debian
        );
        // No /etc/os-release (macOS).
        assert_eq!(chromium_source(None), ChromiumSource::Playwright);
    }

    #[test]
    fn lock_versions_are_found() {
        let lock = CargoLock(
            r#"
            [[package]]
            name = "worker"
            version = "0.8.7"
            [[package]]
            name = "dup"
            version = "1.0.0"
            [[package]]
            name = "dup"
            version = "2.0.0"
            "#
            .parse()
            .unwrap(),
        );
        assert_eq!(lock.version_of("worker").unwrap(), "0.8.7");
        assert!(lock.version_of("dup").is_err());
        assert!(lock.version_of("absent").is_err());
    }

    #[test]
    fn the_real_lock_pins_the_wasm_tools() {
        let lock = CargoLock::read().unwrap();
        assert!(lock.version_of("wasm-bindgen").is_ok());
        assert!(lock.version_of("worker").unwrap().starts_with("0.8."));
    }

    #[test]
    fn hung_commands_are_cut_off() {
        let started = Instant::now();
        let err = run_with_timeout(Command::new("sleep").arg("30"), Duration::from_millis(300))
            .unwrap_err();
        assert!(err.to_string().contains("did not finish"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
