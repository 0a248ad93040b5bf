//! `cargo xtask test`: formatting, lints, native tests, a short run of
//! every coverage-guided fuzz target, the Pages shim's own tests, then the end-to-end suite, the browser suite and
//! schemathesis against a stack of their own (own ports, own state
//! directory, so it can run beside `cargo xtask dev`). Every suite runs
//! even after one fails, but none starts after Ctrl-C; the command prints
//! one summary line per suite and fails if any did.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;

use crate::stack::{Stack, StackOptions};
use crate::ui::{format_duration, Ui};
use crate::{build, dev, flags, fuzz, install, project};

#[derive(Debug, Serialize)]
struct Suite {
    name: &'static str,
    ok: bool,
    /// Tests counted from the test harness's `test result:` lines.
    passed: u64,
    failed: u64,
    ignored: u64,
    seconds: f64,
    /// Why the suite failed, when it failed for another reason than tests.
    error: Option<String>,
    /// Why a suite that passed ran nothing (the filter selected none of it).
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

impl Suite {
    /// A suite of counted test cases: it passes when nothing failed and no
    /// other `error` occurred.
    fn counted(
        name: &'static str,
        counts: Counts,
        started: Instant,
        error: Option<String>,
    ) -> Suite {
        Suite {
            name,
            ok: error.is_none() && counts.failed == 0,
            passed: counts.passed,
            failed: counts.failed,
            ignored: counts.ignored,
            seconds: started.elapsed().as_secs_f64(),
            error,
            note: None,
        }
    }

    /// A suite the filter selected nothing of: it passes, and says so.
    fn filtered_out(name: &'static str, filter: &[String], started: Instant) -> Suite {
        Suite {
            note: Some(format!("no test name contains {:?}", filter.join(" "))),
            ..Suite::counted(name, Counts::default(), started, None)
        }
    }

    fn summary(&self) -> String {
        let status = if self.ok { "ok" } else { "FAILED" };
        let counts = if self.passed + self.failed + self.ignored > 0 {
            let ignored = if self.ignored > 0 {
                format!(", {} skipped", self.ignored)
            } else {
                String::new()
            };
            format!("{} passed, {} failed{ignored}", self.passed, self.failed)
        } else {
            status.to_owned()
        };
        // The first line only: the full error is printed when it happens.
        let error = self
            .error
            .as_deref()
            .or(self.note.as_deref())
            .and_then(|e| e.lines().next())
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        format!("{}: {counts}{error}", self.name)
    }
}

/// Totals of the `test result: ok. 3 passed; 1 failed; 2 ignored; ...`
/// lines that libtest prints per test binary.
#[derive(Debug, Default, PartialEq)]
struct Counts {
    passed: u64,
    failed: u64,
    ignored: u64,
}

impl Counts {
    /// Adds the top-level summary of node's TAP reporter (`# pass 8`,
    /// `# fail 1`, `# skipped 2`, `# cancelled 0`; a cancelled test, cut
    /// off by a failing hook or a timeout, counts as failed).
    fn add_tap_line(&mut self, line: &str) {
        let Some((label, n)) = line.strip_prefix("# ").and_then(|l| l.split_once(' ')) else {
            return;
        };
        let Ok(n) = n.trim().parse::<u64>() else {
            return;
        };
        match label {
            "pass" => self.passed += n,
            "fail" | "cancelled" => self.failed += n,
            "skipped" | "todo" => self.ignored += n,
            _ => {}
        }
    }

    fn add_line(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            return;
        };
        for part in rest.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(label), Some(n)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(n) = n.parse::<u64>() else { continue };
            match label {
                "passed" => self.passed += n,
                "failed" => self.failed += n,
                "ignored" => self.ignored += n,
                _ => {}
            }
        }
    }
}

pub fn run(ui: &Ui, flags: &flags::Test) -> anyhow::Result<()> {
    let started = Instant::now();
    let interrupted = dev::interrupt_flag()?;
    let filter: Vec<String> = flags.filter.iter().cloned().collect();
    let mut run = Run::new(ui, &interrupted);
    if let Some(warning) = disk_warning(project::free_bytes(&project::root())) {
        ui.info(warning);
    }
    run.suite("fmt", || {
        check(ui, "fmt", cargo().args(["fmt", "--all", "--", "--check"]))
    });
    let clippy = [
        "clippy",
        "--workspace",
        "--all-targets",
        "--quiet",
        "--",
        "-D",
        "warnings",
    ];
    run.suite("clippy", || check(ui, "clippy", cargo().args(clippy)));
    let unit = [
        "test",
        "--no-fail-fast",
        "--workspace",
        "--exclude",
        "e2e",
        "--",
    ];
    run.suite("unit", || {
        // The stand-in's wrangler test runs the real `wrangler pages deploy`
        // from node_modules: install it first (a fresh clone has none yet).
        // A laptop without npm still runs the rest; that test then says
        // SKIPPED, and fails under CI=true.
        if let Err(error) = install::wrangler(ui) {
            ui.info(format!("wrangler could not be installed: {error:#}"));
        }
        counted_suite(
            ui,
            "unit",
            cargo().args(unit).args(&filter),
            Counts::add_line,
            &filter,
        )
    });
    run.suite("fuzz", || fuzz_targets(ui, &filter, &interrupted));
    run.suite("shim", || shim_tests(ui, &filter));
    if !flags.no_e2e {
        end_to_end(ui, flags, &filter, &mut run);
    }

    run.finish(&filter, started)
}

/// The suites of one run, in order. Ctrl-C reaches the running command
/// too, which then fails its suite; the flag keeps every later suite from
/// starting (the browser suite alone could spend minutes installing
/// Chromium), and the run ends with the summary of what did run.
struct Run<'a> {
    ui: &'a Ui,
    interrupted: &'a AtomicBool,
    suites: Vec<Suite>,
    /// The suites Ctrl-C kept from starting.
    not_run: Vec<&'static str>,
}

impl<'a> Run<'a> {
    fn new(ui: &'a Ui, interrupted: &'a AtomicBool) -> Run<'a> {
        Run {
            ui,
            interrupted,
            suites: Vec::new(),
            not_run: Vec::new(),
        }
    }

    fn interrupted(&self) -> bool {
        self.interrupted.load(Ordering::SeqCst)
    }

    /// Runs suite `name` unless Ctrl-C came first.
    fn suite(&mut self, name: &'static str, suite: impl FnOnce() -> Suite) {
        if self.interrupted() {
            self.skip(&[name]);
        } else {
            self.suites.push(suite());
        }
    }

    /// Prints the result (the `--json` document, then one line per suite
    /// on stderr); the error, if the run failed, is one main does not print
    /// again as a document.
    fn finish(self, filter: &[String], started: Instant) -> anyhow::Result<()> {
        let interrupted = self.interrupted();
        let Run {
            ui,
            suites,
            not_run,
            ..
        } = self;
        let total = Counts {
            passed: suites.iter().map(|s| s.passed).sum(),
            failed: suites.iter().map(|s| s.failed).sum(),
            ignored: suites.iter().map(|s| s.ignored).sum(),
        };
        let outcome = verdict(&suites, &not_run, interrupted, filter);
        if ui.json {
            println!(
                "{}",
                serde_json::json!({
                    "ok": outcome.is_ok(),
                    "suites": suites,
                    "interrupted": interrupted,
                    "not_run": not_run,
                    "seconds": started.elapsed().as_secs_f64(),
                })
            );
        }
        eprintln!();
        for suite in &suites {
            eprintln!("{}", suite.summary());
        }
        eprintln!(
            "total: {} passed, {} failed ({})",
            total.passed,
            total.failed,
            format_duration(started.elapsed())
        );
        outcome.map_err(|e| crate::DocumentPrinted(e).into())
    }

    /// Records `names` as not run, saying so when the first is.
    fn skip(&mut self, names: &[&'static str]) {
        if self.not_run.is_empty() {
            if let Some(first) = names.first() {
                self.ui.info(format!(
                    "interrupted (Ctrl-C): {first} and every suite after it will not start"
                ));
            }
        }
        self.not_run.extend(names);
    }
}

/// The outcome of a run: it fails when a suite failed, when Ctrl-C cut it
/// short, or when its filter selected no test anywhere.
fn verdict(
    suites: &[Suite],
    not_run: &[&str],
    interrupted: bool,
    filter: &[String],
) -> anyhow::Result<()> {
    let failed: Vec<&str> = suites.iter().filter(|s| !s.ok).map(|s| s.name).collect();
    let mut reasons = Vec::new();
    if interrupted {
        reasons.push(if not_run.is_empty() {
            "interrupted (Ctrl-C)".to_owned()
        } else {
            format!("interrupted (Ctrl-C); not run: {}", not_run.join(", "))
        });
    }
    if !failed.is_empty() {
        reasons.push(format!("failed: {}", failed.join(", ")));
    }
    if !reasons.is_empty() {
        bail!("{}", reasons.join("; "));
    }
    if nothing_selected(filter, suites) {
        bail!(
            "no test in any suite has a name containing {:?}",
            filter.join(" ")
        );
    }
    Ok(())
}

/// What a run from a clean clone writes: 4.2 GiB of build output and
/// 0.3 GiB besides, measured (BENCHMARKS.md, "Developer loop"), with
/// room to spare.
const CLEAN_RUN_DISK_BYTES: u64 = 6 << 30;

/// A warning when the clone's filesystem has less room than a clean run
/// takes. A run that built before needs less, so this does not stop it;
/// it says why a build that runs out of disk did, before it does.
fn disk_warning(free: std::io::Result<u64>) -> Option<String> {
    let free = free.ok()?;
    (free < CLEAN_RUN_DISK_BYTES).then(|| {
        format!(
            "warning: {} free on this clone's filesystem; a run from a clean \
             clone writes about {} (build output, tools, stack state)",
            crate::ui::format_bytes(free),
            crate::ui::format_bytes(CLEAN_RUN_DISK_BYTES)
        )
    })
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(project::root());
    cmd
}

/// A suite that passes when its command does (fmt, clippy).
fn check(ui: &Ui, name: &'static str, cmd: &mut Command) -> Suite {
    let started = Instant::now();
    ui.info(format!("== {name}: {}", project::describe(cmd)));
    let error = match cmd.stdin(Stdio::null()).stdout(forward_stdout(ui)).status() {
        Ok(status) if status.success() => None,
        Ok(status) => Some(format!("exited with {status}")),
        Err(e) => Some(format!("cannot start: {e}")),
    };
    Suite {
        name,
        ok: error.is_none(),
        passed: 0,
        failed: 0,
        ignored: 0,
        seconds: started.elapsed().as_secs_f64(),
        error,
        note: None,
    }
}

/// Test output goes to stdout, except with `--json`, where stdout carries
/// only the result document.
fn forward_stdout(ui: &Ui) -> Stdio {
    if ui.json {
        Stdio::from(
            std::io::stderr()
                .as_fd()
                .try_clone_to_owned()
                .expect("dup stderr"),
        )
    } else {
        Stdio::inherit()
    }
}

/// Runs a test harness (libtest's, counted by [`Counts::add_line`], or
/// node's, by [`Counts::add_tap_line`]) and judges it by its counts: a
/// harness that exits 0 but ran nothing must not look like a pass, unless
/// a filter selected none of its tests (whether the filter selected
/// anything at all is judged over every suite, by [`nothing_selected`]).
fn counted_suite(
    ui: &Ui,
    name: &'static str,
    cmd: &mut Command,
    count: fn(&mut Counts, &str),
    filter: &[String],
) -> Suite {
    let started = Instant::now();
    let (counts, error) = run_counting(ui, name, cmd, count);
    if error.is_none() && counts.passed + counts.failed == 0 && !filter.is_empty() {
        return Suite {
            ignored: counts.ignored,
            ..Suite::filtered_out(name, filter, started)
        };
    }
    let error = error.or_else(|| (counts.passed == 0).then(|| "no test ran".to_owned()));
    Suite::counted(name, counts, started, error)
}

/// Seconds each coverage-guided fuzz target runs in `cargo xtask test`;
/// `cargo xtask fuzz` runs them long.
const FUZZ_SECONDS: u64 = 15;

/// The coverage-guided fuzz targets (`cargo xtask fuzz`), each one test
/// named after it that passes when its property held for
/// [`FUZZ_SECONDS`] of fuzzing from the committed seeds alone
/// ([`fuzz::Corpus::SeedsOnly`]: every machine runs what CI runs).
fn fuzz_targets(ui: &Ui, filter: &[String], interrupted: &AtomicBool) -> Suite {
    const NAME: &str = "fuzz";
    let started = Instant::now();
    let chosen: Vec<String> = match fuzz::targets() {
        Ok(all) => all
            .into_iter()
            .filter(|t| filter.iter().all(|f| t.contains(f.as_str())))
            .collect(),
        Err(e) => return Suite::counted(NAME, Counts::default(), started, Some(format!("{e:#}"))),
    };
    if chosen.is_empty() {
        return Suite::filtered_out(NAME, filter, started);
    }
    let binaries = match fuzz::build(ui) {
        Ok(binaries) => binaries,
        Err(e) => {
            // The summary line keeps only the first line; the build's own
            // output is here.
            ui.info(format!("{e:#}"));
            return Suite::counted(NAME, Counts::default(), started, Some(format!("{e:#}")));
        }
    };
    let (counts, error) = fuzz_each(&chosen, interrupted, |target| {
        let time = Duration::from_secs(FUZZ_SECONDS);
        fuzz::run_target(ui, &binaries, target, time, fuzz::Corpus::SeedsOnly).map(|run| run.ok)
    });
    Suite::counted(NAME, counts, started, error)
}

/// Runs `fuzz` on each target, each unless Ctrl-C came first; the counts,
/// and the first error (or which targets Ctrl-C kept from running).
fn fuzz_each(
    targets: &[String],
    interrupted: &AtomicBool,
    mut fuzz: impl FnMut(&str) -> anyhow::Result<bool>,
) -> (Counts, Option<String>) {
    let mut counts = Counts::default();
    let mut error = None;
    for (i, target) in targets.iter().enumerate() {
        if interrupted.load(Ordering::SeqCst) {
            error.get_or_insert(format!(
                "interrupted (Ctrl-C); not run: {}",
                targets[i..].join(", ")
            ));
            break;
        }
        match fuzz(target) {
            Ok(true) => counts.passed += 1,
            Ok(false) => counts.failed += 1,
            Err(e) => {
                counts.failed += 1;
                error.get_or_insert(format!("{target}: {e:#}"));
            }
        }
    }
    (counts, error)
}

/// Whether a filtered run ran no test in any suite: a misspelt filter must
/// fail rather than pass having checked nothing.
fn nothing_selected(filter: &[String], suites: &[Suite]) -> bool {
    !filter.is_empty() && suites.iter().all(|s| s.passed + s.failed == 0)
}

/// Runs a test harness, passing its output through (to stderr under
/// `--json`) while `count` reads each line; the error, if it failed.
fn run_counting(
    ui: &Ui,
    name: &'static str,
    cmd: &mut Command,
    count: fn(&mut Counts, &str),
) -> (Counts, Option<String>) {
    ui.info(format!("== {name}: {}", project::describe(cmd)));
    let mut counts = Counts::default();
    let result = (|| -> anyhow::Result<std::process::ExitStatus> {
        let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).spawn()?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut sink: Box<dyn Write> = if ui.json {
            Box::new(std::io::stderr())
        } else {
            Box::new(std::io::stdout())
        };
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            count(&mut counts, &line);
            let _ = writeln!(sink, "{line}");
        }
        Ok(child.wait()?)
    })();
    let error = match result {
        Ok(status) if status.success() => None,
        Ok(status) => Some(format!("exited with {status}")),
        Err(e) => Some(format!("{e:#}")),
    };
    (counts, error)
}

/// Builds the Worker and the e2e tests, starts a private stack, runs the
/// e2e suite, the browser suite and then schemathesis against it (each
/// unless Ctrl-C came first), and stops the stack whatever happened.
fn end_to_end(ui: &Ui, flags: &flags::Test, filter: &[String], run: &mut Run) {
    const SUITES: [&str; 3] = ["e2e", "browser", "schema"];
    if run.interrupted() {
        run.skip(&SUITES);
        return;
    }
    let started = Instant::now();
    let first = run.suites.len();
    ui.info("== e2e: local stack + cargo test -p e2e");
    let state_dir = project::local_dir().join(format!("test-{}", std::process::id()));
    let prepared = (|| -> anyhow::Result<(Stack, std::path::PathBuf)> {
        let build_tools = install::build_tools(ui)?;
        let stack_tools = install::stack_tools(ui)?;
        let schemathesis = install::schemathesis(ui)?;
        build::worker(ui, &build_tools, build::Variant::Local)?;
        ui.step("compile the e2e tests", || {
            project::run(cargo().args(["test", "--package", "e2e", "--no-run", "--quiet"]))
        })?;
        let options = StackOptions {
            state_dir: state_dir.clone(),
            api_port: 0,
            keep_data: false,
            optimised_stand_ins: false,
            trace_statements: None,
        };
        // Also stops what dead test runs left running, and deletes their
        // state once it is old (`stack::sweep_abandoned_runs`).
        let stack = ui.step("start a private local stack", || {
            Stack::start(
                ui,
                &stack_tools,
                Some(&build_tools),
                &options,
                run.interrupted,
            )
        })?;
        std::fs::write(state_dir.join("owner"), std::process::id().to_string())?;
        Ok((stack, schemathesis))
    })();
    match prepared {
        Ok((mut stack, schemathesis)) => {
            let manifest = state_dir.join(stack_manifest::FILE_NAME);
            run.suite("e2e", || {
                let mut e2e = counted_suite(
                    ui,
                    "e2e",
                    cargo()
                        .args(["test", "--no-fail-fast", "--package", "e2e", "--"])
                        .args(filter)
                        .env(stack_manifest::ENV_VAR, &manifest)
                        // This very binary, for tests of xtask's own
                        // commands (`cargo run` would wait on the build
                        // lock this `cargo test` holds, and rebuild
                        // xtask's dependencies).
                        .env(XTASK_ENV_VAR, std::env::current_exe().unwrap_or_default()),
                    Counts::add_line,
                    filter,
                );
                e2e.seconds = started.elapsed().as_secs_f64();
                e2e
            });
            run.suite("browser", || browser_tests(ui, &manifest, filter));
            run.suite("schema", || {
                // Schemathesis has no test names to filter by: a filter
                // runs it only when it names the suite (`cargo xtask test
                // schema`).
                if !schema_selected(filter) {
                    return Suite::filtered_out("schema", filter, Instant::now());
                }
                let api = stack
                    .manifest
                    .api
                    .as_ref()
                    .map(|a| a.url.clone())
                    .unwrap_or_default();
                let token = crate::stack::admin_token(&stack.manifest, "schemathesis@example.com");
                schema_conformance(ui, &schemathesis, &api, &token)
            });
            stack.stop();
        }
        Err(e) => {
            ui.info(format!("  e2e could not start: {e:#}"));
            run.suites.push(Suite {
                name: "e2e",
                ok: false,
                passed: 0,
                failed: 0,
                ignored: 0,
                seconds: started.elapsed().as_secs_f64(),
                error: Some(format!("{e:#}")),
                note: None,
            });
            if run.interrupted() {
                run.skip(&SUITES[1..]);
            }
        }
    }
    let passed = run.suites[first..].iter().all(|s| s.ok) && !run.interrupted();
    if passed && !flags.keep_state {
        // A server's last writes can still land while its group dies.
        for _ in 0..5 {
            if std::fs::remove_dir_all(&state_dir).is_ok() || !state_dir.exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    } else if state_dir.exists() {
        ui.info(format!(
            "  e2e stack state and logs kept in {}",
            state_dir.display()
        ));
    }
}

/// The Pages shim's unit tests (`node --test pages-shim/test/`: the shim
/// with real `Request`/`Response` objects and a recording binding, and the
/// check that every site ships the shared shim unchanged).
fn shim_tests(ui: &Ui, filter: &[String]) -> Suite {
    let started = Instant::now();
    let Some(node) = project::find_program("node") else {
        return Suite::counted(
            "shim",
            Counts::default(),
            started,
            Some("node is not installed".into()),
        );
    };
    let mut cmd = node_test(&node, &project::root().join("pages-shim/test"), filter);
    counted_suite(ui, "shim", &mut cmd, Counts::add_tap_line, filter)
}

/// The browser suite (`e2e/browser/`, node --test with playwright-core
/// driving Debian's Chromium) against the stack's sites; screenshots of
/// failed tests go to the state directory, which is kept on failure.
fn browser_tests(ui: &Ui, manifest: &std::path::Path, filter: &[String]) -> Suite {
    let started = Instant::now();
    let tools = match install::browser_tools(ui) {
        Ok(tools) => tools,
        Err(e) => {
            return Suite::counted(
                "browser",
                Counts::default(),
                started,
                Some(format!("{e:#}")),
            )
        }
    };
    let mut cmd = node_test(&tools.node, &project::root().join("e2e/browser"), filter);
    cmd.env(stack_manifest::ENV_VAR, manifest)
        .env("CHROMIUM", &tools.chromium);
    counted_suite(ui, "browser", &mut cmd, Counts::add_tap_line, filter)
}

/// `node --test` over `dir` with the TAP reporter (whose summary
/// [`Counts::add_tap_line`] reads), limited to tests whose name contains
/// one of `filter`.
fn node_test(node: &std::path::Path, dir: &std::path::Path, filter: &[String]) -> Command {
    let mut cmd = Command::new(node);
    cmd.args(["--test", "--test-reporter=tap"])
        .current_dir(project::root());
    for word in filter {
        cmd.arg(format!("--test-name-pattern={}", regex_literal(word)));
    }
    cmd.arg(dir);
    cmd
}

/// `text` as a regular expression that matches exactly it.
fn regex_literal(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let escape = "\\^$.|?*+()[]{}/".contains(c);
            escape.then_some('\\').into_iter().chain(std::iter::once(c))
        })
        .collect()
}

/// Whether a filter selects the schemathesis suite, which runs as one
/// test named `schema`.
fn schema_selected(filter: &[String]) -> bool {
    filter.iter().all(|word| "schema".contains(word.as_str()))
}

/// Where the e2e tests find the xtask binary that runs them.
const XTASK_ENV_VAR: &str = "EDGE_API_XTASK";

/// Schemathesis against the running Worker's own `/openapi.json`: every
/// documented operation with generated inputs and all its checks (no 5xx;
/// status codes, content types, headers and bodies as documented).
fn schema_conformance(
    ui: &Ui,
    schemathesis: &std::path::Path,
    api: &str,
    admin_token: &str,
) -> Suite {
    let started = Instant::now();
    let mut cmd = Command::new(schemathesis);
    // In the environment, not the printed command line.
    cmd.env("EDGE_API_ACCESS_TOKEN", admin_token);
    cmd.arg("--config-file")
        .arg(project::root().join("schemathesis.toml"))
        .args(["run", &format!("{api}/openapi.json"), "--url", api])
        .env("NO_COLOR", "1")
        .current_dir(std::env::temp_dir());
    ui.info(format!("== schema: {}", project::describe(&cmd)));
    let (status, text) = match cmd.stdin(Stdio::null()).output() {
        Ok(out) => (
            Some(out.status),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        ),
        Err(e) => (None, format!("cannot start schemathesis: {e}")),
    };
    // The summary when it passed; everything (each failure with its
    // reproducing request) when it did not.
    match status {
        Some(s) if s.success() => eprintln!("{}", project::tail(&text, 30)),
        _ => eprintln!("{text}"),
    }
    let counts = schemathesis_counts(&text);
    let error = match status {
        Some(s) if s.success() => (counts.passed == 0).then(|| "no test case ran".to_owned()),
        Some(s) => Some(format!("exited with {s}")),
        None => Some(text),
    };
    Suite::counted("schema", counts, started, error)
}

/// Counts from schemathesis' summary, the line after `Test cases:`, such as
/// `  20 generated, 18 passed, 2 failed, 1 skipped`.
fn schemathesis_counts(output: &str) -> Counts {
    let mut counts = Counts::default();
    let mut lines = output.lines();
    if lines.by_ref().any(|l| l.trim() == "Test cases:") {
        for part in lines.next().unwrap_or_default().split(',') {
            let mut words = part.split_whitespace();
            let (Some(n), Some(label)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(n) = n.parse::<u64>() else { continue };
            match label {
                "passed" => counts.passed += n,
                "failed" | "errored" => counts.failed += n,
                "skipped" => counts.ignored += n,
                _ => {}
            }
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_disk_is_warned_of_before_the_build_runs_out() {
        let warning = disk_warning(Ok(1 << 30)).expect("1 GiB is short");
        assert!(warning.contains("1.00 GiB free"), "{warning}");
        assert!(warning.contains("about 6.00 GiB"), "{warning}");
        assert_eq!(disk_warning(Ok(CLEAN_RUN_DISK_BYTES)), None);
        assert_eq!(
            disk_warning(Err(std::io::ErrorKind::Unsupported.into())),
            None,
            "a filesystem that cannot say is not warned about"
        );
    }

    fn passed(name: &'static str) -> Suite {
        Suite::counted(
            name,
            Counts {
                passed: 1,
                ..Counts::default()
            },
            Instant::now(),
            None,
        )
    }

    #[test]
    fn no_suite_starts_after_ctrl_c() {
        let ui = Ui { json: true };
        let interrupted = AtomicBool::new(false);
        let mut run = Run::new(&ui, &interrupted);
        run.suite("fmt", || passed("fmt"));
        run.suite("e2e", || {
            // Ctrl-C while the suite runs: it ends (failing, as cargo
            // does), and what follows does not start.
            interrupted.store(true, Ordering::SeqCst);
            Suite::counted(
                "e2e",
                Counts::default(),
                Instant::now(),
                Some("killed".into()),
            )
        });
        run.suite("browser", || unreachable!("the browser suite started"));
        run.suite("schema", || unreachable!("schemathesis started"));
        let names: Vec<_> = run.suites.iter().map(|s| s.name).collect();
        assert_eq!(names, ["fmt", "e2e"]);
        assert_eq!(run.not_run, ["browser", "schema"]);

        let error = verdict(&run.suites, &run.not_run, true, &[]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "interrupted (Ctrl-C); not run: browser, schema; failed: e2e"
        );
        let suites = [passed("fmt")];
        let error = verdict(&suites, &[], true, &[]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "interrupted (Ctrl-C)",
            "even when all passed"
        );
        assert!(verdict(&suites, &[], false, &[]).is_ok());
    }

    #[test]
    fn no_fuzz_target_starts_after_ctrl_c() {
        let interrupted = AtomicBool::new(false);
        let targets = ["a", "b", "c"].map(String::from);
        let mut started = Vec::new();
        let (counts, error) = fuzz_each(&targets, &interrupted, |target| {
            started.push(target.to_owned());
            interrupted.store(true, Ordering::SeqCst);
            Ok(false)
        });
        assert_eq!(started, ["a"]);
        assert_eq!(counts.failed, 1);
        assert_eq!(
            error.as_deref(),
            Some("interrupted (Ctrl-C); not run: b, c")
        );

        let calm = AtomicBool::new(false);
        let (counts, error) = fuzz_each(&targets, &calm, |t| match t {
            "b" => anyhow::bail!("cannot start"),
            _ => Ok(true),
        });
        assert_eq!((counts.passed, counts.failed), (2, 1));
        assert_eq!(error.as_deref(), Some("b: cannot start"));
    }

    #[test]
    fn a_failed_run_is_reported_in_its_own_document_only() {
        let ui = Ui { json: true };
        let interrupted = AtomicBool::new(false);
        let mut run = Run::new(&ui, &interrupted);
        run.suite("unit", || {
            Suite::counted("unit", Counts::default(), Instant::now(), Some("x".into()))
        });
        let error = run.finish(&[], Instant::now()).unwrap_err();
        assert_eq!(format!("{error:#}"), "failed: unit");
        assert!(
            error.is::<crate::DocumentPrinted>(),
            "main would print a second document"
        );
    }

    #[test]
    fn libtest_result_lines_are_counted() {
        let mut counts = Counts::default();
        counts.add_line("test result: ok. 5 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.00s");
        counts.add_line(
            "test result: FAILED. 2 passed; 3 failed; 0 ignored; 0 measured; 0 filtered out",
        );
        counts.add_line("test something ... ok");
        counts.add_line("running 5 tests");
        assert_eq!(
            counts,
            Counts {
                passed: 7,
                failed: 3,
                ignored: 1
            }
        );
    }

    #[test]
    fn node_tap_summaries_are_counted() {
        let mut counts = Counts::default();
        for line in [
            "ok 1 - web",
            "    # Subtest: nested",
            "# tests 9",
            "# suites 4",
            "# pass 6",
            "# fail 1",
            "# cancelled 1",
            "# skipped 1",
            "# todo 0",
            "# duration_ms 45637.6",
        ] {
            counts.add_tap_line(line);
        }
        assert_eq!(
            counts,
            Counts {
                passed: 6,
                failed: 2,
                ignored: 1
            }
        );
    }

    #[test]
    fn filters_become_literal_name_patterns() {
        assert_eq!(regex_literal("a.b(c)"), "a\\.b\\(c\\)");
        assert_eq!(regex_literal("uploads"), "uploads");
    }

    #[test]
    fn schemathesis_summaries_are_counted() {
        let output = "API Operations:\n  Selected: 2/2\n\nTest cases:\n  20 generated, 18 passed, 2 failed, 1 skipped\n\nSeed: 1";
        assert_eq!(
            schemathesis_counts(output),
            Counts {
                passed: 18,
                failed: 2,
                ignored: 1
            }
        );
        assert_eq!(schemathesis_counts("nothing here"), Counts::default());
    }

    #[test]
    fn a_filter_passes_suites_it_selects_nothing_of_but_not_the_run() {
        let filter = ["every_dependency_fails".to_owned()];
        let started = Instant::now();
        let unit = Suite::filtered_out("unit", &filter, started);
        assert!(unit.ok);
        assert_eq!(
            unit.summary(),
            "unit: ok (no test name contains \"every_dependency_fails\")"
        );
        let ran = |passed, failed| {
            let counts = Counts {
                passed,
                failed,
                ignored: 0,
            };
            Suite::counted("e2e", counts, started, None)
        };
        let (e2e, failing) = (ran(1, 0), ran(0, 1));
        let lints = Suite::counted("fmt", Counts::default(), started, None);
        assert!(!nothing_selected(&filter, &[unit, e2e]));
        let unit = Suite::filtered_out("unit", &filter, started);
        assert!(!nothing_selected(&filter, &[unit, failing]));
        let unit = Suite::filtered_out("unit", &filter, started);
        assert!(nothing_selected(&filter, &[lints, unit]));
        assert!(
            !nothing_selected(&[], &[]),
            "an unfiltered run is judged per suite"
        );
    }

    #[test]
    fn schemathesis_runs_unfiltered_or_when_the_filter_names_it() {
        assert!(schema_selected(&[]));
        assert!(schema_selected(&["schema".to_owned()]));
        assert!(schema_selected(&["schem".to_owned()]));
        assert!(!schema_selected(&["every_dependency_fails".to_owned()]));
    }

    #[test]
    fn summaries_read_as_plain_result_lines() {
        let suite = Suite {
            name: "unit",
            ok: true,
            passed: 12,
            failed: 0,
            ignored: 0,
            seconds: 1.0,
            error: None,
            note: None,
        };
        assert_eq!(suite.summary(), "unit: 12 passed, 0 failed");
        let failed = Suite {
            name: "clippy",
            ok: false,
            passed: 0,
            failed: 0,
            ignored: 0,
            seconds: 1.0,
            error: Some("exited with exit status: 1".into()),
            note: None,
        };
        assert_eq!(
            failed.summary(),
            "clippy: FAILED (exited with exit status: 1)"
        );
        let multi_line = Suite {
            error: Some("mariadb exited during startup\nlog line 1\nlog line 2".into()),
            ..failed
        };
        assert_eq!(
            multi_line.summary(),
            "clippy: FAILED (mariadb exited during startup)"
        );
    }
}
