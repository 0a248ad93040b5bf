//! Secret values of an environment, and the check that none is written in a
//! tracked file.
//!
//! Values come from the process environment (`EDGE_API_<ENV>_<NAME>`, what
//! CI sets) or from the untracked `.env.<env>` (`NAME=value` lines, what a
//! laptop keeps); the environment wins. They are held as
//! [`cloudflare::Sensitive`], which never prints, and compared with what is
//! deployed through [`digest`], kept beside the deployed settings.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cloudflare::Sensitive;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::flags::Environment;

/// Where a secret's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    ProcessEnvironment,
    EnvFile,
}

#[derive(Debug, Default)]
pub struct Secrets {
    values: BTreeMap<String, (Sensitive, Source)>,
    env_file: PathBuf,
}

impl Secrets {
    /// The values for `env` that `names` asks for (others are not read).
    pub fn load(root: &Path, env: Environment, names: &[&str]) -> anyhow::Result<Secrets> {
        let env_file = root.join(format!(".env.{}", env.name()));
        let file = match std::fs::read_to_string(&env_file) {
            Ok(text) => parse_env_file(&text)
                .map_err(|line| anyhow::anyhow!("{}:{line}: not NAME=value", env_file.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => anyhow::bail!("cannot read {}: {e}", env_file.display()),
        };
        let mut values = BTreeMap::new();
        for name in names {
            let variable = variable(env, name);
            if let Ok(value) = std::env::var(&variable) {
                values.insert(
                    (*name).to_owned(),
                    (Sensitive::from(value), Source::ProcessEnvironment),
                );
            } else if let Some(value) = file.get(*name) {
                values.insert(
                    (*name).to_owned(),
                    (Sensitive::from(value.clone()), Source::EnvFile),
                );
            }
        }
        Ok(Secrets { values, env_file })
    }

    pub fn get(&self, name: &str) -> Option<&Sensitive> {
        self.values.get(name).map(|(value, _)| value)
    }

    pub fn source(&self, name: &str) -> Option<Source> {
        self.values.get(name).map(|(_, source)| *source)
    }

    /// The names among `names` that have no value.
    pub fn missing<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
        names
            .into_iter()
            .filter(|n| !self.values.contains_key(*n))
            .collect()
    }

    /// Keeps `value` for this run and appends it to `.env.<env>` (created
    /// readable by its owner only), for what the deploy itself creates,
    /// such as an Access service token's secret, shown by Cloudflare once.
    pub fn remember(&mut self, name: &str, value: Sensitive) -> anyhow::Result<()> {
        use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .mode(0o600)
            .open(&self.env_file)?;
        // A file edited by hand may not end its last line: the new line
        // must not run on from it.
        let mut last = [b'\n'];
        if file.metadata()?.len() > 0 {
            file.seek(SeekFrom::End(-1))?;
            file.read_exact(&mut last)?;
        }
        let separator = if last[0] == b'\n' { "" } else { "\n" };
        writeln!(file, "{separator}{name}={}", value.expose())?;
        self.values
            .insert(name.to_owned(), (value, Source::EnvFile));
        Ok(())
    }

    pub fn env_file(&self) -> &Path {
        &self.env_file
    }
}

/// The process variable that carries secret `name` of `env`.
pub fn variable(env: Environment, name: &str) -> String {
    format!("EDGE_API_{}_{name}", env.name().to_ascii_uppercase())
}

/// `NAME=value` lines; `#` comments and blank lines skipped; a value may be
/// in double quotes. Err carries the 1-based number of a bad line (never
/// its text: it may hold a secret).
fn parse_env_file(text: &str) -> Result<BTreeMap<String, String>, usize> {
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, value) = line.split_once('=').ok_or(i + 1)?;
        let name = name.trim().trim_start_matches("export ").trim();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(i + 1);
        }
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        out.insert(name.to_owned(), value.to_owned());
    }
    Ok(out)
}

/// What is kept beside a deployed secret to tell whether it changed: an
/// HMAC-SHA256 of the value under a key naming the environment and the
/// secret, cut to 64 bits. The key is public, so this is as strong as the
/// secret's own entropy; the platform's secrets are generated tokens and
/// passwords, and short digests also keep from confirming a guess cheaply
/// across environments.
pub fn digest(env: Environment, name: &str, value: &Sensitive) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(
        format!("edge-api deploy secret digest:{}:{name}", env.name()).as_bytes(),
    )
    .expect("HMAC takes any key length");
    mac.update(value.expose().as_bytes());
    let bytes = mac.finalize().into_bytes();
    bytes[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// A value in a tracked config file that looks like a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub file: PathBuf,
    /// The key path of the value (never the value).
    pub key: String,
    pub reason: &'static str,
}

/// Values of `file` (TOML) that look like secrets: a setting whose name
/// says it is one (`*PASSWORD*`, `*SECRET*`, `*TOKEN*`, `*_KEY*`, `*DSN*`)
/// given a literal value; a URL with a password in it; a private key; a
/// known token format; or a long random-looking string.
pub fn scan(file: &Path) -> anyhow::Result<Vec<Finding>> {
    let text = std::fs::read_to_string(file)?;
    let value: toml::Value =
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let mut findings = Vec::new();
    walk(file, "", &value, &mut findings);
    Ok(findings)
}

fn walk(file: &Path, key: &str, value: &toml::Value, findings: &mut Vec<Finding>) {
    match value {
        toml::Value::Table(table) => {
            for (k, v) in table {
                let path = if key.is_empty() {
                    k.clone()
                } else {
                    format!("{key}.{k}")
                };
                walk(file, &path, v, findings);
            }
        }
        toml::Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                walk(file, &format!("{key}[{i}]"), v, findings);
            }
        }
        toml::Value::String(text) => {
            let name = key.rsplit('.').next().unwrap_or(key);
            if let Some(reason) = secret_reason(name, text) {
                findings.push(Finding {
                    file: file.to_path_buf(),
                    key: key.to_owned(),
                    reason,
                });
            }
        }
        _ => {}
    }
}

fn secret_reason(name: &str, text: &str) -> Option<&'static str> {
    let upper = name.to_ascii_uppercase();
    let placeholder = text.is_empty() || (text.starts_with('{') && text.ends_with('}'));
    let secret_name = ["PASSWORD", "SECRET", "TOKEN", "_KEY", "DSN", "PRIVATE"]
        .iter()
        .any(|w| upper.contains(w))
        && !upper.ends_with("_NAMES")
        && upper != "SERVICE_TOKEN"
        && !upper.ends_with("_TOKENS");
    if secret_name && !placeholder {
        return Some("the setting's name says it is a secret; give its name under secrets instead");
    }
    if text.contains("-----BEGIN") {
        return Some("a PEM private key or certificate");
    }
    if let Some((scheme, rest)) = text.split_once("://") {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        if !scheme.is_empty()
            && authority.contains('@')
            && authority.split('@').next()?.contains(':')
        {
            return Some("a URL with a password in it");
        }
    }
    let known_prefixes = [
        "sk_live_",
        "sk_test_",
        "ghp_",
        "gho_",
        "github_pat_",
        "xoxb-",
        "xoxp-",
        "glpat-",
    ];
    if known_prefixes.iter().any(|p| text.starts_with(p)) {
        return Some("a known API token format");
    }
    if text.len() == 20
        && text.starts_with("AKIA")
        && text
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    {
        return Some("an AWS access key id");
    }
    if looks_random(text) {
        return Some("a long random-looking string");
    }
    None
}

/// At least 24 characters of letters (both cases) and digits (plus `-_+/=`),
/// with more than 4.2 bits of entropy per character: generated tokens
/// qualify; hex ids (at most 4 bits), words and URLs do not.
fn looks_random(text: &str) -> bool {
    if text.len() < 24
        || !text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_+/=".contains(c))
        || !text.chars().any(|c| c.is_ascii_uppercase())
        || !text.chars().any(|c| c.is_ascii_lowercase())
        || !text.chars().any(|c| c.is_ascii_digit())
    {
        return false;
    }
    let mut counts = BTreeMap::new();
    for c in text.chars() {
        *counts.entry(c).or_insert(0usize) += 1;
    }
    let n = text.chars().count() as f64;
    let entropy: f64 = counts
        .values()
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum();
    entropy > 4.2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_files_are_read_and_bad_lines_named_by_number_only() {
        let parsed = parse_env_file("# c\n\nA=1\nexport B = \"two words\"\n").unwrap();
        assert_eq!(parsed["A"], "1");
        assert_eq!(parsed["B"], "two words");
        assert_eq!(parse_env_file("A=1\nnot a line s3cret\n"), Err(2));
    }

    #[test]
    fn remembered_values_start_a_line_of_their_own() {
        let dir = crate::project::scratch_dir("remember");
        let env_file = dir.join(".env.rc");
        let names = ["B2_KEY_ID", "ACCESS_CLIENT_ID", "ACCESS_CLIENT_SECRET"];
        for (before, after) in [
            // A last line without its newline, as editors may leave it.
            (
                Some("B2_KEY_ID=keyid123"),
                "B2_KEY_ID=keyid123\nACCESS_CLIENT_ID=cid.access\n",
            ),
            (
                Some("B2_KEY_ID=keyid123\n"),
                "B2_KEY_ID=keyid123\nACCESS_CLIENT_ID=cid.access\n",
            ),
            (Some(""), "ACCESS_CLIENT_ID=cid.access\n"),
            (None, "ACCESS_CLIENT_ID=cid.access\n"),
        ] {
            let _ = std::fs::remove_file(&env_file);
            if let Some(before) = before {
                std::fs::write(&env_file, before).unwrap();
            }
            let mut secrets = Secrets::load(&dir, Environment::Rc, &names).unwrap();
            secrets
                .remember("ACCESS_CLIENT_ID", Sensitive::from("cid.access"))
                .unwrap();
            assert_eq!(
                std::fs::read_to_string(&env_file).unwrap(),
                after,
                "{before:?}"
            );
            let reloaded = Secrets::load(&dir, Environment::Rc, &names).unwrap();
            assert_eq!(
                reloaded
                    .get("ACCESS_CLIENT_ID")
                    .map(|v| v.expose().to_owned()),
                Some("cid.access".to_owned())
            );
            if before.is_some_and(|b| !b.is_empty()) {
                assert_eq!(
                    reloaded.get("B2_KEY_ID").map(|v| v.expose().to_owned()),
                    Some("keyid123".to_owned())
                );
            }
            // A second value follows on its own line too.
            secrets
                .remember("ACCESS_CLIENT_SECRET", Sensitive::from("s3cret"))
                .unwrap();
            assert_eq!(
                std::fs::read_to_string(&env_file).unwrap(),
                format!("{after}ACCESS_CLIENT_SECRET=s3cret\n")
            );
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn digests_change_with_the_value_the_name_and_the_environment() {
        let value = Sensitive::from("s3cret-value".to_owned());
        let d = digest(Environment::Rc, "A", &value);
        assert_eq!(d.len(), 16);
        assert_eq!(d, digest(Environment::Rc, "A", &value));
        assert_ne!(d, digest(Environment::Stg, "A", &value));
        assert_ne!(d, digest(Environment::Rc, "B", &value));
        assert_ne!(
            d,
            digest(
                Environment::Rc,
                "A",
                &Sensitive::from("s3cret-valuf".to_owned())
            )
        );
        assert!(!d.contains("s3cret"));
    }

    #[test]
    fn secret_looking_values_are_found_and_ids_urls_and_names_are_not() {
        for (name, value) in [
            ("DB_PASSWORD", "hunter2"),
            (
                "REDIS_URL",
                "rediss://default:pa55word@redis.example.com:6379",
            ),
            ("KEY", "-----BEGIN PRIVATE KEY-----"),
            ("X", "ghp_abcdefghijklmnopqrstuvwxyz0123456789"),
            ("Y", "AKIAIOSFODNN7EXAMPLE"),
            ("Z", "K003aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456"),
        ] {
            assert!(secret_reason(name, value).is_some(), "{name}={value}");
        }
        for (name, value) in [
            ("account_id", "4f3a9c1e2b7d4e6f8a0b1c2d3e4f5a6b"),
            (
                "TIDB_HTTP_ENDPOINT",
                "https://http-gateway01.eu-central-1.prod.aws.tidbcloud.com",
            ),
            ("ACCESS_AUD", "{access:aud}"),
            ("service_token", "edge-api-{env}-health"),
            ("ALLOWED_ORIGINS", "https://{host:www},https://{host:admin}"),
            ("compatibility_date", "2026-04-01"),
            ("name", "edge-api-{env}"),
        ] {
            assert_eq!(secret_reason(name, value), None, "{name}={value}");
        }
    }

    #[test]
    fn the_tracked_configs_hold_no_secret() {
        let root = crate::project::root();
        for file in ["deploy.toml", "wrangler.toml"] {
            assert_eq!(scan(&root.join(file)).unwrap(), [], "{file}");
        }
    }

    #[test]
    fn a_planted_secret_is_found_by_key_without_its_value() {
        let dir = crate::project::scratch_dir("scan");
        let file = dir.join("deploy.toml");
        std::fs::write(
            &file,
            "[worker.vars]\nB2_APPLICATION_KEY = \"K003planted\"\n",
        )
        .unwrap();
        let findings = scan(&file).unwrap();
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].key, "worker.vars.B2_APPLICATION_KEY");
        assert!(!format!("{findings:?}").contains("K003planted"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
