//! The Worker's configuration: wrangler vars and secrets, parsed once into
//! one typed struct. Parsing never fails as a whole: every missing or
//! malformed value becomes a [`ConfigIssue`] naming it, the rest still
//! loads, and `/readyz` reports the issues (a missing secret must never
//! take the Worker down or panic).

use axum::http::HeaderValue;
use serde::Serialize;

/// Deployment environments, as named in wrangler.toml.
pub const ENVIRONMENTS: [&str; 4] = ["dev", "rc", "stg", "prd"];

/// Default for `REQUEST_DEADLINE_MS`: well under what a browser or the
/// Pages shim waits, so the client gets a 504 problem, not a dropped
/// connection.
pub const DEFAULT_REQUEST_DEADLINE_MS: u64 = 10_000;

#[derive(Clone)]
pub struct Config {
    /// `ENVIRONMENT`: dev, rc, stg or prd.
    pub environment: String,
    /// `ALLOWED_ORIGINS`: comma-separated browser origins allowed by CORS.
    pub allowed_origins: Vec<HeaderValue>,
    /// Cloudflare Access for admin routes; `None` when not configured
    /// (admin routes then answer 503 and `/readyz` says why).
    pub access: Option<AccessConfig>,
    /// `BINDING_SECRET` (secret): proves a request came through the Pages
    /// shim's service binding. `None` when not set: no request is then
    /// treated as coming through the binding.
    pub binding_secret: Option<String>,
    /// `REQUEST_DEADLINE_MS`: the most a request may take before it is
    /// answered with a 504 problem.
    pub request_deadline_ms: u64,
    /// `TIDB_DATABASE_URL` (secret, `mysql://user:password@host/database`
    /// as TiDB Cloud gives it) and, locally, `TIDB_HTTP_ENDPOINT` (the
    /// gateway's address instead of `https://http-<host>`).
    pub tidb: Option<tidb_http::Config>,
    /// `REDIS_URL` (secret): `redis://` or, with TLS, `rediss://`.
    pub redis: Option<RedisTarget>,
    /// `RATE_LIMIT_READ` and `RATE_LIMIT_WRITE` (`N/Ts`: N requests per T
    /// seconds per client, bursts of N), and `RATE_LIMIT_POLICY`
    /// (`fail-open` or `fail-closed`: what happens while Redis is down).
    pub rate_limits: RateLimits,
    /// `CACHE_TTL_SECS`: how long a cached page lives (±10 %); 0 turns
    /// the page cache off (reads go to TiDB, writes still invalidate).
    pub cache_ttl_secs: u64,
    /// `B2_ENDPOINT`, `B2_REGION`, `B2_BUCKET`, `B2_KEY_ID` and
    /// `B2_APPLICATION_KEY` (secret).
    pub b2: Option<b2::Config>,
    /// What uploads may be and how long their URLs and rows live.
    pub uploads: Uploads,
    /// Where errors, metrics and logs go; each sink is optional.
    pub telemetry: TelemetryConfig,
}

/// `SENTRY_DSN` (secret); `PROMETHEUS_REMOTE_WRITE_URL` with
/// `PROMETHEUS_USER` and `PROMETHEUS_PASSWORD` (secret); `LOKI_PUSH_URL`
/// with `LOKI_USER` and `LOKI_PASSWORD` (secret). Grafana Cloud's user is
/// the stack's numeric id, the password an access token.
#[derive(Debug, Clone, Default)]
pub struct TelemetryConfig {
    pub sentry_dsn: Option<String>,
    pub metrics: Option<SinkTarget>,
    pub logs: Option<SinkTarget>,
}

/// An HTTP endpoint with optional Basic credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct SinkTarget {
    pub url: String,
    pub user: Option<String>,
    pub password: Option<String>,
}

impl SinkTarget {
    /// The `Authorization` header value, when credentials are set.
    pub fn authorization(&self) -> Option<String> {
        use base64::Engine;
        let user = self.user.as_deref()?;
        let password = self.password.as_deref().unwrap_or_default();
        Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        ))
    }
}

impl std::fmt::Debug for SinkTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkTarget")
            .field("url", &self.url)
            .field("credentials", &self.user.as_ref().map(|_| "<set>"))
            .finish()
    }
}

/// `UPLOAD_CONTENT_TYPES` (comma-separated media types), `UPLOAD_MAX_BYTES`,
/// `UPLOAD_URL_TTL_SECS` (how long a presigned upload URL is valid) and
/// `UPLOAD_ABANDON_AFTER_SECS` (when the cron sweeps a pending upload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploads {
    pub content_types: Vec<String>,
    pub max_bytes: u64,
    pub url_ttl_secs: u64,
    pub abandon_after_secs: u64,
}

/// Types accepted unless `UPLOAD_CONTENT_TYPES` says otherwise: images
/// browsers show and documents; no HTML or SVG (script on our links).
pub const DEFAULT_UPLOAD_CONTENT_TYPES: [&str; 6] = [
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/pdf",
    "text/plain",
];

/// The longest `UPLOAD_URL_TTL_SECS` allowed.
pub const MAX_UPLOAD_URL_TTL_SECS: u64 = 1800;

/// S3's (and B2's) largest single `PUT`: 5 GiB.
pub const MAX_UPLOAD_BYTES: u64 = 5 * 1024 * 1024 * 1024;

/// The shortest `UPLOAD_ABANDON_AFTER_SECS` allowed at all: an hour.
pub const MIN_UPLOAD_ABANDON_AFTER_SECS: u64 = 3600;

/// The slowest upload the sweep waits for: 256 KiB/s, about a slow mobile
/// uplink. A 5 GiB file takes 5.7 hours at it.
pub const SLOWEST_UPLOAD_BYTES_PER_SEC: u64 = 256 * 1024;

impl Uploads {
    /// The shortest `UPLOAD_ABANDON_AFTER_SECS` that sweeps no upload still
    /// arriving: its URL's life, then the largest file at
    /// [`SLOWEST_UPLOAD_BYTES_PER_SEC`], and never under
    /// [`MIN_UPLOAD_ABANDON_AFTER_SECS`].
    pub fn least_abandon_after_secs(&self) -> u64 {
        (self.url_ttl_secs + self.max_bytes.div_ceil(SLOWEST_UPLOAD_BYTES_PER_SEC))
            .max(MIN_UPLOAD_ABANDON_AFTER_SECS)
    }
}

impl Default for Uploads {
    fn default() -> Self {
        Uploads {
            content_types: DEFAULT_UPLOAD_CONTENT_TYPES.map(str::to_owned).to_vec(),
            max_bytes: 25 * 1024 * 1024,
            url_ttl_secs: 600,
            abandon_after_secs: 24 * 3600,
        }
    }
}

/// Rate limits per route class.
#[derive(Debug, Clone, Copy)]
pub struct RateLimits {
    pub read: ratelimit::Limit,
    pub write: ratelimit::Limit,
    pub policy: ratelimit::Policy,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            read: per_minute(600),
            write: per_minute(60),
            policy: ratelimit::Policy::FailOpen,
        }
    }
}

const fn per_minute(n: u32) -> ratelimit::Limit {
    ratelimit::Limit {
        rate: n,
        period: std::time::Duration::from_secs(60),
        burst: n,
    }
}

/// Where Redis is and how to log in.
#[derive(Clone)]
pub struct RedisTarget {
    pub host: String,
    pub port: u16,
    pub tls: bool,
    pub options: resp::Options,
}

impl std::fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTarget")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("environment", &self.environment)
            .field("allowed_origins", &self.allowed_origins)
            .field("access", &self.access)
            .field(
                "binding_secret",
                &self.binding_secret.as_ref().map(|_| "<set>"),
            )
            .field("request_deadline_ms", &self.request_deadline_ms)
            .field("tidb", &self.tidb)
            .field("redis", &self.redis)
            .field("rate_limits", &self.rate_limits)
            .field("cache_ttl_secs", &self.cache_ttl_secs)
            .field("uploads", &self.uploads)
            .field("telemetry", &self.telemetry.metrics)
            .field("logs", &self.telemetry.logs)
            .field(
                "sentry",
                &self.telemetry.sentry_dsn.as_ref().map(|_| "<set>"),
            )
            .field(
                "b2",
                &self
                    .b2
                    .as_ref()
                    .map(|b| (&b.endpoint, &b.region, &b.bucket)),
            )
            .finish()
    }
}

/// Cloudflare Access settings.
#[derive(Debug, Clone)]
pub struct AccessConfig {
    /// `ACCESS_TEAM_DOMAIN`, `ACCESS_AUD`, `ACCESS_BINDING_AUD` and
    /// `ACCESS_SERVICE_TOKENS`.
    pub policy: access::AccessPolicy,
    /// `ACCESS_JWKS_COOLDOWN_SECS` and the fixed cache settings.
    pub cache: access::CacheSettings,
}

/// A value that is missing or malformed: which, and what is wrong with it.
/// Never carries the value itself (it may be a secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ConfigIssue {
    /// The variable or secret name.
    pub name: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

impl Config {
    /// Reads every setting through `get` (wrangler var or secret by name).
    pub fn load(get: impl Fn(&str) -> Option<String>) -> (Config, Vec<ConfigIssue>) {
        let mut issues = Vec::new();
        let environment = match get("ENVIRONMENT") {
            Some(env) if ENVIRONMENTS.contains(&env.as_str()) => env,
            Some(_) => {
                issues.push(ConfigIssue {
                    name: "ENVIRONMENT",
                    problem: format!("must be one of {}", ENVIRONMENTS.join(", ")),
                });
                "dev".to_owned()
            }
            None => {
                issues.push(ConfigIssue {
                    name: "ENVIRONMENT",
                    problem: "is not set".into(),
                });
                "dev".to_owned()
            }
        };
        let allowed_origins = match get("ALLOWED_ORIGINS") {
            None => {
                issues.push(ConfigIssue {
                    name: "ALLOWED_ORIGINS",
                    problem: "is not set (comma-separated origins, e.g. https://www.example.com)"
                        .into(),
                });
                Vec::new()
            }
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|o| !o.is_empty())
                .filter_map(|origin| match parse_origin(origin, &environment) {
                    Ok(value) => Some(value),
                    Err(problem) => {
                        issues.push(ConfigIssue {
                            name: "ALLOWED_ORIGINS",
                            problem: format!("{origin:?} {problem}"),
                        });
                        None
                    }
                })
                .collect(),
        };
        let access = load_access(&get, &environment, &mut issues);
        let binding_secret = match get("BINDING_SECRET") {
            Some(secret) if secret.len() >= 32 => Some(secret),
            Some(_) => {
                issues.push(ConfigIssue {
                    name: "BINDING_SECRET",
                    problem: "is too short (at least 32 characters)".into(),
                });
                None
            }
            None => {
                issues.push(ConfigIssue {
                    name: "BINDING_SECRET",
                    problem: "is not set (secret shared with the Pages shim)".into(),
                });
                None
            }
        };
        let request_deadline_ms = parse_number(
            &get,
            "REQUEST_DEADLINE_MS",
            100..=30_000,
            DEFAULT_REQUEST_DEADLINE_MS,
            &mut issues,
        );
        let tidb = load_tidb(&get, &environment, &mut issues);
        let redis = match get("REDIS_URL").map(|url| parse_redis_url(&url)) {
            Some(Ok(target)) => Some(target),
            Some(Err(problem)) => {
                issues.push(ConfigIssue {
                    name: "REDIS_URL",
                    problem: problem.into(),
                });
                None
            }
            None => {
                issues.push(ConfigIssue {
                    name: "REDIS_URL",
                    problem: "is not set (redis:// or rediss://user:password@host:port)".into(),
                });
                None
            }
        };
        let defaults = RateLimits::default();
        let rate_limits = RateLimits {
            read: parse_limit(&get, "RATE_LIMIT_READ", defaults.read, &mut issues),
            write: parse_limit(&get, "RATE_LIMIT_WRITE", defaults.write, &mut issues),
            policy: match get("RATE_LIMIT_POLICY").map(|p| p.parse::<ratelimit::Policy>()) {
                None => defaults.policy,
                Some(Ok(policy)) => policy,
                Some(Err(_)) => {
                    issues.push(ConfigIssue {
                        name: "RATE_LIMIT_POLICY",
                        problem: "must be fail-open or fail-closed".into(),
                    });
                    defaults.policy
                }
            },
        };
        let cache_ttl_secs = parse_number(&get, "CACHE_TTL_SECS", 0..=86_400, 300, &mut issues);
        let b2 = load_b2(&get, &environment, &mut issues);
        let uploads = load_uploads(&get, &mut issues);
        let telemetry = load_telemetry(&get, &mut issues);
        (
            Config {
                environment,
                allowed_origins,
                access,
                binding_secret,
                request_deadline_ms,
                tidb,
                redis,
                rate_limits,
                cache_ttl_secs,
                b2,
                uploads,
                telemetry,
            },
            issues,
        )
    }
}

fn load_tidb(
    get: &impl Fn(&str) -> Option<String>,
    environment: &str,
    issues: &mut Vec<ConfigIssue>,
) -> Option<tidb_http::Config> {
    let Some(url) = get("TIDB_DATABASE_URL") else {
        issues.push(ConfigIssue {
            name: "TIDB_DATABASE_URL",
            problem: "is not set (mysql://user:password@host/database)".into(),
        });
        return None;
    };
    let config = match tidb_http::Config::from_url(&url) {
        Ok(config) => config,
        Err(_) => {
            issues.push(ConfigIssue {
                name: "TIDB_DATABASE_URL",
                problem: "is not a mysql://user:password@host/database URL".into(),
            });
            return None;
        }
    };
    match get("TIDB_HTTP_ENDPOINT") {
        None => Some(config),
        Some(endpoint) => {
            let checked = parse_origin(endpoint.trim(), environment)
                .map_err(str::to_owned)
                .and_then(|_| {
                    config
                        .with_endpoint(endpoint.trim())
                        .map_err(|e| e.to_string())
                });
            match checked {
                Ok(config) => Some(config),
                Err(problem) => {
                    issues.push(ConfigIssue {
                        name: "TIDB_HTTP_ENDPOINT",
                        problem,
                    });
                    None
                }
            }
        }
    }
}

/// `redis://[user][:password]@host[:port][/db]`; `rediss://` for TLS (Redis
/// Cloud). Errors never include the URL: it holds the password.
fn parse_redis_url(raw: &str) -> Result<RedisTarget, &'static str> {
    let url = url::Url::parse(raw).map_err(|_| "is not a URL (redis://user:password@host:port)")?;
    let tls = match url.scheme() {
        "redis" => false,
        "rediss" => true,
        _ => return Err("must start with redis:// or rediss://"),
    };
    let host = url.host_str().ok_or("has no host")?.to_owned();
    let decode = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let username = Some(decode(url.username())).filter(|u| !u.is_empty());
    let password = url.password().map(decode);
    let database = match url.path().trim_start_matches('/') {
        "" => 0,
        db => db
            .parse()
            .map_err(|_| "has a database that is not a number")?,
    };
    Ok(RedisTarget {
        host,
        port: url.port().unwrap_or(6379),
        tls,
        options: resp::Options {
            username,
            password,
            database,
            client_name: Some("edge-api".into()),
            ..resp::Options::default()
        },
    })
}

/// Access needs the team domain and at least one audience; the rest is
/// optional.
fn load_access(
    get: &impl Fn(&str) -> Option<String>,
    environment: &str,
    issues: &mut Vec<ConfigIssue>,
) -> Option<AccessConfig> {
    let team_domain = match get("ACCESS_TEAM_DOMAIN") {
        None => {
            issues.push(ConfigIssue {
                name: "ACCESS_TEAM_DOMAIN",
                problem: "is not set (e.g. https://<team>.cloudflareaccess.com)".into(),
            });
            None
        }
        Some(domain) => match parse_origin(domain.trim(), environment) {
            Ok(_) => Some(domain.trim().to_owned()),
            Err(problem) => {
                issues.push(ConfigIssue {
                    name: "ACCESS_TEAM_DOMAIN",
                    problem: problem.to_owned(),
                });
                None
            }
        },
    };
    // Empty where no Access application covers the API's own hostname
    // (prd, where only the admin site is behind Access): its tokens are
    // then let in through the service binding only.
    let audiences = list(get("ACCESS_AUD"));
    let binding_audiences = list(get("ACCESS_BINDING_AUD"));
    let no_audience = audiences.is_empty() && binding_audiences.is_empty();
    if no_audience {
        issues.push(ConfigIssue {
            name: "ACCESS_AUD",
            problem: "is not set, nor is ACCESS_BINDING_AUD (the AUD tags of the Access \
                      applications whose tokens admin routes let in)"
                .into(),
        });
    }
    let cooldown_secs = parse_number(
        get,
        "ACCESS_JWKS_COOLDOWN_SECS",
        0..=3600,
        access::CacheSettings::default().cooldown_secs,
        issues,
    );
    if no_audience {
        return None;
    }
    Some(AccessConfig {
        policy: access::AccessPolicy {
            team_domain: team_domain?,
            audiences,
            binding_audiences,
            service_tokens: list(get("ACCESS_SERVICE_TOKENS")),
            leeway_secs: access::DEFAULT_LEEWAY_SECS,
        },
        cache: access::CacheSettings {
            cooldown_secs,
            ..access::CacheSettings::default()
        },
    })
}

/// Backblaze B2: all five settings, or an issue for each one missing.
fn load_b2(
    get: &impl Fn(&str) -> Option<String>,
    environment: &str,
    issues: &mut Vec<ConfigIssue>,
) -> Option<b2::Config> {
    let mut required = |name: &'static str, what: &str| {
        let value = get(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty());
        if value.is_none() {
            issues.push(ConfigIssue {
                name,
                problem: format!("is not set ({what})"),
            });
        }
        value
    };
    let endpoint = required("B2_ENDPOINT", "e.g. https://s3.us-west-004.backblazeb2.com");
    let region = required("B2_REGION", "e.g. us-west-004");
    let bucket = required("B2_BUCKET", "the bucket uploads go to");
    let key_id = required("B2_KEY_ID", "application key id");
    let application_key = required("B2_APPLICATION_KEY", "secret");
    let endpoint = endpoint?;
    if let Err(problem) = parse_origin(&endpoint, environment) {
        issues.push(ConfigIssue {
            name: "B2_ENDPOINT",
            problem: problem.to_owned(),
        });
        return None;
    }
    let bucket = bucket?;
    if bucket.contains(['/', '?', '#']) {
        issues.push(ConfigIssue {
            name: "B2_BUCKET",
            problem: "is not a bucket name (no /, ? or #)".into(),
        });
        return None;
    }
    Some(b2::Config {
        endpoint,
        region: region?,
        bucket,
        credentials: b2::Credentials::new(key_id?, application_key?),
    })
}

fn load_uploads(get: &impl Fn(&str) -> Option<String>, issues: &mut Vec<ConfigIssue>) -> Uploads {
    let defaults = Uploads::default();
    let content_types = match get("UPLOAD_CONTENT_TYPES") {
        None => defaults.content_types,
        Some(value) => {
            let types: Vec<String> = list(Some(value))
                .into_iter()
                .map(|t| t.to_ascii_lowercase())
                .collect();
            if types.is_empty() || !types.iter().all(|t| is_media_type(t)) {
                issues.push(ConfigIssue {
                    name: "UPLOAD_CONTENT_TYPES",
                    problem: "must be comma-separated media types such as image/png".into(),
                });
                defaults.content_types
            } else {
                types
            }
        }
    };
    let mut uploads = Uploads {
        content_types,
        max_bytes: parse_number(
            get,
            "UPLOAD_MAX_BYTES",
            1..=MAX_UPLOAD_BYTES,
            defaults.max_bytes,
            issues,
        ),
        // SigV4 allows a week; an upload URL is handed to one browser for
        // one file and should not outlive the session that asked for it.
        url_ttl_secs: parse_number(
            get,
            "UPLOAD_URL_TTL_SECS",
            60..=MAX_UPLOAD_URL_TTL_SECS,
            defaults.url_ttl_secs,
            issues,
        ),
        abandon_after_secs: parse_number(
            get,
            "UPLOAD_ABANDON_AFTER_SECS",
            MIN_UPLOAD_ABANDON_AFTER_SECS..=30 * 24 * 3600,
            defaults.abandon_after_secs,
            issues,
        ),
    };
    // A presigned PUT is checked when it starts, and may go on sending
    // long after its URL expired. An upload swept while still under way
    // would land after its row is gone, an object nothing ever deletes.
    let least = uploads.least_abandon_after_secs();
    if uploads.abandon_after_secs < least {
        issues.push(ConfigIssue {
            name: "UPLOAD_ABANDON_AFTER_SECS",
            problem: format!(
                "must leave the largest upload (UPLOAD_MAX_BYTES) time to arrive after its URL \
                 expires (UPLOAD_URL_TTL_SECS), at {} KiB/s: at least {least} with these settings",
                SLOWEST_UPLOAD_BYTES_PER_SEC / 1024
            ),
        });
        uploads.abandon_after_secs = least;
    }
    uploads
}

fn load_telemetry(
    get: &impl Fn(&str) -> Option<String>,
    issues: &mut Vec<ConfigIssue>,
) -> TelemetryConfig {
    let sentry_dsn = get("SENTRY_DSN").filter(|d| !d.trim().is_empty());
    let sentry_dsn = match sentry_dsn {
        Some(dsn) if sentry_report::Reporter::new(&dsn, "", "").is_err() => {
            issues.push(ConfigIssue {
                name: "SENTRY_DSN",
                problem: "is not a Sentry DSN (https://KEY@HOST/PROJECT)".into(),
            });
            None
        }
        other => other,
    };
    let mut target = |url: &'static str, user: &str, password: &str| {
        let value = get(url).filter(|u| !u.trim().is_empty())?;
        let parsed = url::Url::parse(value.trim()).ok();
        if !parsed.is_some_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host()) {
            issues.push(ConfigIssue {
                name: url,
                problem: "must be an http(s) URL".into(),
            });
            return None;
        }
        Some(SinkTarget {
            url: value.trim().to_owned(),
            user: get(user).filter(|u| !u.is_empty()),
            password: get(password).filter(|p| !p.is_empty()),
        })
    };
    let metrics = target(
        "PROMETHEUS_REMOTE_WRITE_URL",
        "PROMETHEUS_USER",
        "PROMETHEUS_PASSWORD",
    );
    let logs = target("LOKI_PUSH_URL", "LOKI_USER", "LOKI_PASSWORD");
    TelemetryConfig {
        sentry_dsn,
        metrics,
        logs,
    }
}

/// `type/subtype` in RFC 9110 token characters, no parameters.
fn is_media_type(text: &str) -> bool {
    let token = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    text.split_once('/')
        .is_some_and(|(kind, sub)| token(kind) && token(sub))
}

/// `N/Ts`: N requests per T seconds, in bursts of up to N.
fn parse_limit(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: ratelimit::Limit,
    issues: &mut Vec<ConfigIssue>,
) -> ratelimit::Limit {
    let Some(value) = get(name) else {
        return default;
    };
    let parsed = value.trim().split_once('/').and_then(|(n, period)| {
        let n: u32 = n.trim().parse().ok().filter(|n| *n > 0)?;
        let secs: u64 = period
            .trim()
            .strip_suffix('s')?
            .parse()
            .ok()
            .filter(|s| *s > 0)?;
        Some(ratelimit::Limit {
            rate: n,
            period: std::time::Duration::from_secs(secs),
            burst: n,
        })
    });
    parsed.unwrap_or_else(|| {
        issues.push(ConfigIssue {
            name,
            problem: "must look like 600/60s (requests per seconds)".into(),
        });
        default
    })
}

/// A comma-separated list, blanks dropped.
fn list(value: Option<String>) -> Vec<String> {
    value
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

/// An optional whole number within `range`, else `default` (and an issue
/// when it was set but wrong).
fn parse_number(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    range: std::ops::RangeInclusive<u64>,
    default: u64,
    issues: &mut Vec<ConfigIssue>,
) -> u64 {
    match get(name).map(|v| v.trim().parse::<u64>()) {
        None => default,
        Some(Ok(n)) if range.contains(&n) => n,
        Some(_) => {
            issues.push(ConfigIssue {
                name,
                problem: format!(
                    "must be a whole number from {} to {}",
                    range.start(),
                    range.end()
                ),
            });
            default
        }
    }
}

/// An origin as browsers send it: `scheme://host[:port]`, nothing more.
/// Plain http is accepted only for loopback hosts in `dev`.
fn parse_origin(origin: &str, environment: &str) -> Result<HeaderValue, &'static str> {
    let (scheme, rest) = origin
        .split_once("://")
        .ok_or("is not an origin (scheme://host)")?;
    if rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
        return Err("must be scheme://host[:port] without path, query or trailing slash");
    }
    let host = rest.rsplit_once(':').map_or(rest, |(h, _)| h);
    let loopback = host == "localhost" || host == "127.0.0.1" || host == "[::1]";
    match scheme {
        "https" => {}
        "http" if loopback && environment == "dev" => {}
        "http" => return Err("must use https (http only for loopback in dev)"),
        _ => return Err("must use https"),
    }
    HeaderValue::from_str(origin).map_err(|_| "is not a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(vars: &[(&str, &str)]) -> (Config, Vec<ConfigIssue>) {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load(|name| vars.get(name).cloned())
    }

    const COMPLETE: [(&str, &str); 12] = [
        ("ENVIRONMENT", "rc"),
        (
            "ALLOWED_ORIGINS",
            "https://www.rc.example.com, https://admin.rc.example.com",
        ),
        ("ACCESS_TEAM_DOMAIN", "https://team.cloudflareaccess.com"),
        ("ACCESS_AUD", "aud-api, aud-api-2"),
        ("BINDING_SECRET", "0123456789abcdef0123456789abcdef"),
        (
            "TIDB_DATABASE_URL",
            "mysql://u.root:tidb-s3cret@gateway01.aws.tidbcloud.com:4000/app",
        ),
        (
            "REDIS_URL",
            "rediss://default:redis-s3cret@redis-1.cloud.redislabs.com:16379",
        ),
        ("B2_ENDPOINT", "https://s3.us-west-004.backblazeb2.com"),
        ("B2_REGION", "us-west-004"),
        ("B2_BUCKET", "files"),
        ("B2_KEY_ID", "004key"),
        ("B2_APPLICATION_KEY", "b2-s3cret"),
    ];

    #[test]
    fn a_complete_configuration_has_no_issues() {
        let (config, issues) = load(&COMPLETE);
        assert!(issues.is_empty(), "{issues:?}");
        assert_eq!(config.environment, "rc");
        assert_eq!(config.allowed_origins.len(), 2);
        assert_eq!(config.allowed_origins[1], "https://admin.rc.example.com");
        let access = config.access.expect("access configured");
        assert_eq!(access.policy.audiences, ["aud-api", "aud-api-2"]);
        assert!(access.policy.binding_audiences.is_empty());
        assert_eq!(access.cache.cooldown_secs, 30);
        assert_eq!(config.request_deadline_ms, DEFAULT_REQUEST_DEADLINE_MS);
    }

    #[test]
    fn telemetry_sinks_are_optional_and_checked_without_echoing_secrets() {
        let (config, _) = load(&COMPLETE);
        assert!(config.telemetry.sentry_dsn.is_none());
        assert!(config.telemetry.metrics.is_none() && config.telemetry.logs.is_none());
        let mut vars = COMPLETE.to_vec();
        vars.extend([
            ("SENTRY_DSN", "https://pub@o1.ingest.sentry.io/42"),
            (
                "PROMETHEUS_REMOTE_WRITE_URL",
                "https://prom.grafana.net/api/prom/push",
            ),
            ("PROMETHEUS_USER", "123"),
            ("PROMETHEUS_PASSWORD", "glc-s3cret"),
            ("LOKI_PUSH_URL", "https://logs.grafana.net/loki/api/v1/push"),
        ]);
        let (config, issues) = load(&vars);
        assert!(issues.is_empty(), "{issues:?}");
        let metrics = config.telemetry.metrics.clone().unwrap();
        assert_eq!(
            metrics.authorization().unwrap(),
            "Basic MTIzOmdsYy1zM2NyZXQ="
        );
        assert!(config
            .telemetry
            .logs
            .as_ref()
            .unwrap()
            .authorization()
            .is_none());
        assert!(!format!("{config:?}").contains("s3cret"));
        let mut vars = COMPLETE.to_vec();
        vars.extend([
            ("SENTRY_DSN", "s3cret-not-a-dsn"),
            ("LOKI_PUSH_URL", "ftp://s3cret@logs"),
        ]);
        let (_, issues) = load(&vars);
        let names: Vec<_> = issues.iter().map(|i| i.name).collect();
        assert_eq!(names, ["SENTRY_DSN", "LOKI_PUSH_URL"]);
        assert!(!format!("{issues:?}").contains("s3cret"));
    }

    #[test]
    fn upload_limits_have_defaults_and_are_checked() {
        let (config, _) = load(&COMPLETE);
        assert_eq!(config.uploads, Uploads::default());
        let mut vars = COMPLETE.to_vec();
        vars.extend([
            ("UPLOAD_CONTENT_TYPES", "Image/PNG, application/zip"),
            ("UPLOAD_MAX_BYTES", "1048576"),
            ("UPLOAD_URL_TTL_SECS", "120"),
        ]);
        let (config, issues) = load(&vars);
        assert!(issues.is_empty(), "{issues:?}");
        assert_eq!(
            config.uploads.content_types,
            ["image/png", "application/zip"]
        );
        assert_eq!(config.uploads.max_bytes, 1_048_576);
        assert_eq!(config.uploads.url_ttl_secs, 120);
        let mut vars = COMPLETE.to_vec();
        vars.extend([
            ("UPLOAD_CONTENT_TYPES", "image/png; charset=x, pdf"),
            ("UPLOAD_MAX_BYTES", "0"),
            ("UPLOAD_URL_TTL_SECS", "86400"),
            ("UPLOAD_ABANDON_AFTER_SECS", "60"),
        ]);
        let (config, issues) = load(&vars);
        let names: Vec<_> = issues.iter().map(|i| i.name).collect();
        assert_eq!(
            names,
            [
                "UPLOAD_CONTENT_TYPES",
                "UPLOAD_MAX_BYTES",
                "UPLOAD_URL_TTL_SECS",
                "UPLOAD_ABANDON_AFTER_SECS"
            ]
        );
        assert_eq!(config.uploads, Uploads::default());
    }

    #[test]
    fn pending_uploads_are_not_swept_before_the_largest_could_have_arrived() {
        // The defaults, and the largest uploads under them, leave room.
        let (config, issues) = load(&COMPLETE);
        assert_eq!(issues, []);
        assert_eq!(config.uploads.least_abandon_after_secs(), 3600);
        let mut vars = COMPLETE.to_vec();
        vars.extend([
            ("UPLOAD_MAX_BYTES", "5368709120"),
            ("UPLOAD_URL_TTL_SECS", "1800"),
        ]);
        let (config, issues) = load(&vars);
        assert_eq!(issues, []);
        // 1800 s of URL, then 5 GiB at 256 KiB/s.
        assert_eq!(config.uploads.least_abandon_after_secs(), 1800 + 20_480);
        assert_eq!(config.uploads.abandon_after_secs, 86_400);

        // An hour is enough for 25 MiB, not for 5 GiB: said, and the
        // sweep waits as long as it must.
        let mut vars = COMPLETE.to_vec();
        vars.push(("UPLOAD_ABANDON_AFTER_SECS", "3600"));
        let (config, issues) = load(&vars);
        assert_eq!(issues, []);
        assert_eq!(config.uploads.abandon_after_secs, 3600);
        vars.extend([
            ("UPLOAD_MAX_BYTES", "5368709120"),
            ("UPLOAD_URL_TTL_SECS", "1800"),
        ]);
        let (config, issues) = load(&vars);
        assert_eq!(
            issues,
            [ConfigIssue {
                name: "UPLOAD_ABANDON_AFTER_SECS",
                problem: "must leave the largest upload (UPLOAD_MAX_BYTES) time to arrive after \
                          its URL expires (UPLOAD_URL_TTL_SECS), at 256 KiB/s: at least 22280 \
                          with these settings"
                    .into(),
            }]
        );
        assert_eq!(config.uploads.abandon_after_secs, 22_280);
    }

    #[test]
    fn the_page_cache_can_be_turned_off_but_not_set_to_nonsense() {
        let mut vars = COMPLETE.to_vec();
        vars.push(("CACHE_TTL_SECS", "0"));
        let (config, issues) = load(&vars);
        assert!(issues.is_empty(), "{issues:?}");
        assert_eq!(config.cache_ttl_secs, 0);
        for bad in ["-1", "86401", "5m"] {
            let mut vars = COMPLETE.to_vec();
            vars.push(("CACHE_TTL_SECS", bad));
            let (config, issues) = load(&vars);
            assert_eq!(issues.len(), 1, "{bad}: {issues:?}");
            assert_eq!(issues[0].name, "CACHE_TTL_SECS");
            assert_eq!(
                config.cache_ttl_secs, 300,
                "{bad} falls back to the default"
            );
        }
    }

    #[test]
    fn optional_settings_are_checked_when_set() {
        let mut vars = COMPLETE.to_vec();
        vars.extend([
            ("REQUEST_DEADLINE_MS", "5"),
            ("ACCESS_JWKS_COOLDOWN_SECS", "soon"),
            ("ACCESS_SERVICE_TOKENS", "ci.access, health.access"),
        ]);
        let (config, issues) = load(&vars);
        let names: Vec<_> = issues.iter().map(|i| i.name).collect();
        assert_eq!(names, ["ACCESS_JWKS_COOLDOWN_SECS", "REQUEST_DEADLINE_MS"]);
        assert_eq!(config.request_deadline_ms, DEFAULT_REQUEST_DEADLINE_MS);
        let access = config.access.unwrap();
        assert_eq!(access.policy.service_tokens, ["ci.access", "health.access"]);
    }

    #[test]
    fn dependency_urls_are_parsed() {
        let (config, _) = load(&COMPLETE);
        let tidb = config.tidb.unwrap();
        assert_eq!(tidb.endpoint(), "https://http-gateway01.aws.tidbcloud.com");
        assert_eq!(tidb.database(), Some("app"));
        let redis = config.redis.unwrap();
        assert_eq!(
            (redis.host.as_str(), redis.port, redis.tls),
            ("redis-1.cloud.redislabs.com", 16379, true)
        );
        assert_eq!(redis.options.password.as_deref(), Some("redis-s3cret"));

        let mut local = COMPLETE.to_vec();
        local[0] = ("ENVIRONMENT", "dev");
        local.push(("TIDB_HTTP_ENDPOINT", "http://127.0.0.1:4100"));
        local.push(("REDIS_URL", "redis://:p%40ss@127.0.0.1:6390/2"));
        let (config, issues) = load(&local);
        assert!(issues.is_empty(), "{issues:?}");
        assert_eq!(config.tidb.unwrap().endpoint(), "http://127.0.0.1:4100");
        let redis = config.redis.unwrap();
        assert_eq!(redis.options.password.as_deref(), Some("p@ss"));
        assert_eq!((redis.tls, redis.options.database), (false, 2));

        let mut bad = COMPLETE.to_vec();
        bad.push(("TIDB_HTTP_ENDPOINT", "http://tidb.example.com"));
        bad.push(("REDIS_URL", "http://:pw-s3cret@host"));
        let (_, issues) = load(&bad);
        let names: Vec<_> = issues.iter().map(|i| i.name).collect();
        assert_eq!(names, ["TIDB_HTTP_ENDPOINT", "REDIS_URL"]);
        assert!(!format!("{issues:?}").contains("s3cret"));
    }

    #[test]
    fn the_binding_secret_is_never_shown() {
        let (config, _) = load(&COMPLETE);
        let shown = format!("{config:?}");
        assert!(!shown.contains("0123456789abcdef"));
        assert!(!shown.contains("s3cret"), "{shown}");
        let (_, issues) = load(&[("BINDING_SECRET", "short-s3cr3t")]);
        assert!(issues.iter().any(|i| i.name == "BINDING_SECRET"));
        assert!(!format!("{issues:?}").contains("short-s3cr3t"));
    }

    #[test]
    fn every_missing_value_is_named() {
        let (_, issues) = load(&[]);
        let names: Vec<_> = issues.iter().map(|i| i.name).collect();
        assert_eq!(
            names,
            [
                "ENVIRONMENT",
                "ALLOWED_ORIGINS",
                "ACCESS_TEAM_DOMAIN",
                "ACCESS_AUD",
                "BINDING_SECRET",
                "TIDB_DATABASE_URL",
                "REDIS_URL",
                "B2_ENDPOINT",
                "B2_REGION",
                "B2_BUCKET",
                "B2_KEY_ID",
                "B2_APPLICATION_KEY"
            ]
        );
    }

    #[test]
    fn admin_tokens_may_be_let_in_through_the_binding_only() {
        let without = |names: &[&str]| {
            let mut vars = COMPLETE.to_vec();
            vars.push(("ACCESS_BINDING_AUD", "aud-admin"));
            vars.retain(|(name, _)| !names.contains(name));
            vars.extend(names.iter().map(|&name| (name, "")));
            load(&vars)
        };
        // prd: the API's hostname has no Access application of its own.
        let (config, issues) = without(&["ACCESS_AUD"]);
        assert_eq!(issues, []);
        let policy = config.access.expect("Access configured").policy;
        assert!(policy.audiences.is_empty());
        assert_eq!(policy.binding_audiences, ["aud-admin"]);
        // Neither: no admin token could ever be let in.
        let (config, issues) = without(&["ACCESS_AUD", "ACCESS_BINDING_AUD"]);
        let names: Vec<_> = issues.iter().map(|i| i.name).collect();
        assert_eq!(names, ["ACCESS_AUD"]);
        assert!(issues[0].problem.contains("nor is ACCESS_BINDING_AUD"));
        assert!(config.access.is_none());
    }

    #[test]
    fn malformed_origins_are_reported_and_skipped() {
        let (config, issues) = load(&[
            ("ENVIRONMENT", "prd"),
            (
                "ALLOWED_ORIGINS",
                "https://ok.example.com,http://plain.example.com,https://x.example.com/,http://localhost:8788,ftp://a",
            ),
        ]);
        assert_eq!(config.allowed_origins, ["https://ok.example.com"]);
        let origin_issues = issues.iter().filter(|i| i.name == "ALLOWED_ORIGINS");
        assert_eq!(origin_issues.count(), 4, "{issues:?}");
    }

    #[test]
    fn loopback_http_is_allowed_in_dev_only() {
        let (config, issues) = load(&[
            ("ENVIRONMENT", "dev"),
            ("ALLOWED_ORIGINS", "http://localhost:8788"),
        ]);
        assert!(!issues.iter().any(|i| i.name == "ALLOWED_ORIGINS"));
        assert_eq!(config.allowed_origins, ["http://localhost:8788"]);
    }

    /// A bucket name that would change the path of B2 requests is refused
    /// by its setting's name, without repeating it (`/readyz` shows issues
    /// and is public in `prd`).
    #[test]
    fn a_malformed_bucket_is_named_without_its_value() {
        let mut vars = COMPLETE.to_vec();
        vars.retain(|(name, _)| *name != "B2_BUCKET");
        vars.push(("B2_BUCKET", "private-team/files"));
        let (config, issues) = load(&vars);
        assert!(config.b2.is_none());
        let names: Vec<_> = issues.iter().map(|i| i.name).collect();
        assert_eq!(names, ["B2_BUCKET"]);
        assert!(!format!("{issues:?}").contains("private-team"));
    }

    #[test]
    fn issues_never_echo_secret_values() {
        let (_, issues) = load(&[("ENVIRONMENT", "s3cr3t-value")]);
        assert!(!format!("{issues:?}").contains("s3cr3t-value"));
    }
}
