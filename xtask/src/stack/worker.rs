//! The API Worker under `wrangler dev` (workerd), configured through an env
//! file that points it at the stack's servers. wrangler runs the local
//! bundle's entry (`build::local_entry`) from the repository root with the
//! root wrangler.toml; its local state and its own
//! logs stay in the stack's state directory, so a test stack and a dev stack
//! never share anything.

use std::fmt::Write as _;
use std::process::Command;

use stack_manifest::{Api, StackManifest};

use super::{Launch, Prepared, Probe};
use crate::install::BuildTools;
use crate::project::{self, random_hex};

/// File name of the Worker's local variables inside the state directory.
pub const DEV_VARS: &str = ".dev.vars";

/// The local Worker's request deadline: short, so the deadline test is
/// quick, and still far above anything the local servers take.
const LOCAL_REQUEST_DEADLINE_MS: u64 = 3000;

pub(super) fn prepare(
    build: &BuildTools,
    stack: &StackManifest,
    port: u16,
    inspector: u16,
    site_origins: &[String],
) -> anyhow::Result<Prepared<Api>> {
    let state = &stack.state_dir;
    let vars = state.join(DEV_VARS);
    let api = Api {
        url: format!("http://127.0.0.1:{port}"),
        // The local Pages sites, as production allows its Pages hostnames
        // (the sites themselves call through the binding; this is for
        // browsers calling the API's own URL).
        allowed_origins: site_origins.to_vec(),
        binding_secret: random_hex(32),
        request_deadline_ms: LOCAL_REQUEST_DEADLINE_MS,
        env_file: vars.clone(),
        compatibility_date: project::ApiWorker::read()?.compatibility_date,
        entry: crate::build::local_entry(),
        workerd: crate::install::workerd()?,
    };
    std::fs::write(&vars, dev_vars(stack, &api))?;
    let mut command = Command::new(&build.wrangler);
    command
        // The local bundle's own entry in place of wrangler.toml's `main`:
        // a `cargo xtask build` while this runs rebuilds the deployed
        // bundle, not this one.
        .args(["dev", "--config", "wrangler.toml"])
        .arg(&api.entry)
        .args(["--ip", "127.0.0.1"])
        .args([
            "--port",
            &port.to_string(),
            "--inspector-port",
            &inspector.to_string(),
        ])
        .arg("--env-file")
        .arg(&vars)
        .arg("--persist-to")
        .arg(state.join("wrangler"))
        .args(["--show-interactive-dev-session=false", "--log-level=info"])
        // `GET /__scheduled` runs the cron handler (missed invalidations,
        // the upload sweep), as the e2e tests and developers trigger it.
        .arg("--test-scheduled")
        .current_dir(project::root());
    // Registers this Worker where the sites' `wrangler pages dev` look for
    // their `API` binding (see sites.rs).
    super::wrangler_env(&mut command, state);
    Ok(Prepared {
        launch: Launch {
            name: "api",
            command,
            probe: Probe::Http(format!("{}/healthz", api.url)),
        },
        manifest: api,
    })
}

/// The Worker's settings for the local servers (names match what
/// production sets as variables and secrets).
pub fn worker_vars(stack: &StackManifest, api: &Api) -> Vec<(&'static str, String)> {
    let allowed_origins = api.allowed_origins.join(",");
    let deadline = api.request_deadline_ms.to_string();
    [
        ("ALLOWED_ORIGINS", allowed_origins.as_str()),
        ("BINDING_SECRET", &api.binding_secret),
        ("REQUEST_DEADLINE_MS", &deadline),
        ("ACCESS_TEAM_DOMAIN", &stack.access.team_domain),
        ("ACCESS_AUD", &stack.access.aud),
        ("ACCESS_BINDING_AUD", &stack.access.binding_aud),
        (
            "ACCESS_SERVICE_TOKENS",
            &stack.access.service_token_client_id,
        ),
        // Above what the suites send from one address (schemathesis sends
        // over a thousand writes), still reachable by the 429 test, which
        // spends a write allowance of its own client address.
        ("RATE_LIMIT_READ", "20000/60s"),
        ("RATE_LIMIT_WRITE", "3000/60s"),
        // Tests rotate keys and must not wait Access's 30 s cooldown.
        ("ACCESS_JWKS_COOLDOWN_SECS", "2"),
        ("TIDB_DATABASE_URL", stack.tidb.database_url.as_str()),
        ("TIDB_HTTP_ENDPOINT", &stack.tidb.endpoint),
        ("REDIS_URL", stack.redis.url.as_str()),
        ("B2_ENDPOINT", &stack.s3.endpoint),
        ("B2_REGION", &stack.s3.region),
        ("B2_BUCKET", &stack.s3.bucket),
        ("B2_KEY_ID", &stack.s3.access_key_id),
        ("B2_APPLICATION_KEY", &stack.s3.secret_access_key),
        ("SENTRY_DSN", &stack.sentry.dsn),
        (
            "PROMETHEUS_REMOTE_WRITE_URL",
            &stack.prometheus.remote_write_url,
        ),
        ("LOKI_PUSH_URL", &stack.loki.push_url),
        ("LOKI_USER", &stack.loki.user),
        ("LOKI_PASSWORD", &stack.loki.password),
    ]
    .into_iter()
    .map(|(name, value): (&'static str, &str)| (name, value.to_owned()))
    .collect()
}

/// [`worker_vars`] in the dotenv format wrangler reads.
pub fn dev_vars(stack: &StackManifest, api: &Api) -> String {
    let mut out =
        String::from("# Written by cargo xtask for the local stack; regenerated at every start.\n");
    for (name, value) in worker_vars(stack, api) {
        let _ = writeln!(
            out,
            "{name}=\"{}\"",
            value.replace('\\', "\\\\").replace('"', "\\\"")
        );
    }
    out
}
