//! Where and as whom the driver talks to the SQL API: endpoint, credentials,
//! database and the default per-query timeout. Parsed once, then shared.
//!
//! Not for: anything per request (sessions live in `Tx`, parameters in
//! `Statement`).

use std::fmt;
use std::time::Duration;

/// Default for how long one statement may take, request and response
/// together, when neither the statement nor the config says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The database password. Its `Debug` never shows it, and it has no
/// `Display`, so it cannot end up in a log line or an error by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(password: impl Into<String>) -> Self {
        Password(password.into())
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

impl From<&str> for Password {
    fn from(value: &str) -> Self {
        Password::new(value)
    }
}

impl From<String> for Password {
    fn from(value: String) -> Self {
        Password::new(value)
    }
}

/// The isolation levels the SQL API accepts for `BEGIN` (sent in the
/// `TiDB-Isolation-Level` header, as serverless-js's `TxOptions` does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsolationLevel {
    ReadCommitted,
    RepeatableRead,
}

impl IsolationLevel {
    /// The header value, exactly as serverless-js sends it.
    pub fn as_str(self) -> &'static str {
        match self {
            IsolationLevel::ReadCommitted => "READ COMMITTED",
            IsolationLevel::RepeatableRead => "REPEATABLE READ",
        }
    }
}

/// Connection settings for one TiDB Cloud Serverless cluster (or the local
/// gateway standing in for it).
#[derive(Clone, Debug)]
pub struct Config {
    endpoint: String,
    username: String,
    password: Password,
    database: Option<String>,
    timeout: Duration,
}

impl Config {
    /// Settings for the cluster whose MySQL host is `host` (for example
    /// `gateway01.us-west-2.prod.aws.tidbcloud.com`): the SQL API lives at
    /// `https://http-<host>`, as serverless-js derives it.
    pub fn new(host: &str, username: impl Into<String>, password: impl Into<Password>) -> Self {
        Config {
            endpoint: format!("https://http-{host}"),
            username: username.into(),
            password: password.into(),
            database: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Parses a `mysql://user:password@host/database` URL the way
    /// serverless-js's `connect({ url })` does: user, password and database
    /// are percent-decoded, the port is ignored (the HTTP endpoint has its
    /// own), and a missing database means none.
    pub fn from_url(url: &str) -> Result<Self, ConfigError> {
        let (_, rest) = url
            .split_once("://")
            .ok_or_else(|| ConfigError("the URL has no scheme (mysql://...)".into()))?;
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, after) = rest.split_at(authority_end);
        let (userinfo, hostport) = authority
            .rsplit_once('@')
            .ok_or_else(|| ConfigError("the URL has no user@ part".into()))?;
        let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
        let host = match hostport.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            _ => hostport,
        };
        if host.is_empty() {
            return Err(ConfigError("the URL has no host".into()));
        }
        let path = after
            .strip_prefix('/')
            .map(|p| p.split(['?', '#']).next().unwrap_or(""))
            .unwrap_or("");
        let mut config = Config::new(
            host,
            percent_decode(user, "user")?,
            percent_decode(password, "password")?,
        );
        let database = percent_decode(path, "database")?;
        if !database.is_empty() {
            config.database = Some(database);
        }
        Ok(config)
    }

    /// Sends requests to `base` (scheme, host and port, such as
    /// `http://127.0.0.1:4000`) instead of `https://http-<host>`: for the
    /// local gateway.
    pub fn with_endpoint(mut self, base: &str) -> Result<Self, ConfigError> {
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ConfigError(format!(
                "endpoint {base:?} is not an http:// or https:// URL"
            )));
        }
        self.endpoint = base.trim_end_matches('/').to_owned();
        Ok(self)
    }

    /// The database unqualified table names resolve in (`TiDB-Database`).
    pub fn with_database(mut self, database: impl Into<String>) -> Self {
        let database = database.into();
        self.database = (!database.is_empty()).then_some(database);
        self
    }

    /// How long a statement may take unless it sets its own timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn username(&self) -> &str {
        &self.username
    }

    pub fn database(&self) -> Option<&str> {
        self.database.as_deref()
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub(crate) fn password(&self) -> &Password {
        &self.password
    }

    /// `POST` target of every statement.
    pub(crate) fn sql_url(&self) -> String {
        format!("{}/v1beta/sql", self.endpoint)
    }
}

/// A connection URL or endpoint that cannot be used. Never contains the
/// password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid TiDB config: {}", self.0)
    }
}

impl std::error::Error for ConfigError {}

/// `decodeURIComponent`: `%XX` sequences become bytes, which must form
/// UTF-8. The error names the part, never its value (it may be a password).
fn percent_decode(text: &str, part: &str) -> Result<String, ConfigError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let pair = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| ConfigError(format!("bad %-escape in the URL's {part}")))?;
            out.push(pair);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ConfigError(format!("the URL's {part} is not UTF-8")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_gives_host_credentials_and_database_like_serverless_js() {
        let config =
            Config::from_url("mysql://2x.root:p%40ss%3Aw0rd@gateway01.example.com:4000/my%20db")
                .unwrap();
        assert_eq!(config.endpoint(), "https://http-gateway01.example.com");
        assert_eq!(config.username(), "2x.root");
        assert_eq!(config.password().expose(), "p@ss:w0rd");
        assert_eq!(config.database(), Some("my db"));
        assert_eq!(
            config.sql_url(),
            "https://http-gateway01.example.com/v1beta/sql"
        );
    }

    #[test]
    fn a_url_without_database_selects_none() {
        let config = Config::from_url("mysql://u:p@h.example.com").unwrap();
        assert_eq!(config.database(), None);
        let config = Config::from_url("mysql://u:p@h.example.com/?ssl=true").unwrap();
        assert_eq!(config.database(), None);
    }

    #[test]
    fn bad_urls_are_refused_without_echoing_the_password() {
        let err = Config::from_url("mysql://u:se%ZZcret@h/db").unwrap_err();
        assert!(!err.to_string().contains("se%ZZcret"), "{err}");
        assert!(Config::from_url("h.example.com").is_err());
        assert!(Config::from_url("mysql://h.example.com/db").is_err());
    }

    #[test]
    fn the_endpoint_can_point_at_a_local_gateway() {
        let config = Config::new("x", "u", "p")
            .with_endpoint("http://127.0.0.1:4000/")
            .unwrap();
        assert_eq!(config.sql_url(), "http://127.0.0.1:4000/v1beta/sql");
        assert!(Config::new("x", "u", "p")
            .with_endpoint("127.0.0.1:4000")
            .is_err());
    }

    #[test]
    fn debug_never_shows_the_password() {
        let config = Config::new("h", "user", "hunter2-secret").with_database("db");
        let shown = format!("{config:?} {:?}", config.password());
        assert!(!shown.contains("hunter2-secret"), "{shown}");
        assert!(shown.contains("user"));
    }
}
