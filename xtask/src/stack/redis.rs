//! Redis, standing in for Redis Cloud: a password on the default user as
//! there, no persistence (it is a cache; it starts empty every time).

use std::path::Path;
use std::process::Command;

use stack_manifest::Redis;

use super::{data_dir, Launch, Prepared, Probe};
use crate::install::StackTools;
use crate::project::random_hex;

pub(super) fn prepare(
    tools: &StackTools,
    state: &Path,
    port: u16,
) -> anyhow::Result<Prepared<Redis>> {
    let dir = data_dir(state, "redis")?;
    let password = random_hex(16);
    // A config file rather than arguments keeps the password out of `ps`.
    let config = dir.join("redis.conf");
    std::fs::write(
        &config,
        format!(
            "port {port}\nbind 127.0.0.1\nprotected-mode yes\ndaemonize no\n\
             save \"\"\nappendonly no\ndir {}\nrequirepass {password}\n",
            dir.display()
        ),
    )?;
    let mut command = Command::new(&tools.redis_server);
    command.arg(&config);
    Ok(Prepared {
        launch: Launch {
            name: "redis",
            command,
            probe: Probe::Tcp(port),
        },
        manifest: Redis {
            url: format!("redis://:{password}@127.0.0.1:{port}"),
            host: "127.0.0.1".into(),
            port,
            password,
        },
    })
}
