//! `cargo xtask`: the project's one entry point for building, running,
//! testing and deploying. This file only dispatches; each command is a
//! module, and every flag is declared in `flags.rs`.

mod bench;
mod build;
mod deploy;
mod dev;
mod flags;
mod fuzz;
mod install;
mod migrate;
mod project;
mod stack;
mod test;
mod ui;

use clap::Parser;

fn main() {
    forget_cargo_run_environment();
    build_without_incremental_on_ci();
    let args = flags::Xtask::parse();
    let ui = ui::Ui { json: args.json };
    let result = match &args.command {
        flags::Command::Setup => setup(&ui),
        flags::Command::Build(flags) => build::run(&ui, flags),
        flags::Command::Dev(flags) => dev::run(&ui, flags),
        flags::Command::Test(flags) => test::run(&ui, flags),
        flags::Command::Migrate(flags) => migrate::run(&ui, flags),
        flags::Command::Bench(flags) => bench::run(&ui, flags),
        flags::Command::Fuzz(flags) => fuzz::run(&ui, flags),
        flags::Command::Plan(flags) => deploy::plan(&ui, flags).map(|code| {
            if code != 0 {
                std::process::exit(code);
            }
        }),
        flags::Command::Deploy(flags) => deploy::deploy(&ui, flags),
        flags::Command::Rollback(flags) => deploy::rollback(&ui, flags),
        flags::Command::Destroy(flags) => deploy::destroy(&ui, flags),
        flags::Command::Graph(flags) => deploy::graph(&ui, flags),
        flags::Command::Secrets(flags) => deploy::secrets(&ui, flags),
    };
    if let Err(e) = result {
        if let Some(document) = error_document(ui.json, &e) {
            println!("{document}");
        }
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// A command's failure after it printed its `--json` document (`test`'s
/// `"ok": false` with every suite, `dev`'s `"ready"` before a server died):
/// xtask still says the error on stderr and exits 1, but prints no second
/// document, so that stdout always parses as exactly one.
#[derive(Debug)]
pub struct DocumentPrinted(pub anyhow::Error);

impl std::fmt::Display for DocumentPrinted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.0)
    }
}

impl std::error::Error for DocumentPrinted {}

/// The `--json` document for a failed command, unless it printed its own.
fn error_document(json: bool, error: &anyhow::Error) -> Option<String> {
    (json && !error.is::<DocumentPrinted>())
        .then(|| serde_json::json!({ "ok": false, "error": format!("{error:#}") }).to_string())
}

/// `cargo run` gives xtask the variables of its own package
/// (`CARGO_MANIFEST_DIR`, `CARGO_PKG_*`, ...). Passed on to the cargo
/// commands xtask runs, they change what some build scripts see (ring's
/// reruns on `CARGO_MANIFEST_DIR`) and every run would rebuild half the
/// dependency tree. Called first, before any thread exists.
fn forget_cargo_run_environment() {
    let ours: Vec<_> = std::env::vars_os()
        .map(|(name, _)| name)
        .filter(|name| {
            let name = name.to_string_lossy();
            name.starts_with("CARGO_PKG_")
                || matches!(
                    name.as_ref(),
                    "CARGO_MANIFEST_DIR"
                        | "CARGO_MANIFEST_PATH"
                        | "CARGO_CRATE_NAME"
                        | "CARGO_BIN_NAME"
                        | "CARGO_PRIMARY_PACKAGE"
                )
        })
        .collect();
    for name in ours {
        std::env::remove_var(name);
    }
}

/// On CI (`CI=true`) every cargo command xtask runs builds without
/// incremental compilation: a clean clone gains nothing from its caches,
/// which only add to the disk a clean `cargo xtask test` once ran out of.
/// A `CARGO_INCREMENTAL` already set is left alone. Called before any
/// thread exists.
fn build_without_incremental_on_ci() {
    if incremental_off_for(
        std::env::var("CI").ok(),
        std::env::var_os("CARGO_INCREMENTAL"),
    ) {
        std::env::set_var("CARGO_INCREMENTAL", "0");
    }
}

fn incremental_off_for(ci: Option<String>, incremental: Option<std::ffi::OsString>) -> bool {
    ci.as_deref() == Some("true") && incremental.is_none()
}

fn setup(ui: &ui::Ui) -> anyhow::Result<()> {
    install::build_tools(ui)?;
    install::stack_tools(ui)?;
    install::browser_tools(ui)?;
    ui.info("every tool is installed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ci_builds_without_incremental_unless_told_otherwise() {
        assert!(incremental_off_for(Some("true".into()), None));
        assert!(!incremental_off_for(None, None), "a developer keeps it");
        assert!(!incremental_off_for(Some("false".into()), None));
        assert!(
            !incremental_off_for(Some("true".into()), Some("1".into())),
            "an explicit CARGO_INCREMENTAL wins"
        );
    }

    #[test]
    fn a_failure_gets_one_json_document_whoever_prints_it() {
        let plain = anyhow::anyhow!("boom").context("starting mariadb");
        let document = error_document(true, &plain).expect("main prints the document");
        let parsed: serde_json::Value = serde_json::from_str(&document).unwrap();
        assert_eq!(parsed["ok"], false);
        assert_eq!(parsed["error"], "starting mariadb: boom");
        assert_eq!(
            error_document(false, &plain),
            None,
            "no document without --json"
        );

        let printed: anyhow::Error = DocumentPrinted(anyhow::anyhow!("failed: e2e")).into();
        assert_eq!(error_document(true, &printed), None);
        assert_eq!(
            format!("{printed:#}"),
            "failed: e2e",
            "stderr still says it"
        );
    }
}
