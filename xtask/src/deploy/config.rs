//! The environment description (`deploy.toml`): what each environment is
//! made of, resolved for one environment into concrete names, hostnames and
//! settings, and checked before any API call.
//!
//! Not here: secret values (see `secrets.rs`) and anything read from
//! Cloudflare (see `live.rs`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::flags::Environment;

/// `deploy.toml` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Description {
    pub cloudflare: CloudflareSection,
    pub worker: WorkerSection,
    #[serde(default)]
    pub pages: Vec<PagesSection>,
    pub access: AccessSection,
    pub env: BTreeMap<String, EnvSection>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudflareSection {
    pub account_id: String,
    pub zone: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSection {
    pub name: String,
    pub name_prd: Option<String>,
    pub service: String,
    pub compatibility_date: String,
    /// Cron Triggers of the script (its `scheduled` handler); none when
    /// left out.
    #[serde(default)]
    pub crons: Vec<String>,
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    #[serde(default)]
    pub secrets: SecretNames,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretNames {
    #[serde(default)]
    pub names: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PagesSection {
    pub key: String,
    pub project: String,
    pub service: String,
    /// The directory this tool uploads as the site; left out for a project
    /// whose deployments come from elsewhere (its own CI).
    #[serde(default)]
    pub site: Option<PathBuf>,
    pub production_branch: String,
    /// Whether the project's Functions get the `API` service binding to the
    /// Worker (the shim's sites); `false` for a static site.
    #[serde(default = "yes")]
    pub api_binding: bool,
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    #[serde(default)]
    pub secrets: SecretNames,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessSection {
    pub team_domain: String,
    pub session_duration: String,
    #[serde(default)]
    pub allowed_emails: Vec<String>,
    #[serde(default)]
    pub allowed_email_domains: Vec<String>,
    pub service_token: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvSection {
    /// Which services sit behind Access: `["*"]` for all of them.
    #[serde(default)]
    pub access: Vec<String>,
}

/// One environment, resolved: every name and hostname concrete.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub env: Environment,
    pub account_id: String,
    pub zone: String,
    pub worker: ResolvedWorker,
    pub pages: Vec<ResolvedPages>,
    /// `None` where nothing of the environment is behind Access.
    pub access: Option<ResolvedAccess>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedWorker {
    pub script: String,
    pub hostname: String,
    pub compatibility_date: String,
    /// Sorted, each once: Cloudflare keeps a script's triggers as a set.
    pub crons: Vec<String>,
    /// Values may still hold `{access:aud}`, `{access:api_aud}` and
    /// `{access:client_id}`, known only once Access is provisioned (see
    /// [`Resolved::worker_vars`]).
    pub vars: BTreeMap<String, String>,
    pub secrets: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedPages {
    pub key: String,
    pub project: String,
    pub hostname: String,
    pub site: Option<PathBuf>,
    pub production_branch: String,
    pub api_binding: bool,
    pub vars: BTreeMap<String, String>,
    pub secrets: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedAccess {
    /// Name of the Access application and prefix of its policies.
    pub app: String,
    pub team_domain: String,
    /// Hostnames behind the application; the first is its `domain`.
    pub hostnames: Vec<String>,
    pub session_duration: String,
    pub allowed_emails: Vec<String>,
    pub allowed_email_domains: Vec<String>,
    pub service_token: String,
}

impl Resolved {
    /// The secrets the Worker and the Pages projects are deployed with, each
    /// name once.
    pub fn secret_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .worker
            .secrets
            .iter()
            .chain(self.pages.iter().flat_map(|p| &p.secrets))
            .map(String::as_str)
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// The Worker settings that take the Access application's audience
    /// tag: those [`Resolved::worker_vars`] leaves waiting while only the
    /// tag is unknown.
    pub fn vars_with_aud(&self) -> Vec<String> {
        self.worker_vars(None, Some(""))
            .into_iter()
            .filter_map(|(name, value)| value.is_none().then_some(name))
            .collect()
    }

    /// Worker settings with the Access placeholders filled in, or `None`
    /// for a value that waits on what is not created yet:
    /// - `{access:aud}`: the application's audience tag;
    /// - `{access:api_aud}`: the same where the application covers the
    ///   Worker's own hostname, else nothing (prd, where only the admin
    ///   site is behind Access: a token issued for it must not be let in
    ///   at the API's public hostname, only through the service binding);
    /// - `{access:client_id}`: the health token's client id.
    pub fn worker_vars(
        &self,
        aud: Option<&str>,
        client_id: Option<&str>,
    ) -> BTreeMap<String, Option<String>> {
        let api_behind_access = self
            .access
            .as_ref()
            .is_some_and(|a| a.hostnames.contains(&self.worker.hostname));
        let api_aud = if api_behind_access { aud } else { Some("") };
        self.worker
            .vars
            .iter()
            .map(|(name, value)| {
                let mut value = Some(value.clone());
                for (placeholder, filled) in [
                    ("{access:aud}", aud),
                    ("{access:api_aud}", api_aud),
                    ("{access:client_id}", client_id),
                ] {
                    if value.as_deref().is_some_and(|v| v.contains(placeholder)) {
                        value = filled.and_then(|f| value.map(|v| v.replace(placeholder, f)));
                    }
                }
                (name.clone(), value)
            })
            .collect()
    }
}

/// A problem with the description, naming where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub at: String,
    pub problem: String,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.problem)
    }
}

/// Reads and parses `path`.
pub fn load(path: &Path) -> anyhow::Result<Description> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// The description for `env`, or every issue found (all at once, so one
/// edit fixes them all).
///
/// Among the issues: a resource `env` shares with another environment of
/// the description (see [`shared_resources`]). Checked here, where every
/// command starts, rather than in `destroy` alone: a deploy of stg under
/// prd's Worker name would overwrite production just as surely as a
/// destroy of stg would delete it.
pub fn resolve(description: &Description, env: Environment) -> Result<Resolved, Vec<Issue>> {
    let resolved = resolve_alone(description, env)?;
    let mut issues = Vec::new();
    for other in [Environment::Rc, Environment::Stg, Environment::Prd] {
        if other == env || !description.env.contains_key(other.name()) {
            continue;
        }
        // An environment that does not resolve reports its own issues when
        // it is used; it cannot be compared with here.
        if let Ok(other) = resolve_alone(description, other) {
            issues.extend(shared_resources(&resolved, &other));
        }
    }
    if issues.is_empty() {
        Ok(resolved)
    } else {
        Err(issues)
    }
}

/// What `deploy` creates and `destroy` deletes in one environment, found by
/// name: `(where in deploy.toml, what it is, its name)`. The Worker script
/// name also names the Access application, its policies and the comment on
/// the environment's DNS records; a Pages project name also names its
/// `*.pages.dev` hostnames.
fn claims(resolved: &Resolved) -> Vec<(String, &'static str, &str)> {
    let mut claims = vec![
        (
            "worker.name".to_owned(),
            "Worker script",
            resolved.worker.script.as_str(),
        ),
        (
            "worker.service".to_owned(),
            "hostname",
            resolved.worker.hostname.as_str(),
        ),
    ];
    for pages in &resolved.pages {
        let at = format!("pages.{}", pages.key);
        claims.push((format!("{at}.project"), "Pages project", &pages.project));
        claims.push((format!("{at}.service"), "hostname", &pages.hostname));
    }
    if let Some(access) = &resolved.access {
        claims.push((
            "access.service_token".to_owned(),
            "Access service token",
            &access.service_token,
        ));
    }
    claims
}

/// Every resource of `resolved` that `other` (another environment) has
/// under the same name: deploying or destroying `resolved` would change or
/// delete `other`'s.
pub fn shared_resources(resolved: &Resolved, other: &Resolved) -> Vec<Issue> {
    let theirs = claims(other);
    let mut issues: Vec<Issue> = Vec::new();
    for (at, what, name) in claims(resolved) {
        if !theirs.iter().any(|&(_, w, n)| w == what && n == name) {
            continue;
        }
        let issue = Issue {
            at,
            problem: format!(
                "{what} {name:?} is also {}'s: environments must not share resources \
                 (a deploy or destroy of {} would change {}'s){}",
                other.env.name(),
                resolved.env.name(),
                other.env.name(),
                if what == "hostname" {
                    ""
                } else {
                    "; put {env} in the name"
                }
            ),
        };
        if !issues.contains(&issue) {
            issues.push(issue);
        }
    }
    issues
}

/// [`resolve`] without comparing `env` with the other environments.
fn resolve_alone(description: &Description, env: Environment) -> Result<Resolved, Vec<Issue>> {
    let mut issues = Vec::new();
    let mut issue = |at: &str, problem: String| {
        issues.push(Issue {
            at: at.to_owned(),
            problem,
        })
    };
    let name = env.name();
    let cf = &description.cloudflare;
    if !is_hex_id(&cf.account_id) {
        issue(
            "cloudflare.account_id",
            "must be the 32-character hex id of the account".into(),
        );
    }
    if !is_domain(&cf.zone) {
        issue(
            "cloudflare.zone",
            format!("{:?} is not a domain name", cf.zone),
        );
    }
    let Some(env_section) = description.env.get(name) else {
        issue(&format!("env.{name}"), "missing".into());
        return Err(issues);
    };
    for other in description.env.keys() {
        if !["rc", "stg", "prd"].contains(&other.as_str()) {
            issue(
                &format!("env.{other}"),
                "unknown environment (rc, stg, prd)".into(),
            );
        }
    }

    let host = |service: &str| match env {
        Environment::Prd => format!("{service}.{}", cf.zone),
        _ => format!("{name}-{service}.{}", cf.zone),
    };
    let mut services = BTreeMap::new();
    services.insert(
        description.worker.service.clone(),
        host(&description.worker.service),
    );
    for pages in &description.pages {
        if services
            .insert(pages.service.clone(), host(&pages.service))
            .is_some()
        {
            issue(
                &format!("pages.{}.service", pages.key),
                format!("{:?} is used twice", pages.service),
            );
        }
    }
    for (service, hostname) in &services {
        if !is_label(service) || !is_domain(hostname) {
            issue(
                "service",
                format!("{service:?} does not make a valid hostname ({hostname})"),
            );
        }
    }
    let fill = |at: &str, text: &str, issues: &mut Vec<Issue>| -> String {
        let mut out = text
            .replace("{env}", name)
            .replace("{access:team_domain}", &description.access.team_domain);
        while let Some(start) = out.find("{host:") {
            let Some(len) = out[start..].find('}') else {
                break;
            };
            let service = &out[start + 6..start + len];
            let Some(hostname) = services.get(service) else {
                issues.push(Issue {
                    at: at.to_owned(),
                    problem: format!("no service {service:?} to take a hostname from"),
                });
                return out;
            };
            out.replace_range(start..start + len + 1, hostname);
        }
        out
    };

    let worker = &description.worker;
    let script = match (env, &worker.name_prd) {
        (Environment::Prd, Some(prd)) => prd.clone(),
        _ => fill("worker.name", &worker.name, &mut issues),
    };
    if !is_label(&script) {
        issues.push(Issue {
            at: "worker.name".into(),
            problem: format!(
                "{script:?} is not a Worker name (lowercase letters, digits, dashes; at most 63)"
            ),
        });
    }
    if !is_date(&worker.compatibility_date) {
        issues.push(Issue {
            at: "worker.compatibility_date".into(),
            problem: "must be YYYY-MM-DD".into(),
        });
    }
    for cron in &worker.crons {
        if let Err(problem) = check_cron(cron) {
            issues.push(Issue {
                at: "worker.crons".into(),
                problem: format!("{cron:?}: {problem}"),
            });
        }
    }
    let mut crons = worker.crons.clone();
    crons.sort();
    crons.dedup();
    let mut vars = BTreeMap::new();
    for (var, value) in &worker.vars {
        check_var_name(&format!("worker.vars.{var}"), var, &mut issues);
        vars.insert(
            var.clone(),
            fill(&format!("worker.vars.{var}"), value, &mut issues),
        );
    }
    check_secrets("worker.secrets", &worker.secrets.names, &vars, &mut issues);
    let worker = ResolvedWorker {
        script,
        hostname: services[&worker.service].clone(),
        compatibility_date: worker.compatibility_date.clone(),
        crons,
        vars,
        secrets: worker.secrets.names.clone(),
    };

    let mut pages = Vec::new();
    let mut keys = Vec::new();
    for section in &description.pages {
        let at = format!("pages.{}", section.key);
        if keys.contains(&section.key) {
            issues.push(Issue {
                at: at.clone(),
                problem: "key used twice".into(),
            });
        }
        keys.push(section.key.clone());
        let project = fill(&format!("{at}.project"), &section.project, &mut issues);
        if !is_project_name(&project) {
            issues.push(Issue {
                at: format!("{at}.project"),
                problem: format!(
                    "{project:?} is not a Pages project name (lowercase letters, digits, dashes; at most 58)"
                ),
            });
        }
        let mut vars = BTreeMap::new();
        for (var, value) in &section.vars {
            check_var_name(&format!("{at}.vars.{var}"), var, &mut issues);
            vars.insert(
                var.clone(),
                fill(&format!("{at}.vars.{var}"), value, &mut issues),
            );
        }
        check_secrets(
            &format!("{at}.secrets"),
            &section.secrets.names,
            &vars,
            &mut issues,
        );
        if section.production_branch.trim().is_empty() {
            issues.push(Issue {
                at: format!("{at}.production_branch"),
                problem: "must not be empty".into(),
            });
        }
        pages.push(ResolvedPages {
            key: section.key.clone(),
            project,
            hostname: services[&section.service].clone(),
            site: section.site.clone(),
            production_branch: section.production_branch.clone(),
            api_binding: section.api_binding,
            vars,
            secrets: section.secrets.names.clone(),
        });
    }

    let access = if env_section.access.is_empty() {
        None
    } else {
        let a = &description.access;
        let all = env_section.access == ["*"];
        for service in &env_section.access {
            if !all && !services.contains_key(service) {
                issues.push(Issue {
                    at: format!("env.{name}.access"),
                    problem: format!("no service {service:?}"),
                });
            }
        }
        let covered = |service: &str| all || env_section.access.iter().any(|s| s == service);
        let mut hostnames = Vec::new();
        if covered(&description.worker.service) {
            hostnames.push(services[&description.worker.service].clone());
        }
        for (section, resolved) in description.pages.iter().zip(&pages) {
            if covered(&section.service) {
                // The project's own pages.dev names (production and every
                // preview) reach the same site: they are covered too.
                hostnames.push(resolved.hostname.clone());
                hostnames.push(format!("{}.pages.dev", resolved.project));
                hostnames.push(format!("*.{}.pages.dev", resolved.project));
            }
        }
        if a.allowed_emails.is_empty() && a.allowed_email_domains.is_empty() {
            issues.push(Issue {
                at: "access".into(),
                problem: "allowed_emails or allowed_email_domains must name someone".into(),
            });
        }
        if !a.team_domain.starts_with("https://") {
            issues.push(Issue {
                at: "access.team_domain".into(),
                problem: "must be https://<team>.cloudflareaccess.com".into(),
            });
        }
        if !is_duration(&a.session_duration) {
            issues.push(Issue {
                at: "access.session_duration".into(),
                problem: "must be a duration such as 30m or 24h".into(),
            });
        }
        let mut no_issues = Vec::new();
        Some(ResolvedAccess {
            app: worker.script.clone(),
            team_domain: a.team_domain.clone(),
            hostnames,
            session_duration: a.session_duration.clone(),
            allowed_emails: a.allowed_emails.clone(),
            allowed_email_domains: a.allowed_email_domains.clone(),
            service_token: fill("access.service_token", &a.service_token, &mut no_issues),
        })
    };
    for (var, value) in &worker.vars {
        if value.contains("{access:") && access.is_none() {
            issues.push(Issue {
                at: format!("worker.vars.{var}"),
                problem: format!("uses Access, which env.{name} does not turn on"),
            });
        }
    }

    if issues.is_empty() {
        Ok(Resolved {
            env,
            account_id: cf.account_id.clone(),
            zone: cf.zone.clone(),
            worker,
            pages,
            access,
        })
    } else {
        Err(issues)
    }
}

fn check_var_name(at: &str, name: &str, issues: &mut Vec<Issue>) {
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if !valid {
        issues.push(Issue {
            at: at.to_owned(),
            problem: "names are UPPER_CASE letters, digits and underscores".into(),
        });
    }
}

fn check_secrets(
    at: &str,
    names: &[String],
    vars: &BTreeMap<String, String>,
    issues: &mut Vec<Issue>,
) {
    let mut seen = Vec::new();
    for name in names {
        check_var_name(&format!("{at}.{name}"), name, issues);
        if vars.contains_key(name) {
            issues.push(Issue {
                at: format!("{at}.{name}"),
                problem: "is also a plain variable; a setting is one or the other".into(),
            });
        }
        if seen.contains(name) {
            issues.push(Issue {
                at: format!("{at}.{name}"),
                problem: "listed twice".into(),
            });
        }
        seen.push(name.clone());
    }
}

fn is_hex_id(text: &str) -> bool {
    text.len() == 32 && text.chars().all(|c| c.is_ascii_hexdigit())
}

fn is_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && label
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

fn is_domain(name: &str) -> bool {
    name.len() <= 253 && name.split('.').count() >= 2 && name.split('.').all(is_label)
}

fn is_project_name(name: &str) -> bool {
    is_label(name) && name.len() <= 58
}

fn is_date(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 10
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && text
            .chars()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

/// A Workers cron expression: five fields (minute, hour, day of month,
/// month, day of week), each `*`, numbers in range, names (`JAN`, `MON`),
/// lists, ranges and steps, plus `L` and `#` where Cloudflare allows them.
/// Checked here so a typo stops the deploy before any API call.
fn check_cron(cron: &str) -> Result<(), String> {
    const FIELDS: [(&str, u32, u32); 5] = [
        ("minute", 0, 59),
        ("hour", 0, 23),
        ("day of month", 1, 31),
        ("month", 1, 12),
        ("day of week", 0, 7),
    ];
    const MONTHS: [&str; 12] = [
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ];
    const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
    let fields: Vec<&str> = cron.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "has {} fields; a cron has 5 (minute hour day-of-month month day-of-week)",
            fields.len()
        ));
    }
    for (field, (what, low, high)) in fields.iter().zip(FIELDS) {
        let value = |text: &str| -> Result<u32, String> {
            let upper = text.to_ascii_uppercase();
            let named = match what {
                "month" => MONTHS
                    .iter()
                    .position(|m| *m == upper)
                    .map(|i| i as u32 + 1),
                "day of week" => DAYS.iter().position(|d| *d == upper).map(|i| i as u32),
                _ => None,
            };
            let number = named.or_else(|| text.parse().ok());
            match number {
                Some(n) if (low..=high).contains(&n) => Ok(n),
                _ => Err(format!("{what} {text:?} is not in {low}-{high}")),
            }
        };
        for item in field.split(',') {
            let (range, step) = match item.split_once('/') {
                Some((range, step)) => (range, Some(step)),
                None => (item, None),
            };
            if let Some(step) = step {
                if !step.parse::<u32>().is_ok_and(|s| s >= 1) {
                    return Err(format!("{what} step {step:?} is not a positive number"));
                }
            }
            // `L` (last day of the month, or `5L` the last Friday) and `#`
            // (`5#2`, the second Friday) as Cloudflare's cron accepts them.
            let special = match what {
                "day of month" => range == "L",
                "day of week" => {
                    range.strip_suffix('L').is_some_and(|d| value(d).is_ok())
                        || range.split_once('#').is_some_and(|(d, n)| {
                            value(d).is_ok() && matches!(n, "1" | "2" | "3" | "4" | "5")
                        })
                }
                _ => false,
            };
            if range == "*" || special {
                continue;
            }
            match range.split_once('-') {
                Some((from, to)) => {
                    if value(from)? > value(to)? {
                        return Err(format!("{what} range {range:?} runs backwards"));
                    }
                }
                None => {
                    value(range)?;
                }
            }
        }
    }
    Ok(())
}

fn is_duration(text: &str) -> bool {
    let Some(unit) = text.chars().last() else {
        return false;
    };
    ['s', 'm', 'h'].contains(&unit) && text[..text.len() - 1].parse::<u32>().is_ok_and(|n| n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn description() -> Description {
        load(&crate::project::root().join("deploy.toml")).unwrap()
    }

    #[test]
    fn the_repository_description_resolves_for_every_environment() {
        let d = description();
        for env in [Environment::Rc, Environment::Stg, Environment::Prd] {
            let resolved = resolve(&d, env).unwrap_or_else(|issues| {
                panic!(
                    "{env:?}: {}",
                    issues
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            });
            assert_eq!(resolved.env, env);
        }
    }

    #[test]
    fn the_deployed_worker_runs_with_the_compatibility_date_tested_locally() {
        // wrangler.toml is what `cargo xtask dev`, the tests and the bench
        // run; deploy.toml what reaches Cloudflare. They must not drift.
        let local = crate::project::ApiWorker::read().unwrap();
        assert_eq!(
            description().worker.compatibility_date,
            local.compatibility_date
        );
    }

    #[test]
    fn the_deployed_worker_has_the_crons_tested_locally() {
        // `wrangler dev --test-scheduled` (the upload sweep's e2e test)
        // runs wrangler.toml's triggers; deploy.toml's reach Cloudflare.
        let path = crate::project::root().join("wrangler.toml");
        let local: toml::Value = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let mut local_crons: Vec<String> = local["triggers"]["crons"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c.as_str().map(str::to_owned))
            .collect();
        local_crons.sort();
        assert!(!local_crons.is_empty(), "wrangler.toml has no crons");
        let rc = resolve(&description(), Environment::Rc).unwrap();
        assert_eq!(rc.worker.crons, local_crons);
    }

    #[test]
    fn cron_expressions_are_checked_before_any_call() {
        for good in [
            "*/15 * * * *",
            "0 0 * * *",
            "10 7 * * mon-fri",
            "0 12 L * *",
            "0 9 * * 5L",
            "0 9 * * 5#2",
            "0,30 8-18/2 1-15 JAN,jul *",
            "59 23 31 12 7",
        ] {
            assert_eq!(check_cron(good), Ok(()), "{good}");
        }
        for (bad, says) in [
            ("*/15 * * *", "has 4 fields"),
            ("* * * * * *", "has 6 fields"),
            ("60 * * * *", "minute \"60\" is not in 0-59"),
            ("* 24 * * *", "hour \"24\" is not in 0-23"),
            ("* * 0 * *", "day of month \"0\" is not in 1-31"),
            ("* * * 13 *", "month \"13\" is not in 1-12"),
            ("* * * FOO *", "month \"FOO\" is not in 1-12"),
            ("*/0 * * * *", "minute step \"0\" is not a positive number"),
            ("30-10 * * * *", "minute range \"30-10\" runs backwards"),
            ("* * * * 5#9", "day of week \"5#9\" is not in 0-7"),
        ] {
            let problem = check_cron(bad).unwrap_err();
            assert!(problem.contains(says), "{bad}: {problem}");
        }
    }

    #[test]
    fn a_bad_cron_is_an_issue_of_the_description() {
        let mut d = description();
        d.worker.crons = vec!["*/15 * * * *".into(), "* * *".into()];
        let issues = resolve(&d, Environment::Rc).unwrap_err();
        assert!(
            issues
                .iter()
                .any(|i| i.at == "worker.crons" && i.problem.contains("\"* * *\": has 3 fields")),
            "{issues:?}"
        );
    }

    #[test]
    fn hostnames_follow_the_naming_scheme() {
        let d = description();
        let rc = resolve(&d, Environment::Rc).unwrap();
        let prd = resolve(&d, Environment::Prd).unwrap();
        let zone = &d.cloudflare.zone;
        assert_eq!(rc.worker.hostname, format!("rc-api.{zone}"));
        assert_eq!(prd.worker.hostname, format!("api.{zone}"));
        assert_eq!(rc.worker.script, "edge-api-rc");
        assert_eq!(prd.worker.script, "edge-api");
        assert_eq!(
            rc.worker.vars["ALLOWED_ORIGINS"],
            format!("https://rc-www.{zone},https://rc-admin.{zone}")
        );
        let web = rc.pages.iter().find(|p| p.key == "web").unwrap();
        assert_eq!(web.project, "edge-web-rc");
        assert_eq!(web.hostname, format!("rc-www.{zone}"));
    }

    #[test]
    fn access_covers_all_of_rc_and_only_admin_in_prd() {
        let d = description();
        let rc = resolve(&d, Environment::Rc).unwrap();
        let access = rc.access.unwrap();
        assert_eq!(access.hostnames.len(), 1 + 3 * d.pages.len());
        assert!(access
            .hostnames
            .contains(&"*.edge-web-rc.pages.dev".to_owned()));
        assert_eq!(access.service_token, "edge-api-rc-health");
        let prd = resolve(&d, Environment::Prd).unwrap();
        let access = prd.access.unwrap();
        assert_eq!(
            access.hostnames,
            [
                format!("admin.{}", d.cloudflare.zone),
                "edge-admin-prd.pages.dev".into(),
                "*.edge-admin-prd.pages.dev".into()
            ]
        );
    }

    #[test]
    fn access_placeholders_wait_for_what_access_creates() {
        let d = description();
        let rc = resolve(&d, Environment::Rc).unwrap();
        let unknown = rc.worker_vars(None, None);
        assert_eq!(unknown["ACCESS_AUD"], None);
        assert!(unknown["ENVIRONMENT"].is_some());
        let known = rc.worker_vars(Some("aud-1"), Some("id.access"));
        assert_eq!(known["ACCESS_AUD"].as_deref(), Some("aud-1"));
        assert_eq!(known["ACCESS_BINDING_AUD"].as_deref(), Some("aud-1"));
        assert_eq!(known["ACCESS_SERVICE_TOKENS"].as_deref(), Some("id.access"));
        assert_eq!(rc.vars_with_aud(), ["ACCESS_AUD", "ACCESS_BINDING_AUD"]);
    }

    #[test]
    fn in_prd_the_admin_sites_tokens_are_let_in_through_the_binding_only() {
        let d = description();
        let prd = resolve(&d, Environment::Prd).unwrap();
        // Known before Access is: no application covers api.<zone>.
        let unknown = prd.worker_vars(None, None);
        assert_eq!(unknown["ACCESS_AUD"].as_deref(), Some(""));
        assert_eq!(unknown["ACCESS_BINDING_AUD"], None);
        let known = prd.worker_vars(Some("aud-admin"), Some("id.access"));
        assert_eq!(known["ACCESS_AUD"].as_deref(), Some(""));
        assert_eq!(known["ACCESS_BINDING_AUD"].as_deref(), Some("aud-admin"));
        assert_eq!(prd.vars_with_aud(), ["ACCESS_BINDING_AUD"]);
        // The Worker's config takes an empty ACCESS_AUD beside a binding
        // audience as binding-only (api::config's
        // admin_tokens_may_be_let_in_through_the_binding_only).
    }

    #[test]
    fn every_issue_is_reported_with_where_it_is() {
        let mut d = description();
        d.cloudflare.account_id = "not-an-id".into();
        d.worker.name = "Edge_API".into();
        d.worker.vars.insert("lower".into(), "x".into());
        d.worker
            .vars
            .insert("ORIGIN".into(), "{host:nowhere}".into());
        d.worker.secrets.names.push("ENVIRONMENT".into());
        d.pages[0].service = d.worker.service.clone();
        let issues = resolve(&d, Environment::Rc).unwrap_err();
        let at: Vec<&str> = issues.iter().map(|i| i.at.as_str()).collect();
        for expected in [
            "cloudflare.account_id",
            "worker.name",
            "worker.vars.lower",
            "worker.vars.ORIGIN",
            "worker.secrets.ENVIRONMENT",
        ] {
            assert!(at.contains(&expected), "{expected} missing from {at:?}");
        }
        assert!(
            issues.iter().any(|i| i.problem.contains("used twice")),
            "{issues:?}"
        );
    }

    #[test]
    fn the_repository_environments_share_no_resource() {
        let d = description();
        let all = [Environment::Rc, Environment::Stg, Environment::Prd]
            .map(|env| resolve_alone(&d, env).unwrap());
        for a in &all {
            for b in all.iter().filter(|b| b.env != a.env) {
                assert_eq!(shared_resources(a, b), [], "{:?} and {:?}", a.env, b.env);
            }
        }
    }

    /// The issues of `env`, as `at` and the environment named in the problem.
    fn shared(d: &Description, env: Environment) -> Vec<Issue> {
        resolve(d, env).expect_err("a shared resource is an issue")
    }

    #[test]
    fn a_worker_name_without_env_is_shared_with_prd() {
        let mut d = description();
        d.worker.name = "edge-api".into();
        for env in [Environment::Rc, Environment::Stg] {
            let issues = shared(&d, env);
            assert!(
                issues.iter().any(|i| i.at == "worker.name"
                    && i.problem
                        .contains("Worker script \"edge-api\" is also prd's")),
                "{issues:?}"
            );
        }
        // prd itself is refused too: deploying it would take over rc's.
        assert!(shared(&d, Environment::Prd)
            .iter()
            .any(|i| i.at == "worker.name"));
    }

    #[test]
    fn a_prd_name_equal_to_another_environments_is_shared() {
        let mut d = description();
        d.worker.name_prd = Some("edge-api-stg".into());
        let issues = shared(&d, Environment::Stg);
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert_eq!(issues[0].at, "worker.name");
        assert!(issues[0].problem.contains("prd"), "{issues:?}");
        assert!(resolve(&d, Environment::Rc).is_ok());
    }

    #[test]
    fn a_pages_project_without_env_is_shared() {
        let mut d = description();
        d.pages[0].project = "edge-web".into();
        let issues = shared(&d, Environment::Stg);
        assert!(
            issues.iter().any(|i| i.at == "pages.web.project"
                && i.problem
                    .contains("Pages project \"edge-web\" is also prd's")),
            "{issues:?}"
        );
    }

    #[test]
    fn a_hostname_of_one_environment_may_not_be_anothers() {
        // rc puts "rc-" before each service: the API's service named
        // "rc-www" gives prd the hostname rc's web site has.
        let mut d = description();
        d.worker.service = "rc-www".into();
        let issues = shared(&d, Environment::Rc);
        assert!(
            issues.iter().any(|i| i.at == "pages.web.service"
                && i.problem
                    .contains("hostname \"rc-www.example.com\" is also prd's")),
            "{issues:?}"
        );
        assert!(shared(&d, Environment::Prd)
            .iter()
            .any(|i| i.at == "worker.service"));
        assert!(resolve(&d, Environment::Stg).is_ok());
    }

    #[test]
    fn an_access_service_token_without_env_is_shared() {
        let mut d = description();
        d.access.service_token = "edge-api-health".into();
        let issues = shared(&d, Environment::Stg);
        assert!(
            issues
                .iter()
                .any(|i| i.at == "access.service_token" && i.problem.contains("prd's")),
            "{issues:?}"
        );
    }

    #[test]
    fn environments_missing_from_the_description_are_not_compared() {
        let mut d = description();
        d.worker.name = "edge-api".into();
        d.worker.name_prd = None;
        d.env.remove("rc");
        d.env.remove("prd");
        assert!(resolve(&d, Environment::Stg).is_ok());
    }

    #[test]
    fn unknown_fields_are_refused() {
        let error =
            toml::from_str::<Description>("[cloudflare]\naccount_id='x'\nzone='y'\nsurprise=1\n")
                .unwrap_err();
        assert!(error.to_string().contains("surprise"), "{error}");
    }
}
