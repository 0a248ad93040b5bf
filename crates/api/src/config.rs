//! The Worker's configuration: wrangler vars and secrets, parsed once into
//! one typed struct. Parsing never fails as a whole: every missing or
//! malformed value becomes a [`ConfigIssue`] naming it, the rest still
//! loads, and `/readyz` reports the issues (a missing secret must never
//! take the Worker down or panic).

use axum::http::HeaderValue;
use serde::Serialize;

/// Deployment environments, as named in wrangler.toml.
pub const ENVIRONMENTS: [&str; 4] = ["dev", "rc", "stg", "prd"];

#[derive(Debug, Clone)]
pub struct Config {
    /// `ENVIRONMENT`: dev, rc, stg or prd.
    pub environment: String,
    /// `ALLOWED_ORIGINS`: comma-separated browser origins allowed by CORS.
    pub allowed_origins: Vec<HeaderValue>,
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
        (
            Config {
                environment,
                allowed_origins,
            },
            issues,
        )
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

    #[test]
    fn a_complete_configuration_has_no_issues() {
        let (config, issues) = load(&[
            ("ENVIRONMENT", "rc"),
            (
                "ALLOWED_ORIGINS",
                "https://www.rc.example.com, https://admin.rc.example.com",
            ),
        ]);
        assert!(issues.is_empty(), "{issues:?}");
        assert_eq!(config.environment, "rc");
        assert_eq!(config.allowed_origins.len(), 2);
        assert_eq!(config.allowed_origins[1], "https://admin.rc.example.com");
    }

    #[test]
    fn every_missing_value_is_named() {
        let (_, issues) = load(&[]);
        let names: Vec<_> = issues.iter().map(|i| i.name).collect();
        assert_eq!(names, ["ENVIRONMENT", "ALLOWED_ORIGINS"]);
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
        assert_eq!(issues.len(), 4, "{issues:?}");
        assert!(issues.iter().all(|i| i.name == "ALLOWED_ORIGINS"));
    }

    #[test]
    fn loopback_http_is_allowed_in_dev_only() {
        let (config, issues) = load(&[
            ("ENVIRONMENT", "dev"),
            ("ALLOWED_ORIGINS", "http://localhost:8788"),
        ]);
        assert!(issues.is_empty());
        assert_eq!(config.allowed_origins, ["http://localhost:8788"]);
    }

    #[test]
    fn issues_never_echo_secret_values() {
        let (_, issues) = load(&[("ENVIRONMENT", "s3cr3t-value")]);
        assert!(!format!("{issues:?}").contains("s3cr3t-value"));
    }
}
