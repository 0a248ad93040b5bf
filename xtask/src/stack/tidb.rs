//! The repository's TiDB HTTP gateway (crates/tidb-gateway) in front of
//! the stack's MariaDB: the endpoint the Worker's TiDB driver talks to
//! locally, with the database's own users and passwords.

use std::path::Path;
use std::process::Command;

use stack_manifest::{MariaDb, Tidb};

use super::{Launch, Prepared, Probe};

pub(super) fn prepare(
    binary: &Path,
    mariadb: &MariaDb,
    port: u16,
    trace_statements: Option<&Path>,
) -> Prepared<Tidb> {
    let mut command = Command::new(binary);
    command
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--mysql", &format!("{}:{}", mariadb.host, mariadb.port)])
        // Below the local Worker's request deadline (3 s): a database that
        // stops answering shows as the gateway's "unreachable" (the Worker's
        // 503 with Retry-After), as TiDB Cloud reports its own outages.
        .args(["--query-timeout-secs", "2"]);
    if let Some(file) = trace_statements {
        command.arg("--trace-statements").arg(file);
    }
    let endpoint = format!("http://127.0.0.1:{port}");
    Prepared {
        launch: Launch {
            name: "tidb",
            command,
            probe: Probe::Tcp(port),
        },
        manifest: Tidb {
            database_url: format!(
                "mysql://{}:{}@{}/{}",
                mariadb.user, mariadb.password, mariadb.host, mariadb.database
            ),
            endpoint,
        },
    }
}
