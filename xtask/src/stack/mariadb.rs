//! MariaDB, standing in for TiDB's MySQL protocol (migrations run over it,
//! and the TiDB HTTP gateway executes against it).
//!
//! `mariadb-install-db` takes seconds, so an initialised data directory is
//! kept per machine and MariaDB version, and copied for each stack. The
//! database and the application user are (re)created at every start by an
//! `--init-file`, so a kept data directory gets the new password too.

use std::path::Path;
use std::process::Command;

use stack_manifest::MariaDb;

use super::{cached_template, copy_tree, data_dir, Launch, Prepared, Probe};
use crate::install::StackTools;
use crate::project::{self, cache_dir, random_hex};
use crate::ui::Ui;

const DATABASE: &str = "app";
const USER: &str = "app";

pub(super) fn prepare(
    ui: &Ui,
    tools: &StackTools,
    state: &Path,
    port: u16,
) -> anyhow::Result<Prepared<MariaDb>> {
    let version = project::output(Command::new(&tools.mariadbd).arg("--version"))?;
    let version = version
        .split_whitespace()
        .nth(2)
        .unwrap_or("unknown")
        .to_owned();
    let template = cached_template(
        ui,
        "initialise a MariaDB data directory (once)",
        cache_dir().join(format!("mariadb-{version}-datadir")),
        |dir| {
            project::run(
                Command::new(&tools.mariadb_install_db)
                    .arg("--no-defaults")
                    .arg(format!("--datadir={}", dir.display()))
                    .args([
                        "--auth-root-authentication-method=normal",
                        "--skip-test-db",
                        "--skip-name-resolve",
                    ]),
            )
        },
    )?;
    let root = data_dir(state, "mariadb")?;
    let data = root.join("data");
    if !data.join("mysql").is_dir() {
        copy_tree(&template, &data)?;
    }
    let password = random_hex(16);
    let init = root.join("init.sql");
    std::fs::write(&init, init_sql(&password))?;

    let mut command = Command::new(&tools.mariadbd);
    command
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .arg(format!("--socket={}", root.join("mysqld.sock").display()))
        .arg(format!("--pid-file={}", root.join("mysqld.pid").display()))
        .arg(format!("--init-file={}", init.display()))
        .arg(format!("--port={port}"))
        .args([
            "--bind-address=127.0.0.1",
            "--skip-name-resolve",
            "--skip-log-bin",
            // Keep memory small: several stacks may run side by side.
            "--innodb-buffer-pool-size=64M",
            "--innodb-log-file-size=16M",
            // The TiDB gateway stand-in holds one connection per open
            // transaction, and TiDB Cloud has no cap near MariaDB's default
            // 151: `cargo xtask bench --connections 128` on the busy page
            // ran past it (a transaction per connection, waiting on the
            // row lock, plus the ones in flight as a load ends).
            "--max-connections=1000",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_bin",
        ]);
    if crate::install::is_root() {
        command.arg("--user=root");
    }
    Ok(Prepared {
        launch: Launch {
            name: "mariadb",
            command,
            probe: Probe::Tcp(port),
        },
        manifest: MariaDb {
            url: format!("mysql://{USER}:{password}@127.0.0.1:{port}/{DATABASE}"),
            host: "127.0.0.1".into(),
            port,
            database: DATABASE.into(),
            user: USER.into(),
            password,
        },
    })
}

/// Creates the database and a user that may reach it over TCP with
/// `password`, whether or not they exist from an earlier start.
fn init_sql(password: &str) -> String {
    format!(
        "CREATE DATABASE IF NOT EXISTS `{DATABASE}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;\n\
         CREATE USER IF NOT EXISTS '{USER}'@'%' IDENTIFIED BY '{password}';\n\
         ALTER USER '{USER}'@'%' IDENTIFIED BY '{password}';\n\
         GRANT ALL PRIVILEGES ON *.* TO '{USER}'@'%';\n"
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn init_sql_sets_the_password_even_for_an_existing_user() {
        let sql = super::init_sql("abc123");
        assert!(sql.contains("CREATE USER IF NOT EXISTS 'app'@'%' IDENTIFIED BY 'abc123'"));
        assert!(sql.contains("ALTER USER 'app'@'%' IDENTIFIED BY 'abc123'"));
    }
}
