//! `cargo xtask fuzz`: the coverage-guided fuzz targets in `fuzz/` under
//! libFuzzer, built by cargo-fuzz. Each target runs for a set time on a
//! corpus kept in `.local/fuzz/corpus/<target>` (so a long run picks up
//! where the last one stopped); a failing input is saved in
//! `.local/fuzz/artifacts/<target>/` and the command fails naming it and
//! the broken property. `cargo xtask test` runs every target briefly, from
//! the seeds alone (see [`Corpus::SeedsOnly`]).
//!
//! Every run also reads the committed seeds in `fuzz/seeds/<target>`: a
//! small set of inputs that reaches every code edge the long runs reached
//! (see [`update_seeds`]). A fresh clone's short run in CI then starts at that
//! coverage instead of at nothing, and replays every seed against the
//! current code first. `--update-seeds` folds the local corpus into them.
//!
//! The build needs two things stable Rust keeps behind nightly flags:
//! cargo-fuzz passes `-Z` codegen options for LLVM's coverage
//! instrumentation, which `RUSTC_BOOTSTRAP=1` lets the one stable toolchain
//! these machines have accept. And it builds without AddressSanitizer
//! (`-s none`): everything the targets reach is safe Rust, where ASan finds
//! nothing the panics and overflow checks do not, and it cost the JWT
//! target half its speed. Fat LTO from the workspace's release profile is
//! off for the build: it only slows the build of an instrumented binary.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;

use crate::ui::{format_bytes, format_duration, Ui};
use crate::{flags, install, project};

/// What one target's run did, from libFuzzer's own report.
#[derive(Debug, Default, Serialize)]
pub struct TargetRun {
    pub name: String,
    pub ok: bool,
    /// Inputs tried.
    pub runs: u64,
    pub execs_per_sec: u64,
    /// Code edges and features covered, as libFuzzer counts them.
    pub coverage: u64,
    pub features: u64,
    /// Inputs in the corpus at the end.
    pub corpus: u64,
    pub seconds: f64,
    /// The input that broke a property, saved for reproduction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact: Option<PathBuf>,
    /// What broke: the panic message, or libFuzzer's error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

/// `cargo xtask fuzz`.
pub fn run(ui: &Ui, flags: &flags::Fuzz) -> anyhow::Result<()> {
    let all = targets()?;
    let chosen: Vec<String> = if flags.targets.is_empty() {
        all.clone()
    } else {
        for name in &flags.targets {
            if !all.contains(name) {
                bail!("no fuzz target {name:?}; the targets: {}", all.join(", "));
            }
        }
        flags.targets.clone()
    };
    let binaries = build(ui)?;
    if flags.update_seeds {
        return update_seeds(ui, &binaries, &chosen);
    }
    let time = Duration::from_secs(flags.time);
    let runs: Vec<TargetRun> = chosen
        .iter()
        .map(|name| run_target(ui, &binaries, name, time, Corpus::Kept))
        .collect::<anyhow::Result<_>>()?;
    let ok = runs.iter().all(|r| r.ok);
    if ui.json {
        println!("{}", serde_json::json!({ "ok": ok, "targets": runs }));
    } else {
        print_table(&runs);
    }
    if !ok {
        // The document above names the input: main prints no second one.
        return Err(crate::DocumentPrinted(anyhow::anyhow!(
            "a fuzz target broke its property; replay the input with the command above{}",
            if ui.json { " (see `targets`)" } else { "" }
        ))
        .into());
    }
    Ok(())
}

/// What a run starts from and where the inputs it finds go.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Corpus {
    /// The committed seeds and `.local/fuzz/corpus/<target>`, which keeps
    /// what the run finds: `cargo xtask fuzz`, whose long runs build on
    /// each other and feed `--update-seeds`.
    Kept,
    /// The committed seeds alone, and what the run finds stays in
    /// libFuzzer's memory (`-seed_inputs`, no corpus directory):
    /// `cargo xtask test`. Its few seconds are a check that must mean the
    /// same on every machine, so each run starts where a fresh clone in CI
    /// does. Sharing the long-run corpus made a laptop's check differ from
    /// CI's and spend its seconds replaying tens of thousands of inputs
    /// (which it grew with every run); capping that corpus would still
    /// leave each machine with its own. What is worth keeping reaches the
    /// seeds through `cargo xtask fuzz` and `--update-seeds`.
    SeedsOnly,
}

/// The fuzz targets, by the names of their files in fuzz/fuzz_targets.
pub fn targets() -> anyhow::Result<Vec<String>> {
    let dir = project::root().join("fuzz/fuzz_targets");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            (path.extension()? == "rs").then(|| path.file_stem()?.to_str().map(str::to_owned))?
        })
        .collect();
    names.sort();
    Ok(names)
}

/// Builds every target; returns the directory holding their binaries.
pub fn build(ui: &Ui) -> anyhow::Result<PathBuf> {
    let cargo_fuzz = install::cargo_fuzz(ui)?;
    let host = host_triple()?;
    ui.step("cargo fuzz build (instrumented for coverage)", || {
        project::run(
            Command::new(&cargo_fuzz)
                .current_dir(project::root())
                .args(["build", "--sanitizer", "none", "--target", &host])
                .env("RUSTC_BOOTSTRAP", "1")
                .env("CARGO_PROFILE_RELEASE_LTO", "false"),
        )
    })?;
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| project::root().join("target"));
    Ok(target_dir.join(host).join("release"))
}

fn host_triple() -> anyhow::Result<String> {
    let version = project::output(Command::new("rustc").arg("-vV"))?;
    version
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_owned)
        .context("`rustc -vV` names no host")
}

/// Runs target `name` for `time` on `corpus`, under a spinner that shows
/// libFuzzer's progress.
pub fn run_target(
    ui: &Ui,
    binaries: &Path,
    name: &str,
    time: Duration,
    corpus: Corpus,
) -> anyhow::Result<TargetRun> {
    let local = project::local_dir().join("fuzz");
    let artifacts = local.join("artifacts").join(name);
    let kept = local.join("corpus").join(name);
    let mut dirs = vec![&artifacts];
    if corpus == Corpus::Kept {
        dirs.push(&kept);
    }
    for dir in dirs {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    // libFuzzer reads the list of seed files from a file (the list is too
    // long for one argument).
    let seed_list =
        std::env::temp_dir().join(format!("xtask-fuzz-{}-{name}.seeds", std::process::id()));
    let binary = std::path::absolute(binaries.join(name))?;
    let mut cmd = fuzz_command(&binary, &seeds_dir(name), &kept, &seed_list, corpus)?;
    cmd.arg(format!("-max_total_time={}", time.as_secs()))
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg("-rss_limit_mb=2048")
        .arg("-print_final_stats=1");
    let dictionary = dictionary(name);
    if dictionary.is_file() {
        cmd.arg(format!("-dict={}", dictionary.display()));
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let result = watch(ui, &binary, name, &mut cmd);
    let _ = std::fs::remove_file(&seed_list);
    result
}

/// The fuzz target `binary` started on its inputs as `corpus` says: for
/// [`Corpus::Kept`] the kept corpus first (libFuzzer writes new inputs to
/// the first directory) and the seeds after it; for [`Corpus::SeedsOnly`]
/// no directory, the seeds' names written to `seed_list` (run from the
/// seeds' directory, so a comma in the checkout's path cannot split a name:
/// libFuzzer separates the names by commas).
fn fuzz_command(
    binary: &Path,
    seeds: &Path,
    kept: &Path,
    seed_list: &Path,
    corpus: Corpus,
) -> anyhow::Result<Command> {
    let mut cmd = Command::new(binary);
    match corpus {
        Corpus::Kept => {
            cmd.arg(kept);
            if seeds.is_dir() {
                cmd.arg(seeds);
            }
        }
        Corpus::SeedsOnly => {
            let mut names = Vec::new();
            if seeds.is_dir() {
                for entry in std::fs::read_dir(seeds)
                    .with_context(|| format!("cannot list {}", seeds.display()))?
                {
                    let entry = entry?;
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if entry.file_type()?.is_file() && !name.contains(',') {
                        names.push(name);
                    }
                }
            }
            // No seeds: it starts from nothing (libFuzzer refuses an
            // empty list).
            if !names.is_empty() {
                names.sort();
                std::fs::write(seed_list, names.join(","))
                    .with_context(|| format!("cannot write {}", seed_list.display()))?;
                cmd.arg(format!("-seed_inputs=@{}", seed_list.display()))
                    .current_dir(seeds);
            }
        }
    }
    Ok(cmd)
}

/// Runs the fuzz target `cmd` to its end, reading its report.
fn watch(ui: &Ui, binary: &Path, name: &str, cmd: &mut Command) -> anyhow::Result<TargetRun> {
    ui.info(format!("== fuzz {name}: {}", project::describe(cmd)));
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    let spinner = ui.spinner(&format!("fuzz {name}"));
    let mut report = Report::default();
    let stderr = child.stderr.take().expect("stderr is piped");
    for line in BufReader::new(stderr).lines() {
        let line = line.context("reading libFuzzer's output")?;
        report.read(&line);
        if let Some(status) = &report.status {
            spinner.set_message(format!("fuzz {name}: {status}"));
        }
    }
    let status = child.wait().context("waiting for the fuzz target")?;
    spinner.finish_and_clear();
    let mut run = report.finish(name, started.elapsed());
    if !status.success() && run.failure.is_none() {
        run.failure = Some(format!("exited with {status}"));
    }
    run.ok = status.success() && run.failure.is_none();
    let elapsed = format_duration(started.elapsed());
    if run.ok {
        ui.info(format!(
            "  ok    fuzz {name}: {} inputs, {}/s, coverage {} ({elapsed})",
            run.runs, run.execs_per_sec, run.coverage
        ));
    } else {
        ui.info(format!(
            "  FAIL  fuzz {name}: {} ({elapsed})",
            run.failure.as_deref().unwrap_or("failed")
        ));
        if let Some(artifact) = &run.artifact {
            ui.info(format!(
                "        replay: {} {}",
                binary.display(),
                artifact.display()
            ));
        }
    }
    Ok(run)
}

/// Target `name`'s libFuzzer dictionary, if it has one: tokens its
/// inputs must hold for some code to be reached (`resp_replies`'
/// `NOSCRIPT`, the answer that sends scripts' sources in a second write).
pub fn dictionary(name: &str) -> PathBuf {
    project::root()
        .join("fuzz/dictionaries")
        .join(format!("{name}.dict"))
}

/// The committed seed inputs of target `name`.
pub fn seeds_dir(name: &str) -> PathBuf {
    project::root().join("fuzz/seeds").join(name)
}

/// What `--update-seeds` did to one target's seeds.
#[derive(Debug, Serialize)]
struct SeedsUpdate {
    name: String,
    /// Seed files and their bytes before and after.
    before: (u64, u64),
    after: (u64, u64),
}

/// `cargo xtask fuzz --update-seeds`: for each target, a small set of
/// inputs from its seeds and its local corpus that reaches every code edge
/// either reaches, written over `fuzz/seeds`. libFuzzer's
/// `-set_cover_merge=1` picks the set; `-use_counters=0` makes it cover
/// edges, not how often each is hit, which keeps about a sixth as many
/// inputs (`-merge=1` kept 9,760 files over the seven targets, this
/// 1,728 when first made). The hit counts come back within seconds of fuzzing.
fn update_seeds(ui: &Ui, binaries: &Path, chosen: &[String]) -> anyhow::Result<()> {
    let mut updates = Vec::new();
    for name in chosen {
        let seeds = seeds_dir(name);
        let corpus = project::local_dir().join("fuzz/corpus").join(name);
        let merged = project::local_dir().join("fuzz/seeds-merged").join(name);
        if merged.exists() {
            std::fs::remove_dir_all(&merged)
                .with_context(|| format!("cannot empty {}", merged.display()))?;
        }
        std::fs::create_dir_all(&merged)
            .with_context(|| format!("cannot create {}", merged.display()))?;
        let before = dir_size(&seeds)?;
        let mut cmd = Command::new(binaries.join(name));
        cmd.args(["-set_cover_merge=1", "-use_counters=0"])
            .arg(&merged);
        for dir in [&seeds, &corpus] {
            if dir.is_dir() {
                cmd.arg(dir);
            }
        }
        ui.info(format!("== seeds {name}: {}", project::describe(&cmd)));
        ui.step(&format!("merge the seeds and the corpus of {name}"), || {
            project::run(&mut cmd)
        })?;
        let after = dir_size(&merged)?;
        if after.0 == 0 {
            bail!("merging {name}'s inputs kept none; its seeds are left as they were");
        }
        if seeds.exists() {
            std::fs::remove_dir_all(&seeds)
                .with_context(|| format!("cannot replace {}", seeds.display()))?;
        }
        std::fs::create_dir_all(seeds.parent().expect("seeds are in fuzz/seeds"))?;
        std::fs::rename(&merged, &seeds)
            .with_context(|| format!("cannot move the merged seeds to {}", seeds.display()))?;
        ui.info(format!(
            "  ok    seeds {name}: {} files ({}) -> {} files ({})",
            before.0,
            format_bytes(before.1),
            after.0,
            format_bytes(after.1)
        ));
        updates.push(SeedsUpdate {
            name: name.clone(),
            before,
            after,
        });
    }
    if ui.json {
        println!("{}", serde_json::json!({ "ok": true, "seeds": updates }));
    }
    Ok(())
}

/// Files in `dir` and their bytes; none when it does not exist.
fn dir_size(dir: &Path) -> anyhow::Result<(u64, u64)> {
    if !dir.is_dir() {
        return Ok((0, 0));
    }
    let mut size = (0, 0);
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let metadata = entry?.metadata()?;
        if metadata.is_file() {
            size.0 += 1;
            size.1 += metadata.len();
        }
    }
    Ok(size)
}

/// What libFuzzer says while it runs and when it stops.
#[derive(Debug, Default)]
struct Report {
    /// The latest status line, shortened for the spinner.
    status: Option<String>,
    runs: u64,
    execs_per_sec: u64,
    coverage: u64,
    features: u64,
    corpus: u64,
    artifact: Option<PathBuf>,
    failure: Option<String>,
    /// The line after `panicked at` is the panic message.
    panic_next: bool,
}

impl Report {
    fn read(&mut self, line: &str) {
        if self.panic_next {
            self.panic_next = false;
            self.failure.get_or_insert_with(|| line.trim().to_owned());
        }
        if line.contains("panicked at") {
            self.panic_next = true;
        }
        if let Some(path) = line
            .split_once("Test unit written to ")
            .map(|(_, path)| path.trim())
        {
            self.artifact = Some(PathBuf::from(path));
        }
        if let Some(error) = line.split_once("ERROR: libFuzzer: ").map(|(_, e)| e.trim()) {
            self.failure.get_or_insert_with(|| error.to_owned());
        }
        // `#4096	pulse  cov: 1343 ft: 2735 corp: 98/13Kb exec/s: 3855 rss: 351Mb`
        if let Some(rest) = line.strip_prefix('#') {
            let mut fields = rest.split_whitespace();
            let Some(Ok(runs)) = fields.next().map(str::parse::<u64>) else {
                return;
            };
            self.runs = runs;
            let words: Vec<&str> = fields.collect();
            let after = |label: &str| {
                words
                    .iter()
                    .position(|w| *w == label)
                    .and_then(|i| words.get(i + 1))
                    .map(|v| v.split('/').next().unwrap_or(v))
                    .and_then(|v| v.parse::<u64>().ok())
            };
            self.coverage = after("cov:").unwrap_or(self.coverage);
            self.features = after("ft:").unwrap_or(self.features);
            self.corpus = after("corp:").unwrap_or(self.corpus);
            self.execs_per_sec = after("exec/s:").unwrap_or(self.execs_per_sec);
            self.status = Some(format!(
                "{runs} inputs, {}/s, coverage {}, corpus {}",
                self.execs_per_sec, self.coverage, self.corpus
            ));
        }
        // `stat::number_of_executed_units: 369320`, `stat::average_exec_per_sec: 6054`
        if let Some((key, value)) = line.strip_prefix("stat::").and_then(|l| l.split_once(':')) {
            if let Ok(value) = value.trim().parse::<u64>() {
                match key {
                    "number_of_executed_units" => self.runs = value,
                    "average_exec_per_sec" => self.execs_per_sec = value,
                    _ => {}
                }
            }
        }
    }

    fn finish(self, name: &str, elapsed: Duration) -> TargetRun {
        TargetRun {
            name: name.to_owned(),
            ok: self.failure.is_none(),
            runs: self.runs,
            execs_per_sec: self.execs_per_sec,
            coverage: self.coverage,
            features: self.features,
            corpus: self.corpus,
            seconds: elapsed.as_secs_f64(),
            artifact: self.artifact,
            failure: self.failure,
        }
    }
}

fn print_table(runs: &[TargetRun]) {
    println!(
        "{:<16} {:>10} {:>8} {:>9} {:>7}  result",
        "target", "inputs", "per s", "coverage", "corpus"
    );
    for run in runs {
        println!(
            "{:<16} {:>10} {:>8} {:>9} {:>7}  {}",
            run.name,
            run.runs,
            run.execs_per_sec,
            run.coverage,
            run.corpus,
            if run.ok {
                "ok"
            } else {
                run.failure.as_deref().unwrap_or("FAILED")
            }
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_and_final_stats_are_read() {
        let mut report = Report::default();
        report.read("#2\tINITED exec/s: 0 rss: 33Mb");
        report.read(
            "#65536\tpulse  cov: 1343 ft: 2735 corp: 98/13086b lim: 1787 exec/s: 3855 rss: 351Mb",
        );
        assert_eq!(
            report.status.as_deref(),
            Some("65536 inputs, 3855/s, coverage 1343, corpus 98")
        );
        report.read("stat::number_of_executed_units: 369320");
        report.read("stat::average_exec_per_sec:     6054");
        let run = report.finish("resp_replies", Duration::from_secs(60));
        assert!(run.ok);
        assert_eq!(
            (
                run.runs,
                run.execs_per_sec,
                run.coverage,
                run.features,
                run.corpus
            ),
            (369_320, 6054, 1343, 2735, 98)
        );
    }

    #[test]
    fn a_panic_names_the_broken_property_and_the_saved_input() {
        let mut report = Report::default();
        for line in [
            "#109256\tREDUCE cov: 1010 ft: 3458 corp: 677/19Kb lim: 110 exec/s: 0 rss: 29Mb",
            "",
            "thread '<unnamed>' (26907) panicked at fuzz/fuzz_targets/tidb_binder.rs:77:17:",
            "Json(Number(7.7e40)) was sent as Text(\"7.7e40\")",
            "==26907== ERROR: libFuzzer: deadly signal",
            "artifact_prefix='/x/'; Test unit written to /x/crash-7ab6",
        ] {
            report.read(line);
        }
        let run = report.finish("tidb_binder", Duration::from_secs(1));
        assert!(!run.ok);
        assert_eq!(
            run.failure.as_deref(),
            Some("Json(Number(7.7e40)) was sent as Text(\"7.7e40\")")
        );
        assert_eq!(run.artifact, Some(PathBuf::from("/x/crash-7ab6")));
    }

    #[test]
    fn the_bounded_run_reads_the_seeds_alone_and_keeps_nothing() {
        let dir = project::scratch_dir("fuzz-corpus");
        let (seeds, kept, list) = (dir.join("seeds"), dir.join("kept"), dir.join("list"));
        std::fs::create_dir_all(&seeds).unwrap();
        for name in ["b1", "a0", "c,2"] {
            std::fs::write(seeds.join(name), name).unwrap();
        }
        let binary = Path::new("/fuzz/target");
        let args = |cmd: &Command| -> Vec<String> {
            cmd.get_args()
                .map(|a| a.to_string_lossy().into_owned())
                .collect()
        };

        let bounded = fuzz_command(binary, &seeds, &kept, &list, Corpus::SeedsOnly).unwrap();
        assert_eq!(
            args(&bounded),
            [format!("-seed_inputs=@{}", list.display())],
            "no corpus directory: nothing it finds is written"
        );
        assert_eq!(bounded.get_current_dir(), Some(seeds.as_path()));
        // A name with a comma would be read as two; seeds are hashes.
        assert_eq!(std::fs::read_to_string(&list).unwrap(), "a0,b1");

        let long = fuzz_command(binary, &seeds, &kept, &list, Corpus::Kept).unwrap();
        assert_eq!(
            args(&long),
            [kept.display().to_string(), seeds.display().to_string()],
            "the long run writes to its kept corpus and reads the seeds"
        );

        let unseeded = dir.join("none");
        let bare = fuzz_command(binary, &unseeded, &kept, &list, Corpus::SeedsOnly).unwrap();
        assert!(args(&bare).is_empty(), "an empty list would stop libFuzzer");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn every_target_file_is_a_binary_of_the_fuzz_crate() {
        let manifest = std::fs::read_to_string(project::root().join("fuzz/Cargo.toml")).unwrap();
        let targets = targets().unwrap();
        assert!(targets.len() >= 6, "{targets:?}");
        let help = {
            use clap::CommandFactory;
            let xtask = flags::Xtask::command();
            let fuzz = xtask.find_subcommand("fuzz").expect("a fuzz command");
            let targets = fuzz.get_arguments().find(|a| a.get_id() == "targets");
            targets.and_then(|a| a.get_help()).unwrap().to_string()
        };
        for name in targets {
            assert!(
                manifest.contains(&format!("path = \"fuzz_targets/{name}.rs\"")),
                "fuzz/Cargo.toml has no [[bin]] for {name}"
            );
            assert!(
                help.contains(&name),
                "`cargo xtask fuzz --help` does not list {name}"
            );
        }
    }

    /// The tokens of a libFuzzer dictionary, read as libFuzzer reads one
    /// (`ParseDictionaryFile`): a line is blank, a `#` comment, or an
    /// optional `name=` and a quoted token with `\\`, `\"` and `\xNN`
    /// escapes. libFuzzer refuses the whole run over one bad line.
    fn dictionary_tokens(text: &str) -> Result<Vec<Vec<u8>>, String> {
        let mut tokens = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: &str| format!("line {}: {why}: {line}", number + 1);
            let quoted = &line[line.find('"').ok_or_else(|| bad("no quote"))?..];
            let inner = quoted
                .strip_prefix('"')
                .and_then(|q| q.strip_suffix('"'))
                .ok_or_else(|| bad("not one quoted token"))?;
            let mut token = Vec::new();
            let mut bytes = inner.bytes();
            while let Some(byte) = bytes.next() {
                token.push(match byte {
                    b'\\' => match bytes.next() {
                        Some(b'\\') => b'\\',
                        Some(b'"') => b'"',
                        Some(b'x') => {
                            let hex = [bytes.next(), bytes.next()];
                            let hex: String = hex.iter().flatten().map(|&b| b as char).collect();
                            u8::from_str_radix(&hex, 16).map_err(|_| bad("bad \\x escape"))?
                        }
                        _ => return Err(bad("unknown escape")),
                    },
                    b'"' => return Err(bad("unescaped quote")),
                    other => other,
                });
            }
            tokens.push(token);
        }
        Ok(tokens)
    }

    #[test]
    fn dictionaries_are_read_as_libfuzzer_reads_them() {
        assert_eq!(
            dictionary_tokens("# comment\n\nnoscript=\"-NOSCRIPT x\\x0d\\x0a\"\n\"\\\\\\\"\"\n"),
            Ok(vec![b"-NOSCRIPT x\r\n".to_vec(), b"\\\"".to_vec()])
        );
        assert!(dictionary_tokens("-NOSCRIPT\n").is_err(), "no quotes");
        assert!(dictionary_tokens("\"a\"b\"\n").is_err(), "a quote inside");
        assert!(dictionary_tokens("\"\\xZZ\"\n").is_err(), "not hex");
    }

    #[test]
    fn every_dictionary_is_a_targets_and_well_formed() {
        let targets = targets().unwrap();
        let dir = project::root().join("fuzz/dictionaries");
        for entry in std::fs::read_dir(&dir).unwrap() {
            let file = entry.unwrap().file_name().into_string().unwrap();
            let name = file.strip_suffix(".dict").unwrap_or(&file);
            assert!(
                targets.iter().any(|t| t == name),
                "fuzz/dictionaries/{file} is no target's"
            );
            assert_eq!(dictionary(name), dir.join(&file));
            let tokens = dictionary_tokens(&std::fs::read_to_string(dir.join(&file)).unwrap())
                .unwrap_or_else(|e| panic!("fuzz/dictionaries/{file}: {e}"));
            assert!(!tokens.is_empty(), "fuzz/dictionaries/{file} has no token");
        }
        let replies = std::fs::read_to_string(dictionary("resp_replies")).unwrap();
        assert!(
            dictionary_tokens(&replies)
                .unwrap()
                .iter()
                .any(|t| t.starts_with(b"-NOSCRIPT ") && t.ends_with(b"\r\n")),
            "resp_replies' dictionary holds a whole NOSCRIPT error reply"
        );
    }

    #[test]
    fn every_target_has_committed_seeds_and_nothing_else_has() {
        let targets = targets().unwrap();
        for name in &targets {
            let (files, bytes) = dir_size(&seeds_dir(name)).unwrap();
            assert!(files > 0, "fuzz/seeds/{name} holds no seed");
            // A seed set is minimised; megabytes would mean an unmerged
            // corpus was committed.
            assert!(bytes < 4 << 20, "fuzz/seeds/{name} holds {bytes} bytes");
        }
        for entry in std::fs::read_dir(project::root().join("fuzz/seeds")).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            assert!(targets.contains(&name), "fuzz/seeds/{name} is no target's");
        }
    }
}
