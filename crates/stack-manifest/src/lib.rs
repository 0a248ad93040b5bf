//! The manifest of a running local stack: every service's URL and local
//! credentials, written as JSON to `<state dir>/stack.json` by
//! `cargo xtask dev` and `cargo xtask test` and read by the end-to-end tests
//! (through `E2E_STACK`) and by anyone scripting against the stack.
//!
//! The credentials are generated per stack and only ever valid on
//! 127.0.0.1; they still live only in the git-ignored state directory.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// File name of the manifest inside the state directory.
pub const FILE_NAME: &str = "stack.json";
/// Environment variable through which tests find the manifest.
pub const ENV_VAR: &str = "E2E_STACK";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StackManifest {
    /// Directory holding every service's data, logs and pid files.
    pub state_dir: PathBuf,
    pub mariadb: MariaDb,
    pub tidb: Tidb,
    pub redis: Redis,
    pub s3: S3,
    pub sentry: Sentry,
    pub prometheus: Prometheus,
    pub loki: Loki,
    pub access: Access,
    /// The API Worker under `wrangler dev`; absent while only the servers run.
    pub api: Option<Api>,
    /// The Pages sites under `wrangler pages dev`, bound to [`Api`]; absent
    /// without the API Worker.
    pub sites: Option<Sites>,
}

/// MariaDB standing in for TiDB's MySQL protocol.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MariaDb {
    /// `mysql://user:password@127.0.0.1:port/database`.
    pub url: String,
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: String,
    pub password: String,
}

/// The repository's TiDB HTTP gateway in front of [`MariaDb`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Tidb {
    /// Base URL of the SQL API (`POST {endpoint}/v1beta/sql`).
    pub endpoint: String,
    /// `mysql://user:password@host/database`, as TiDB Cloud gives it.
    pub database_url: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Redis {
    /// `redis://:password@127.0.0.1:port`.
    pub url: String,
    pub host: String,
    pub port: u16,
    /// The `default` user's password (`AUTH password`), as on Redis Cloud.
    pub password: String,
}

/// An S3 server that checks SigV4, standing in for Backblaze B2.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct S3 {
    /// Endpoint for path-style addressing (`{endpoint}/{bucket}/{key}`).
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// Bugsink, which speaks Sentry's ingestion protocol.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Sentry {
    /// The UI and REST API.
    pub url: String,
    /// The project's DSN, as a Sentry SDK takes it.
    pub dsn: String,
    pub project_id: u64,
    /// Bearer token for Bugsink's REST API (reading events back).
    pub api_token: String,
    /// Login for the web UI.
    pub admin_user: String,
    pub admin_password: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Prometheus {
    /// UI and PromQL API (`/api/v1/query`).
    pub url: String,
    /// Remote write 1.0 receiver.
    pub remote_write_url: String,
}

/// The repository's Loki stand-in.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Loki {
    pub url: String,
    /// `POST` target for log streams.
    pub push_url: String,
    /// Basic auth, as Grafana Cloud's user id and token.
    pub user: String,
    pub password: String,
}

/// The repository's stand-in for the Cloudflare Access team domain.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Access {
    /// The team domain: the tokens' issuer (`iss`).
    pub team_domain: String,
    /// Where the team's keys are published (JWKS).
    pub certs_url: String,
    /// AUD tag of the API's Access application (accepted from anywhere).
    pub aud: String,
    /// AUD tag of the admin site's application (accepted only through the
    /// service binding).
    pub binding_aud: String,
    /// Client id of the one service token the Worker lets in.
    pub service_token_client_id: String,
    /// The team's signing key (PKCS#8 PEM), for tests to make tokens with.
    pub key_file: PathBuf,
    /// The key id the certs endpoint publishes that key under.
    pub kid: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Api {
    /// Where `wrangler dev` serves the API Worker.
    pub url: String,
    /// Browser origins the Worker's CORS allows (its `ALLOWED_ORIGINS`).
    pub allowed_origins: Vec<String>,
    /// The secret the Pages shim presents to prove a request came through
    /// the service binding (the Worker's `BINDING_SECRET`).
    pub binding_secret: String,
    /// The Worker's `REQUEST_DEADLINE_MS`.
    pub request_deadline_ms: u64,
    /// The Worker's variables and secrets, in the dotenv file `wrangler
    /// dev` reads, its compatibility date (wrangler.toml's) and the entry
    /// module `wrangler dev` runs, with its bundle in `build/` beside it:
    /// what it takes to run the same Worker on workerd without wrangler.
    pub env_file: PathBuf,
    pub compatibility_date: String,
    pub entry: PathBuf,
    /// The workerd binary wrangler runs it on.
    pub workerd: PathBuf,
}

/// The Pages sites (`pages-shim/sites/`), each running the shim with the
/// `API` service binding to the stack's Worker.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Sites {
    /// The public site: lists and shows pages.
    pub web: Site,
    /// The admin site: edits pages, uploads files. In production Access
    /// guards it and adds `Cf-Access-Jwt-Assertion` (audience
    /// [`Access::binding_aud`]) to every request; locally nothing does, so
    /// a client sends that header itself.
    pub admin: Site,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Site {
    /// Where `wrangler pages dev` serves it (its browser origin).
    pub url: String,
}

impl StackManifest {
    /// Reads the manifest named by `E2E_STACK`, with an error that says how
    /// to get one when it is missing.
    pub fn from_env() -> Result<Self, String> {
        let path = std::env::var_os(ENV_VAR).ok_or_else(|| {
            format!(
                "{ENV_VAR} is not set: these tests need a running local stack; \
                 run them with `cargo xtask test` (or point {ENV_VAR} at the \
                 stack.json of a `cargo xtask dev`)"
            )
        })?;
        Self::read(Path::new(&path))
    }

    pub fn read(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read stack manifest {}: {e}", path.display()))?;
        serde_json::from_str(&text)
            .map_err(|e| format!("invalid stack manifest {}: {e}", path.display()))
    }

    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let json = serde_json::to_string_pretty(self).expect("manifest serializes");
        std::fs::write(path, json + "\n")
    }
}

/// One statement as the TiDB gateway stand-in served it: a JSON line of
/// the file named by its `--trace-statements` (which `cargo xtask bench
/// --trace-statements` turns on and reads). It says when a statement came
/// and when its answer was ready, which tells a client's time between the
/// statements of a transaction from the database's. Only the statement's
/// kind is kept, never its text or values, and the session only as a hash.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StatementRecord {
    /// When the gateway had the whole request, in microseconds since the
    /// Unix epoch.
    pub received_us: u64,
    /// When its answer was ready to send, on the same clock.
    pub answered_us: u64,
    /// The transaction or stateful session the statement ran in (a hash
    /// of its token; the statement that opens one names the one it
    /// opened); `None` for a statement on its own.
    pub session: Option<String>,
    /// The statement's first keyword in capitals (`BEGIN`, `INSERT`,
    /// `COMMIT`, ...), `SELECT FOR UPDATE` for a locking read, or empty.
    pub statement: String,
}

impl StatementRecord {
    /// The records' clock, microseconds since the Unix epoch: the one a
    /// reader times its own work with to match records to it.
    pub fn clock_us() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64)
    }
}
