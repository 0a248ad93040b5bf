//! `cargo xtask`: the project's one entry point for building, running,
//! testing and deploying. This file only dispatches; each command is a
//! module, and every flag is declared in `flags.rs`.

mod build;
mod dev;
mod flags;
mod install;
mod migrate;
mod project;
mod stack;
mod test;
mod ui;

use clap::Parser;

fn main() {
    let args = flags::Xtask::parse();
    let ui = ui::Ui { json: args.json };
    let result = match &args.command {
        flags::Command::Setup => setup(&ui),
        flags::Command::Build(flags) => build::run(&ui, flags),
        flags::Command::Dev(flags) => dev::run(&ui, flags),
        flags::Command::Test(flags) => test::run(&ui, flags),
    };
    if let Err(e) = result {
        if ui.json {
            println!(
                "{}",
                serde_json::json!({ "ok": false, "error": format!("{e:#}") })
            );
        }
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn setup(ui: &ui::Ui) -> anyhow::Result<()> {
    install::build_tools(ui)?;
    install::stack_tools(ui)?;
    ui.info("every tool is installed");
    Ok(())
}
