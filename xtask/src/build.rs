//! `cargo xtask build`: the Worker bundle with worker-build, its sizes, and
//! the size budget from api-worker/Cargo.toml.
//!
//! Each variant (deployed, local with test routes) is built where it is
//! run from, and skipped when nothing that goes into it changed since its
//! last build (sources, manifests, lock file, commit, toolchain):
//! worker-build always reruns wasm-bindgen and wasm-opt, which costs
//! seconds even when cargo has nothing to do. The deployed bundle is
//! `api-worker/build/`, which `api-worker/entry.mjs` (wrangler.toml's
//! `main`) imports. The local one is `target/wasm/bundle/local/build/`,
//! beside a copy of that entry which `wrangler dev` runs: a `dev` or `test`
//! keeps its test routes while `build` or `bench` rebuild the other, and
//! going between them on one commit builds neither again.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use serde::Serialize;

use crate::flags;
use crate::install::{self, BuildTools};
use crate::project::{self, root};
use crate::ui::{format_bytes, Ui};

/// The commit as a JS module next to worker-build's output, for what
/// `api-worker/entry.mjs` reports after a wasm trap (the Rust side, which
/// knows its release, is gone by then).
const RELEASE_MODULE: &str = "release.js";

/// The deployed bundle: what `api-worker/entry.mjs` imports.
pub fn bundle_dir() -> PathBuf {
    root().join("api-worker/build")
}

/// The entry module of the local Worker, which `wrangler dev` runs: a
/// copy of `api-worker/entry.mjs`, with the local bundle in `build/` beside
/// it as the deployed one is beside the original.
pub fn local_entry() -> PathBuf {
    bundles_dir().join("local/entry.mjs")
}

/// The variants' stamps, and the local bundle with its entry.
fn bundles_dir() -> PathBuf {
    wasm_target_dir().join("bundle")
}

/// Cargo target directory of the wasm build, apart from the native one so
/// that the two toolchains never invalidate each other's artifacts.
pub fn wasm_target_dir() -> PathBuf {
    root().join("target/wasm")
}

/// Which Worker to build. The two differ only in cargo features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    /// What is deployed: no test-only code.
    Deploy,
    /// The local stack's Worker (`dev`, `test`): with the `test-routes`
    /// feature (a panic route and a slow route for failure tests).
    Local,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Deploy => "deploy",
            Variant::Local => "local",
        }
    }

    /// Where worker-build writes this variant's bundle.
    fn out_dir(self) -> PathBuf {
        match self {
            Variant::Deploy => bundle_dir(),
            Variant::Local => local_entry().with_file_name("build"),
        }
    }

    /// What the variant's last build was built from (`inputs_stamp`).
    fn stamp_path(self) -> PathBuf {
        bundles_dir().join(format!("{}.stamp", self.name()))
    }

    fn cargo_features(self) -> &'static [&'static str] {
        match self {
            Variant::Deploy => &[],
            Variant::Local => &["--features", "test-routes"],
        }
    }
}

#[derive(Debug, Serialize)]
pub struct BundleFile {
    pub path: String,
    pub raw_bytes: u64,
    pub gzip_bytes: u64,
}

#[derive(Debug, Serialize)]
pub struct BundleReport {
    pub commit: String,
    pub variant: Variant,
    /// False when the previous build was still up to date.
    pub rebuilt: bool,
    pub files: Vec<BundleFile>,
    pub raw_bytes: u64,
    pub gzip_bytes: u64,
    pub gzip_budget_bytes: u64,
    /// The bundle `wrangler deploy --env` would upload, with `--env`.
    pub deploy_bundle: Option<DeployBundle>,
}

#[derive(Debug, Serialize)]
pub struct DeployBundle {
    pub env: &'static str,
    pub dir: PathBuf,
    pub files: Vec<BundleFile>,
    pub gzip_bytes: u64,
}

pub fn run(ui: &Ui, flags: &flags::Build) -> anyhow::Result<()> {
    let tools = install::build_tools(ui)?;
    let mut report = worker(ui, &tools, Variant::Deploy)?;
    if let Some(env) = flags.env {
        report.deploy_bundle = Some(ui.step(
            &format!("wrangler deploy --dry-run --env {}", env.name()),
            || deploy_bundle(&tools, env),
        )?);
    }
    if ui.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    // The report above is the run's one document.
    check_budget(&report).map_err(|e| crate::DocumentPrinted(e).into())
}

/// Builds the variant unless its bundle is up to date, and measures it.
pub fn worker(ui: &Ui, tools: &BuildTools, variant: Variant) -> anyhow::Result<BundleReport> {
    let commit = project::git_commit();
    let built = variant.out_dir();
    let stamp_path = variant.stamp_path();
    let stamp = format!("variant {variant:?}\n{}", inputs_stamp(&commit, tools)?);
    let up_to_date = std::fs::read_to_string(&stamp_path).is_ok_and(|s| s == stamp)
        && ["index.js", "index_bg.wasm", RELEASE_MODULE]
            .iter()
            .all(|file| built.join(file).exists());
    if up_to_date {
        ui.info(format!(
            "  ok    {} Worker bundle is up to date",
            variant.name()
        ));
    } else {
        let title = match variant {
            Variant::Deploy => "build the Worker (worker-build --release)",
            Variant::Local => "build the local Worker (worker-build --release, test-routes)",
        };
        ui.step(title, || {
            // A build that fails halfway must not pass for the last good one.
            let _ = std::fs::remove_file(&stamp_path);
            let mut cmd = Command::new(&tools.worker_build);
            cmd.arg("--release").arg("--out-dir").arg(&built);
            if !variant.cargo_features().is_empty() {
                cmd.arg("--").args(variant.cargo_features());
            }
            cmd.current_dir(root().join("api-worker"))
                .env("CARGO_TARGET_DIR", wasm_target_dir())
                .env("WASM_BINDGEN_BIN", &tools.wasm_bindgen)
                .env("WASM_OPT_BIN", &tools.wasm_opt)
                .env("GIT_COMMIT", &commit);
            if let Some(toolchain) = &tools.wasm_toolchain {
                cmd.env("RUSTUP_TOOLCHAIN", toolchain);
                // Debian's rustc has no rust-lld of its own; LLVM's wasm-ld is
                // the same linker under its wasm name.
                if let Some(linker) = install::debian_wasm_linker() {
                    cmd.env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER", linker);
                }
            }
            project::run(&mut cmd)?;
            std::fs::write(
                built.join(RELEASE_MODULE),
                format!(
                    "export const RELEASE = {};\n",
                    serde_json::to_string(&commit)?
                ),
            )?;
            std::fs::write(&stamp_path, &stamp)?;
            Ok(())
        })?;
    }
    if variant == Variant::Local {
        refresh_local_entry()?;
    }
    let files = measure(&built)?;
    Ok(BundleReport {
        commit,
        variant,
        rebuilt: !up_to_date,
        raw_bytes: files.iter().map(|f| f.raw_bytes).sum(),
        gzip_bytes: files.iter().map(|f| f.gzip_bytes).sum(),
        files,
        gzip_budget_bytes: gzip_budget()?,
        deploy_bundle: None,
    })
}

/// Copies `api-worker/entry.mjs` beside the local bundle, unless the copy
/// is already the same (a rewrite would make a running `wrangler dev`
/// reload for nothing).
fn refresh_local_entry() -> anyhow::Result<()> {
    copy_if_changed(&root().join("api-worker/entry.mjs"), &local_entry())
}

fn copy_if_changed(from: &Path, to: &Path) -> anyhow::Result<()> {
    let text = std::fs::read(from).with_context(|| format!("reading {}", from.display()))?;
    if std::fs::read(to).is_ok_and(|old| old == text) {
        return Ok(());
    }
    std::fs::write(to, text).with_context(|| format!("writing {}", to.display()))
}

fn print_report(report: &BundleReport) {
    eprintln!();
    eprintln!("  {:<40} {:>12} {:>12}", "file", "raw", "gzip");
    for file in &report.files {
        eprintln!(
            "  {:<40} {:>12} {:>12}",
            file.path,
            format_bytes(file.raw_bytes),
            format_bytes(file.gzip_bytes)
        );
    }
    eprintln!(
        "  {:<40} {:>12} {:>12}  (budget {} gzip)",
        "total",
        format_bytes(report.raw_bytes),
        format_bytes(report.gzip_bytes),
        format_bytes(report.gzip_budget_bytes)
    );
    if let Some(deploy) = &report.deploy_bundle {
        eprintln!(
            "  deploy bundle for {} in {}: {} gzip",
            deploy.env,
            deploy.dir.display(),
            format_bytes(deploy.gzip_bytes)
        );
    }
    eprintln!("  built from {}", report.commit);
}

fn check_budget(report: &BundleReport) -> anyhow::Result<()> {
    let measured = report
        .deploy_bundle
        .as_ref()
        .map_or(report.gzip_bytes, |d| d.gzip_bytes.max(report.gzip_bytes));
    if measured > report.gzip_budget_bytes {
        bail!(
            "the Worker bundle is {} gzip, over its budget of {} \
             (api-worker/Cargo.toml, [package.metadata.bundle-budget])",
            format_bytes(measured),
            format_bytes(report.gzip_budget_bytes)
        );
    }
    Ok(())
}

/// The gzip budget from `[package.metadata.bundle-budget] gzip-bytes`.
pub fn gzip_budget() -> anyhow::Result<u64> {
    let manifest: toml::Table =
        std::fs::read_to_string(root().join("api-worker/Cargo.toml"))?.parse()?;
    manifest
        .get("package")
        .and_then(|p| p.get("metadata"))
        .and_then(|m| m.get("bundle-budget"))
        .and_then(|b| b.get("gzip-bytes"))
        .and_then(|v| v.as_integer())
        .and_then(|v| u64::try_from(v).ok())
        .context("api-worker/Cargo.toml must set [package.metadata.bundle-budget] gzip-bytes")
}

/// Raw and gzip size of every shipped file under `dir` (JS and wasm).
pub fn measure(dir: &Path) -> anyhow::Result<Vec<BundleFile>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in
            std::fs::read_dir(&current).with_context(|| format!("reading {}", current.display()))?
        {
            let path = entry?.path();
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            if name.starts_with('.') {
                continue;
            }
            if path.is_dir() {
                pending.push(path);
            } else if [".js", ".mjs", ".wasm"]
                .iter()
                .any(|ext| name.ends_with(ext))
            {
                let bytes = std::fs::read(&path)?;
                files.push(BundleFile {
                    path: path
                        .strip_prefix(dir)
                        .unwrap_or(&path)
                        .to_string_lossy()
                        .into_owned(),
                    raw_bytes: bytes.len() as u64,
                    gzip_bytes: gzip_len(&bytes),
                });
            }
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

fn gzip_len(bytes: &[u8]) -> u64 {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).expect("writing to memory");
    encoder.finish().expect("writing to memory").len() as u64
}

/// What the build depends on, as one string: every source and manifest
/// file's path, size and modification time, plus the commit and toolchain.
fn inputs_stamp(commit: &str, tools: &BuildTools) -> anyhow::Result<String> {
    let root = root();
    let mut entries = Vec::new();
    for top in ["Cargo.toml", "Cargo.lock", "api-worker", "crates"] {
        collect_inputs(&root.join(top), &mut entries)?;
    }
    entries.sort();
    let mut stamp = format!("commit {commit}\ntoolchain {:?}\n", tools.wasm_toolchain);
    for (path, len, modified) in entries {
        stamp.push_str(&format!(
            "{} {len} {modified}\n",
            path.strip_prefix(&root).unwrap_or(&path).display()
        ));
    }
    Ok(stamp)
}

fn collect_inputs(path: &Path, out: &mut Vec<(PathBuf, u64, u128)>) -> anyhow::Result<()> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(_) => return Ok(()),
    };
    if meta.is_dir() {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if name == "build" || name == "target" || name.starts_with('.') {
            return Ok(());
        }
        for entry in std::fs::read_dir(path)? {
            collect_inputs(&entry?.path(), out)?;
        }
    } else {
        let modified = meta
            .modified()?
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        out.push((path.to_path_buf(), meta.len(), modified));
    }
    Ok(())
}

/// `wrangler deploy --dry-run --env ENV --outdir target/bundle/ENV`: the
/// exact files an upload to that environment would carry.
pub fn deploy_bundle(tools: &BuildTools, env: flags::Environment) -> anyhow::Result<DeployBundle> {
    let dir = root().join("target/bundle").join(env.name());
    let _ = std::fs::remove_dir_all(&dir);
    project::run(
        Command::new(&tools.wrangler)
            .args([
                "deploy",
                "--dry-run",
                "--config",
                "wrangler.toml",
                "--env",
                env.name(),
                "--outdir",
            ])
            .arg(&dir)
            .current_dir(root())
            .env("WRANGLER_SEND_METRICS", "false"),
    )?;
    let files = measure(&dir)?;
    if let Some(file) = test_only_code_in(&dir)? {
        bail!(
            "{} contains the test-only routes (`/_test/`): the deploy bundle \
             must be built without the `test-routes` feature",
            file.display()
        );
    }
    Ok(DeployBundle {
        env: env.name(),
        gzip_bytes: files.iter().map(|f| f.gzip_bytes).sum(),
        files,
        dir,
    })
}

/// The first file under `dir` that carries the test-only routes' paths.
fn test_only_code_in(dir: &Path) -> anyhow::Result<Option<PathBuf>> {
    const MARKER: &[u8] = b"/_test/";
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_file() {
            let bytes = std::fs::read(&path)?;
            if bytes.windows(MARKER.len()).any(|w| w == MARKER) {
                return Ok(Some(path));
            }
        }
    }
    Ok(None)
}

/// The modules of a wrangler dry-run bundle, main module first: `(file
/// name, kind)` where kind is workerd's module type (`esModule`, `wasm`).
pub fn bundle_modules(bundle: &Path) -> anyhow::Result<Vec<(String, &'static str)>> {
    let mut main = None;
    let mut others = Vec::new();
    for entry in
        std::fs::read_dir(bundle).with_context(|| format!("reading {}", bundle.display()))?
    {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.ends_with(".wasm") {
            others.push((name, "wasm"));
        } else if name.ends_with(".js") || name.ends_with(".mjs") {
            if name.starts_with("index.") || name.starts_with("entry.") {
                main = Some((name, "esModule"));
            } else {
                others.push((name, "esModule"));
            }
        }
    }
    let main = main.with_context(|| format!("{} has no index.js", bundle.display()))?;
    others.sort();
    Ok(std::iter::once(main).chain(others).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_only_routes_are_found_in_a_bundle() {
        let dir = project::scratch_dir("marker");
        std::fs::write(dir.join("a.wasm"), b"\0asm routes /v1/pages").unwrap();
        assert_eq!(test_only_code_in(&dir).unwrap(), None);
        std::fs::write(dir.join("b.wasm"), b"\0asm /_test/panic").unwrap();
        assert_eq!(test_only_code_in(&dir).unwrap(), Some(dir.join("b.wasm")));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_local_entry_is_rewritten_only_when_it_changed() {
        let dir = project::scratch_dir("entry");
        let (from, to) = (dir.join("entry.mjs"), dir.join("copy.mjs"));
        std::fs::write(&from, "import Api from \"./build/index.js\";").unwrap();
        copy_if_changed(&from, &to).unwrap();
        assert_eq!(std::fs::read(&to).unwrap(), std::fs::read(&from).unwrap());

        // Dated far back, so a rewrite shows whatever the filesystem's
        // clock granularity.
        let long_ago = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        std::fs::File::options()
            .write(true)
            .open(&to)
            .unwrap()
            .set_modified(long_ago)
            .unwrap();
        copy_if_changed(&from, &to).unwrap();
        assert_eq!(
            std::fs::metadata(&to).unwrap().modified().unwrap(),
            long_ago,
            "the same text is not written again"
        );

        std::fs::write(&from, "export default {};").unwrap();
        copy_if_changed(&from, &to).unwrap();
        assert_eq!(std::fs::read_to_string(&to).unwrap(), "export default {};");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_local_bundle_sits_beside_its_entry_as_the_deployed_one_does() {
        assert_eq!(Variant::Deploy.out_dir(), root().join("api-worker/build"));
        assert_eq!(
            Variant::Local.out_dir(),
            local_entry().parent().unwrap().join("build"),
            "entry.mjs imports ./build/index.js"
        );
        assert!(Variant::Local.out_dir().starts_with(wasm_target_dir()));
        let entry = std::fs::read_to_string(root().join("api-worker/entry.mjs")).unwrap();
        assert!(entry.contains("from \"./build/index.js\""), "{entry}");
    }

    #[test]
    fn the_repository_sets_a_budget() {
        assert!(gzip_budget().unwrap() > 0);
    }

    #[test]
    fn sizes_are_measured_for_shipped_files_only() {
        let dir = project::scratch_dir("measure");
        std::fs::create_dir_all(dir.join("worker")).unwrap();
        std::fs::write(dir.join("index.js"), "x".repeat(10_000)).unwrap();
        std::fs::write(dir.join("worker/shim.mjs"), "export {}").unwrap();
        std::fs::write(dir.join("package.json"), "{}").unwrap();
        std::fs::write(dir.join(".gitignore"), "*").unwrap();
        let files = measure(&dir).unwrap();
        let names: Vec<_> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(names, ["index.js", "worker/shim.mjs"]);
        assert_eq!(files[0].raw_bytes, 10_000);
        assert!(files[0].gzip_bytes < 200, "10k of one byte gzips small");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn over_budget_fails() {
        let report = BundleReport {
            commit: "c".into(),
            variant: Variant::Deploy,
            rebuilt: false,
            files: vec![],
            raw_bytes: 10,
            gzip_bytes: 2_000,
            gzip_budget_bytes: 1_000,
            deploy_bundle: None,
        };
        let err = check_budget(&report).unwrap_err().to_string();
        assert!(err.contains("over its budget"), "{err}");
    }
}
