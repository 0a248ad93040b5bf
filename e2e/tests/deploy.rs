//! `cargo xtask plan | deploy | rollback | destroy` against the Cloudflare
//! API stand-in (crates/cloudflare-standin), which keeps state like the
//! real API and validates every request against Cloudflare's published
//! OpenAPI schema; each test ends by asserting it saw no invalid request.
//!
//! The xtask binary runs as a user would run it, with the stand-in's
//! address as the API, secrets in the environment, a small description in
//! a temporary directory, a tiny Worker bundle, and the real wrangler
//! uploading the Pages sites. Health checks go to the stand-in's edge
//! emulation (`--edge-url`), which answers as the deployed hostnames would,
//! behind Access with the service token the deploy created.

use std::path::PathBuf;
use std::process::{Command, Output};

use cloudflare_standin::{Config, Fault, FaultKind, StandIn};
use e2e::xtask;
use serde_json::Value;

const TOKEN: &str = "standin-token-0123456789";
const ACCOUNT: &str = "4f3a9c1e2b7d4e6f8a0b1c2d3e4f5a6b";
const ZONE_ID: &str = "9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d";
const ZONE: &str = "example.com";
/// Secret values: none may ever appear in any output.
const DATABASE_URL: &str = "mysql://app:db-pa55word-e2e@tidb.example.com:4000/app";
const BINDING_SECRET: &str = "binding-s3cret-e2e-0123456789abcdef";
/// The database URL after a rotation, as `(variable, value)`.
const ROTATED: (&str, &str) = (
    "EDGE_API_RC_TIDB_DATABASE_URL",
    "mysql://app:r0tated-pa55word-e2e@tidb.example.com:4000/app",
);

async fn standin() -> StandIn {
    StandIn::start(Config::single(TOKEN, ACCOUNT, ZONE_ID, ZONE))
        .await
        .expect("the stand-in starts")
}

/// A description, two sites and a Worker bundle in a fresh directory.
struct Project {
    dir: PathBuf,
}

impl Project {
    fn new(name: &str) -> Project {
        let dir = std::env::temp_dir().join(format!(
            "deploy-{name}-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(dir.join("bundle")).unwrap();
        std::fs::write(
            dir.join("bundle/index.js"),
            "export default { fetch() { return new Response('ok'); } };\n",
        )
        .unwrap();
        for site in ["web", "admin"] {
            std::fs::create_dir_all(dir.join("sites").join(site)).unwrap();
            std::fs::write(
                dir.join("sites").join(site).join("index.html"),
                format!("<!doctype html><title>{site}</title>\n"),
            )
            .unwrap();
        }
        let project = Project { dir };
        project.describe("rc");
        project
    }

    /// Writes deploy.toml with `ENVIRONMENT = value` for the Worker.
    fn describe(&self, environment_var: &str) {
        let text = format!(
            r#"
[cloudflare]
account_id = "{ACCOUNT}"
zone = "{ZONE}"

[worker]
name = "edge-api-{{env}}"
name_prd = "edge-api"
service = "api"
compatibility_date = "2026-04-01"
crons = ["*/15 * * * *"]
[worker.vars]
ENVIRONMENT = "{environment_var}"
ALLOWED_ORIGINS = "https://{{host:www}},https://{{host:admin}}"
ACCESS_TEAM_DOMAIN = "{{access:team_domain}}"
ACCESS_AUD = "{{access:aud}}"
ACCESS_SERVICE_TOKENS = "{{access:client_id}}"
[worker.secrets]
names = ["TIDB_DATABASE_URL", "BINDING_SECRET"]

[[pages]]
key = "web"
project = "edge-web-{{env}}"
service = "www"
site = "sites/web"
production_branch = "main"
[pages.vars]
ENVIRONMENT = "{{env}}"
[pages.secrets]
names = ["BINDING_SECRET"]

[[pages]]
key = "admin"
project = "edge-admin-{{env}}"
service = "admin"
site = "sites/admin"
production_branch = "main"
[pages.secrets]
names = ["BINDING_SECRET"]

[[pages]]
key = "wiki"
project = "edge-wiki-{{env}}"
service = "wiki"
production_branch = "main"
api_binding = false

[[pages]]
key = "e2e"
project = "edge-e2e-{{env}}"
service = "portal"
production_branch = "main"
api_binding = false

[access]
team_domain = "https://example.cloudflareaccess.com"
session_duration = "24h"
allowed_email_domains = ["example.com"]
service_token = "edge-api-{{env}}-health"

[env.rc]
access = ["*"]
[env.stg]
access = ["*"]
[env.prd]
access = ["admin"]
"#
        );
        std::fs::write(self.dir.join("deploy.toml"), text).unwrap();
    }

    /// `cargo xtask --json ARGS --env rc --config ... --api-url ...`.
    fn xtask(&self, standin: &StandIn, args: &[&str]) -> Run {
        self.xtask_with(standin, args, &[])
    }

    /// `cargo xtask ARGS --env ENV --config <this description>`.
    fn command(&self, args: &[&str], env: &str) -> Command {
        let mut command = xtask();
        command
            .args(args)
            .args(["--env", env, "--config"])
            .arg(self.dir.join("deploy.toml"));
        command
    }

    fn xtask_with(&self, standin: &StandIn, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut command = self.command(&[&["--json"], args].concat(), "rc");
        command
            .args(["--api-url", &standin.base_url()])
            .env("CLOUDFLARE_API_TOKEN", TOKEN)
            .env("EDGE_API_RC_TIDB_DATABASE_URL", DATABASE_URL)
            .env("EDGE_API_RC_BINDING_SECRET", BINDING_SECRET)
            .env(
                "EDGE_API_DEPLOY_EDGE_URL",
                format!("http://{}", standin.addr()),
            )
            .env_remove("CLOUDFLARE_API_BASE_URL");
        for (name, value) in env {
            command.env(name, value);
        }
        Run(command.output().expect("xtask runs"))
    }

    fn deploy(&self, standin: &StandIn, extra: &[&str]) -> Run {
        self.deploy_with(standin, extra, &[])
    }

    /// A deploy with `env` set on top of the usual secrets.
    fn deploy_with(&self, standin: &StandIn, extra: &[&str], env: &[(&str, &str)]) -> Run {
        let bundle = self.dir.join("bundle");
        let mut args = vec![
            "deploy",
            "--skip-migrations",
            "--health-timeout",
            "5",
            "--bundle",
            bundle.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        self.xtask_with(standin, &args, env)
    }

    fn plan(&self, standin: &StandIn) -> Run {
        let bundle = self.dir.join("bundle");
        self.xtask(standin, &["plan", "--bundle", bundle.to_str().unwrap()])
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct Run(Output);

impl Run {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
    fn code(&self) -> Option<i32> {
        self.0.status.code()
    }
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout())
            .unwrap_or_else(|e| panic!("{e}: stdout {}\nstderr {}", self.stdout(), self.stderr()))
    }
    /// Succeeded, and printed no secret.
    fn ok(self) -> Self {
        assert_eq!(
            self.code(),
            Some(0),
            "stdout: {}\nstderr: {}",
            self.stdout(),
            self.stderr()
        );
        self.no_secrets()
    }
    fn no_secrets(self) -> Self {
        for secret in [
            DATABASE_URL,
            BINDING_SECRET,
            "db-pa55word-e2e",
            ROTATED.1,
            "r0tated-pa55word-e2e",
            TOKEN,
        ] {
            assert!(
                !self.stdout().contains(secret) && !self.stderr().contains(secret),
                "a secret was printed: {}{}",
                self.stdout(),
                self.stderr()
            );
        }
        self
    }
}

/// The deploy lock's records in the stand-in's zone.
fn lock_records(standin: &StandIn) -> Vec<Value> {
    standin
        .dns_records(ZONE_ID)
        .into_iter()
        .filter(|r| r["name"].as_str().unwrap().starts_with("_deploy-lock"))
        .collect()
}

/// Deletes the deploy lock's record behind the running deploy's back, as
/// another deploy breaking an expired lock would.
async fn take_the_lock_away(standin: &StandIn, client: &reqwest::Client) {
    let taken = lock_records(standin)
        .pop()
        .expect("the deploy holds the lock");
    let deleted = client
        .delete(format!(
            "{}/zones/{ZONE_ID}/dns_records/{}",
            standin.base_url(),
            taken["id"].as_str().unwrap()
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success());
}

/// Nothing is left to change, and every request the tool sent matched
/// Cloudflare's published schema.
fn assert_converged(project: &Project, standin: &StandIn) {
    assert_eq!(changes(&project.plan(standin).ok().json()), []);
    assert_every_request_valid(standin);
}

fn assert_every_request_valid(standin: &StandIn) {
    let violations = standin.violations();
    assert!(
        violations.is_empty(),
        "requests that do not match Cloudflare's schema: {violations:#?}"
    );
    // And the stand-in answered as the published response schemas say.
    let mismatches = standin.response_mismatches();
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

fn changes(plan: &Value) -> Vec<(String, String, String)> {
    plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["action"].as_str().unwrap().to_owned(),
                c["kind"].as_str().unwrap().to_owned(),
                c["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn current_version(standin: &StandIn) -> String {
    let deployment = standin
        .current_deployment("edge-api-rc")
        .expect("the Worker is deployed");
    let versions = deployment["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 1, "{deployment}");
    versions[0]["version_id"].as_str().unwrap().to_owned()
}

/// The current deployment's versions and their shares of traffic.
fn current_shares(standin: &StandIn) -> Vec<(String, f64)> {
    standin
        .current_deployment("edge-api-rc")
        .expect("the Worker is deployed")["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["version_id"].as_str().unwrap().to_owned(),
                v["percentage"].as_f64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_deploy_creates_everything_and_a_second_writes_nothing() {
    let standin = standin().await;
    let project = Project::new("fresh");

    let plan = project.plan(&standin);
    assert_eq!(plan.code(), Some(2), "changes pending: {}", plan.stderr());
    let planned = changes(&plan.no_secrets().json());
    for expected in [
        ("create", "access-service-token", "edge-api-rc-health"),
        ("create", "access-app", "edge-api-rc"),
        ("create", "worker", "edge-api-rc"),
        ("create", "worker-domain", "rc-api.example.com"),
        ("create", "worker-crons", "edge-api-rc"),
        ("create", "dns", "rc-www.example.com"),
        ("create", "pages-project", "edge-admin-rc"),
        ("create", "pages-site", "edge-web-rc"),
        ("create", "pages-project", "edge-e2e-rc"),
        ("create", "dns", "rc-portal.example.com"),
        ("create", "pages-domain", "rc-wiki.example.com"),
    ] {
        let expected = (expected.0.into(), expected.1.into(), expected.2.into());
        assert!(
            planned.contains(&expected),
            "{expected:?} not in {planned:?}"
        );
    }
    // A project without a `site` is deployed by someone else: no upload.
    assert!(!planned.contains(&("create".into(), "pages-site".into(), "edge-e2e-rc".into())));
    let before = standin.write_count();
    assert_eq!(before, 0, "plan writes nothing");

    standin.reset_counters();
    let fresh = project.deploy(&standin, &[]).ok().json();
    // One report on stdout, saying the migrations were left out.
    assert_eq!(fresh.get("migrations"), Some(&Value::Null), "{fresh}");
    let fresh_calls = standin.request_count();
    let fresh_writes = standin.write_count();
    eprintln!(
        "fresh deploy: {fresh_calls} API calls, {fresh_writes} writes ({} of the calls by the tool's client, the rest by wrangler pages deploy)",
        fresh["api_calls"]
    );
    // The tool counts its own calls; wrangler's site uploads come on top.
    let own = fresh["api_calls"].as_u64().unwrap();
    assert!(own > 0 && own < fresh_calls, "{own} of {fresh_calls}");

    // What Cloudflare now holds.
    let version = current_version(&standin);
    let detail = standin.version("edge-api-rc", &version).unwrap();
    let bindings = detail["resources"]["bindings"].to_string();
    assert!(bindings.contains("ENVIRONMENT"), "{bindings}");
    assert_eq!(
        standin
            .secret_value("edge-api-rc", "TIDB_DATABASE_URL")
            .as_deref(),
        Some(DATABASE_URL)
    );
    assert_eq!(standin.schedules("edge-api-rc"), ["*/15 * * * *"]);
    let access = standin.access();
    let aud = access["apps"][0]["aud"]
        .as_str()
        .expect("an app with an aud");
    assert!(
        bindings.contains(aud),
        "ACCESS_AUD is the app's aud: {bindings}"
    );
    let records = standin.dns_records(ZONE_ID);
    let www = records
        .iter()
        .find(|r| r["name"] == "rc-www.example.com")
        .expect("the web CNAME");
    assert_eq!(www["content"], "edge-web-rc.pages.dev");
    assert_eq!(www["proxied"], true);
    assert_eq!(
        standin
            .pages_env_var("edge-web-rc", "production", "BINDING_SECRET")
            .as_deref(),
        Some(BINDING_SECRET)
    );
    let web = standin.pages_project("edge-web-rc").unwrap();
    assert_eq!(
        web["deployment_configs"]["production"]["services"]["API"]["service"],
        "edge-api-rc"
    );
    // The static project: no binding, no deployment, but its domain and
    // its CNAME like the others.
    let portal = standin.pages_project("edge-e2e-rc").unwrap();
    assert!(
        portal["deployment_configs"]["production"]["services"]
            .get("API")
            .is_none(),
        "{portal}"
    );
    assert!(portal["latest_deployment"].is_null(), "{portal}");
    assert!(records
        .iter()
        .any(|r| r["name"] == "rc-portal.example.com" && r["content"] == "edge-e2e-rc.pages.dev"));
    assert!(lock_records(&standin).is_empty(), "the lock is released");
    let env_file = std::fs::read_to_string(project.dir.join(".env.rc")).unwrap();
    assert!(env_file.contains("ACCESS_CLIENT_ID=") && env_file.contains("ACCESS_CLIENT_SECRET="));

    // Nothing changed: the plan is empty and a deploy writes nothing.
    let again = project.plan(&standin).ok().json();
    assert_eq!(changes(&again), []);
    standin.reset_counters();
    let noop = project.deploy(&standin, &[]).ok().json();
    eprintln!(
        "no-op deploy: {} API calls, {} writes",
        standin.request_count(),
        standin.write_count()
    );
    assert_eq!(standin.write_count(), 0, "{:#?}", standin.requests());
    assert_eq!(noop["api_writes"], 0);
    assert_eq!(current_version(&standin), version);
    assert_every_request_valid(&standin);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_changed_var_or_secret_is_one_update_and_drift_shows() {
    let standin = standin().await;
    let project = Project::new("change");
    project.deploy(&standin, &[]).ok();
    let first = current_version(&standin);

    project.describe("rc-changed");
    let plan = project.plan(&standin).no_secrets().json();
    let planned = changes(&plan);
    assert_eq!(
        planned,
        [("update".into(), "worker".into(), "edge-api-rc".into())]
    );
    let fields = &plan["changes"][0]["fields"];
    assert_eq!(fields.as_array().unwrap().len(), 1, "{fields}");
    assert_eq!(fields[0]["field"], "vars.ENVIRONMENT");
    assert_eq!(fields[0]["after"], "\"rc-changed\"");
    project.deploy(&standin, &[]).ok();
    let second = current_version(&standin);
    assert_ne!(first, second);

    let changed = "mysql://app:rotated-pa55word@tidb.example.com:4000/app";
    let bundle = project.dir.join("bundle");
    let plan = project.xtask_with(
        &standin,
        &["plan", "--bundle", bundle.to_str().unwrap()],
        &[("EDGE_API_RC_TIDB_DATABASE_URL", changed)],
    );
    assert!(
        !plan.stdout().contains("rotated-pa55word") && !plan.stderr().contains("rotated-pa55word")
    );
    let plan = plan.json();
    assert_eq!(
        changes(&plan),
        [("update".into(), "worker".into(), "edge-api-rc".into())]
    );
    assert_eq!(
        plan["changes"][0]["fields"][0]["field"],
        "secrets.TIDB_DATABASE_URL"
    );
    assert_eq!(plan["changes"][0]["fields"][0]["after"], "(changed)");

    // A record edited behind the tool's back is drift.
    let client = reqwest::Client::new();
    let record = standin
        .dns_records(ZONE_ID)
        .into_iter()
        .find(|r| r["name"] == "rc-admin.example.com")
        .unwrap();
    let edited = client
        .patch(format!(
            "{}/zones/{ZONE_ID}/dns_records/{}",
            standin.base_url(),
            record["id"].as_str().unwrap()
        ))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({
            "name": "rc-admin.example.com", "type": "CNAME", "ttl": 1,
            "content": "somewhere-else.example.net", "proxied": true,
            "comment": record["comment"],
        }))
        .send()
        .await
        .unwrap();
    assert!(
        edited.status().is_success(),
        "{}",
        edited.text().await.unwrap()
    );
    let drift = project.plan(&standin);
    assert_eq!(drift.code(), Some(2));
    let drift = drift.json();
    assert_eq!(
        changes(&drift),
        [("update".into(), "dns".into(), "rc-admin.example.com".into())]
    );
    assert_eq!(
        drift["changes"][0]["fields"][0]["before"],
        "\"somewhere-else.example.net\""
    );
    project.deploy(&standin, &[]).ok();
    assert_eq!(changes(&project.plan(&standin).ok().json()), []);

    // So is a Cron Trigger changed behind its back; a deploy puts the
    // described ones back, and a new version leaves them alone.
    let edited = client
        .put(format!(
            "{}/accounts/{ACCOUNT}/workers/scripts/edge-api-rc/schedules",
            standin.base_url()
        ))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!([{"cron": "0 3 * * *"}, {"cron": "*/15 * * * *"}]))
        .send()
        .await
        .unwrap();
    assert!(
        edited.status().is_success(),
        "{}",
        edited.text().await.unwrap()
    );
    let drift = project.plan(&standin).json();
    assert_eq!(
        changes(&drift),
        [("update".into(), "worker-crons".into(), "edge-api-rc".into())]
    );
    assert_eq!(
        drift["changes"][0]["fields"][0]["before"],
        "\"*/15 * * * *; 0 3 * * *\""
    );
    assert_eq!(
        drift["changes"][0]["fields"][0]["after"],
        "\"*/15 * * * *\""
    );
    standin.reset_counters();
    project.deploy(&standin, &[]).ok();
    // The one write, besides taking and releasing the lock (a DNS record).
    let writes: Vec<String> = standin
        .requests()
        .into_iter()
        .filter(|r| r.write && !r.path.contains("/dns_records"))
        .map(|r| r.operation.unwrap_or(r.path))
        .collect();
    assert_eq!(writes, ["worker-cron-trigger-update-cron-triggers"]);
    assert_eq!(standin.schedules("edge-api-rc"), ["*/15 * * * *"]);
    assert_converged(&project, &standin);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_api_binding_is_removed_from_the_project() {
    let standin = standin().await;
    let project = Project::new("binding");
    project.deploy(&standin, &[]).ok();
    let description = project.dir.join("deploy.toml");
    let text = std::fs::read_to_string(&description).unwrap();
    std::fs::write(
        &description,
        text.replacen(
            "key = \"admin\"\n",
            "key = \"admin\"\napi_binding = false\n",
            1,
        ),
    )
    .unwrap();
    let plan = project.plan(&standin).json();
    assert_eq!(
        changes(&plan),
        [(
            "update".into(),
            "pages-project".into(),
            "edge-admin-rc".into()
        )]
    );
    let field = &plan["changes"][0]["fields"][0];
    assert_eq!(field["field"], "services.API");
    assert_eq!(field["before"], "\"edge-api-rc\"");
    assert!(field["after"].is_null(), "{field}");
    project.deploy(&standin, &[]).ok();
    let admin = standin.pages_project("edge-admin-rc").unwrap();
    for environment in ["production", "preview"] {
        assert!(
            admin["deployment_configs"][environment]["services"]
                .get("API")
                .is_none(),
            "{admin}"
        );
    }
    assert_converged(&project, &standin);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_and_server_errors_are_retried_and_a_crash_converges_on_rerun() {
    let standin = standin().await;
    let project = Project::new("faults");
    standin.inject(
        Fault::next(FaultKind::RateLimit {
            retry_after_secs: 1,
        })
        .times(2),
    );
    standin.inject(
        Fault::next(FaultKind::ServerError {
            status: 503,
            html: true,
        })
        .method("GET")
        .times(2),
    );
    let run = project.deploy(&standin, &[]).ok().json();
    assert!(run["api_retries"].as_u64().unwrap() >= 4, "{run}");
    let faulted = standin.requests().iter().filter(|r| r.faulted).count();
    assert_eq!(faulted, 4);

    // A failure in the middle of the next deploy (the Worker's version
    // upload fails for good), then a rerun.
    project.describe("rc-second");
    standin.inject(
        Fault::next(FaultKind::ServerError {
            status: 500,
            html: false,
        })
        .method("POST")
        .path_contains("/versions")
        .times(10),
    );
    let failed = project.deploy(&standin, &[]).no_secrets();
    assert_ne!(failed.code(), Some(0), "{}", failed.stderr());
    standin.clear_faults();
    assert!(
        lock_records(&standin).is_empty(),
        "a failed deploy releases its lock"
    );
    project.deploy(&standin, &[]).ok();
    assert_converged(&project, &standin);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_health_checks_roll_the_worker_back() {
    let standin = standin().await;
    let project = Project::new("health");
    project.deploy(&standin, &[]).ok();
    let good = current_version(&standin);

    // With a rotated secret too: going back to the version before it is
    // what the API refuses without `force`.
    project.describe("rc-broken");
    standin.set_host_healthy("rc-api.example.com", false);
    let run = project.deploy_with(&standin, &[], &[ROTATED]).no_secrets();
    assert_eq!(run.code(), Some(1), "{}", run.stderr());
    assert!(run.stderr().contains("rolled back"), "{}", run.stderr());
    assert_eq!(
        current_version(&standin),
        good,
        "serving the previous version"
    );
    assert_eq!(
        standin
            .secret_value("edge-api-rc", "TIDB_DATABASE_URL")
            .as_deref(),
        Some(DATABASE_URL)
    );
    assert_every_request_valid(&standin);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_deploy_during_a_canary_restores_the_split() {
    let standin = standin().await;
    let project = Project::new("canary-health");
    project.deploy(&standin, &[]).ok();
    project.describe("rc-canary");
    project
        .deploy_with(&standin, &["--percent", "10"], &[ROTATED])
        .ok();
    let canary = current_shares(&standin);
    assert_eq!(canary.len(), 2, "{canary:?}");

    // Promoting the canary fails: the split comes back, not the canary
    // alone at 100%.
    standin.set_host_healthy("rc-api.example.com", false);
    let run = project.deploy_with(&standin, &[], &[ROTATED]).no_secrets();
    assert_eq!(run.code(), Some(1), "{}", run.stderr());
    assert!(run.stderr().contains("rolled back"), "{}", run.stderr());
    assert_eq!(current_shares(&standin), canary);

    // New code during the canary fails: the same split comes back, not
    // the canary at 100%.
    project.describe("rc-next");
    let run = project
        .deploy_with(&standin, &["--percent", "10"], &[ROTATED])
        .no_secrets();
    assert_eq!(run.code(), Some(1), "{}", run.stderr());
    assert_eq!(current_shares(&standin), canary);
    assert_every_request_valid(&standin);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lock_refuses_a_second_deploy_and_expired_locks_are_broken() {
    let standin = standin().await;
    let project = Project::new("lock");
    let client = reqwest::Client::new();
    let lock = |comment: String| {
        client
            .post(format!(
                "{}/zones/{ZONE_ID}/dns_records",
                standin.base_url()
            ))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({
                "name": "_deploy-lock.edge-api-rc.example.com", "type": "TXT", "ttl": 1,
                "content": "\"edge-api deploy lock\"", "comment": comment,
            }))
            .send()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // Held by another deploy right now.
    assert!(lock(format!(
        "held by ci@runner pid 7 since {now} until {}",
        now + 600
    ))
    .await
    .unwrap()
    .status()
    .is_success());
    let refused = project.deploy(&standin, &[]).no_secrets();
    assert_eq!(refused.code(), Some(1));
    assert!(
        refused.stderr().contains("another deploy holds the lock"),
        "{}",
        refused.stderr()
    );
    assert!(
        refused.stderr().contains("ci@runner"),
        "{}",
        refused.stderr()
    );
    assert!(
        standin.current_deployment("edge-api-rc").is_none(),
        "nothing applied"
    );
    // --break-lock takes it over.
    project.deploy(&standin, &["--break-lock"]).ok();

    // An expired lock (a killed deploy) is broken without asking.
    project.describe("rc-after-crash");
    assert!(lock(format!(
        "held by gone@laptop pid 9 since {} until {}",
        now - 4000,
        now - 2000
    ))
    .await
    .unwrap()
    .status()
    .is_success());
    project.deploy(&standin, &[]).ok();

    // Two deploys at once: one applies, the other waits its turn or stops
    // with a clear message; the environment ends as described.
    project.describe("rc-concurrent");
    let (a, b) = std::thread::scope(|scope| {
        let a = scope.spawn(|| project.deploy(&standin, &[]));
        let b = scope.spawn(|| project.deploy(&standin, &[]));
        (a.join().unwrap(), b.join().unwrap())
    });
    let outcomes = [a.no_secrets(), b.no_secrets()];
    assert!(outcomes.iter().any(|r| r.code() == Some(0)));
    for run in &outcomes {
        if run.code() != Some(0) {
            assert!(run.stderr().contains("lock"), "{}", run.stderr());
        }
    }
    assert_converged(&project, &standin);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_deploy_renews_its_lock_and_stops_when_it_is_taken_away() {
    let standin = standin().await;
    let project = Project::new("renew");
    let renew_every_step = [("EDGE_API_DEPLOY_LOCK_RENEW_SECS", "0")];
    let bundle = project.dir.join("bundle");
    let deploy_args = [
        "deploy",
        "--skip-migrations",
        "--health-timeout",
        "5",
        "--bundle",
        bundle.to_str().unwrap(),
    ];
    let lock_renewals = |standin: &StandIn| {
        standin
            .requests()
            .iter()
            .filter(|r| r.operation.as_deref() == Some("dns-records-for-a-zone-patch-dns-record"))
            .count()
    };

    // Renewed before each step (Access, Worker, DNS, four Pages projects,
    // health checks), and released at the end.
    project
        .xtask_with(&standin, &deploy_args, &renew_every_step)
        .ok();
    assert_eq!(lock_renewals(&standin), 8, "{:#?}", standin.requests());
    assert!(lock_records(&standin).is_empty());

    // Taken away while the Worker step waits on a slow answer (a
    // deployment that times out once and is sent again): the deploy stops
    // before the next step and says why.
    project.describe("rc-taken");
    standin.inject(Fault {
        kind: FaultKind::Hang {
            delay_ms: Some(2000),
        },
        method: Some("POST".into()),
        path_contains: Some("/deployments".into()),
        skip: 0,
        times: 1,
        after_apply: false,
    });
    standin.reset_counters();
    let client = reqwest::Client::new();
    let stopped = std::thread::scope(|scope| {
        let run = scope.spawn(|| project.xtask_with(&standin, &deploy_args, &renew_every_step));
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(async {
                let held = |r: &cloudflare_standin::RequestRecord| {
                    r.method == "POST" && r.path.ends_with("/deployments") && r.status == 0
                };
                while !standin.requests().iter().any(held) {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                take_the_lock_away(&standin, &client).await;
            })
        });
        run.join().unwrap()
    });
    let stopped = stopped.no_secrets();
    assert_eq!(stopped.code(), Some(1), "{}", stopped.stderr());
    assert!(
        stopped
            .stderr()
            .contains("the deploy lock was taken from this deploy"),
        "{}",
        stopped.stderr()
    );
    // Nothing after the Worker step was written.
    let later: Vec<_> = standin
        .requests()
        .into_iter()
        .filter(|r| r.write && (r.path.contains("/pages/") || r.path.contains("/schedules")))
        .collect();
    assert!(later.is_empty(), "{later:#?}");
    // Run again: it converges.
    project
        .xtask_with(&standin, &deploy_args, &renew_every_step)
        .ok();
    assert_converged(&project, &standin);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_and_destroy() {
    let standin = standin().await;
    let project = Project::new("rollback");
    project.deploy(&standin, &[]).ok();
    let first = current_version(&standin);
    project.describe("rc-second");
    project.deploy_with(&standin, &[], &[ROTATED]).ok();
    let second = current_version(&standin);
    assert_ne!(first, second);

    // Back to before the secret's rotation, which the API allows forced.
    let run = project
        .xtask(&standin, &["rollback", "--health-timeout", "5"])
        .ok()
        .json();
    assert_eq!(run["to"], first.as_str());
    assert_eq!(current_version(&standin), first);
    assert_eq!(
        standin
            .secret_value("edge-api-rc", "TIDB_DATABASE_URL")
            .as_deref(),
        Some(DATABASE_URL)
    );

    let refused = Run(project
        .command(&["destroy", "--yes"], "prd")
        .args(["--api-url", &standin.base_url()])
        .env("CLOUDFLARE_API_TOKEN", TOKEN)
        .output()
        .unwrap());
    assert_eq!(refused.code(), Some(1));
    assert!(
        refused.stderr().contains("refused for prd"),
        "{}",
        refused.stderr()
    );

    project.xtask(&standin, &["destroy", "--yes"]).ok();
    assert!(standin.current_deployment("edge-api-rc").is_none());
    assert!(standin.pages_project("edge-web-rc").is_none());
    assert!(
        !standin.dns_records(ZONE_ID).iter().any(|r| r["comment"]
            .as_str()
            .is_some_and(|c| c.contains("cargo xtask deploy"))),
        "managed records are gone"
    );
    assert_every_request_valid(&standin);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_descriptions_and_planted_secrets_stop_before_any_api_call() {
    let standin = standin().await;
    let project = Project::new("invalid");
    let path = project.dir.join("deploy.toml");
    let good = std::fs::read_to_string(&path).unwrap();

    std::fs::write(
        &path,
        good.replace("name = \"edge-api-{env}\"", "name = \"Edge_API\"")
            .replace("zone = \"example.com\"", "zone = \"not a zone\""),
    )
    .unwrap();
    let run = project.deploy(&standin, &[]).no_secrets();
    assert_eq!(run.code(), Some(1));
    for named in ["cloudflare.zone", "worker.name"] {
        assert!(run.stderr().contains(named), "{named}: {}", run.stderr());
    }

    let planted = "K003aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456";
    std::fs::write(
        &path,
        good.replace(
            "[worker.vars]\n",
            &format!("[worker.vars]\nB2_APPLICATION_KEY = \"{planted}\"\n"),
        ),
    )
    .unwrap();
    let run = project.deploy(&standin, &[]);
    assert_eq!(run.code(), Some(1));
    assert!(
        run.stderr().contains("worker.vars.B2_APPLICATION_KEY"),
        "{}",
        run.stderr()
    );
    assert!(
        run.stderr().contains("looks like a secret"),
        "{}",
        run.stderr()
    );
    assert!(!run.stderr().contains(planted) && !run.stdout().contains(planted));

    assert_eq!(standin.request_count(), 0, "nothing reached the API");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_listed_by_name_and_set_from_standard_input() {
    // No API is involved: secrets are listed and set locally.
    let project = Project::new("secrets");
    let listed = Run(project
        .command(&["--json", "secrets"], "rc")
        .env("EDGE_API_RC_TIDB_DATABASE_URL", DATABASE_URL)
        .output()
        .unwrap())
    .ok()
    .json();
    let line = |name: &str| {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} not listed: {listed}"))
    };
    assert_eq!(line("TIDB_DATABASE_URL")["source"], "process-environment");
    assert_eq!(line("ACCESS_CLIENT_SECRET")["source"], Value::Null);
    assert_eq!(
        line("ACCESS_CLIENT_SECRET")["variable"],
        "EDGE_API_RC_ACCESS_CLIENT_SECRET"
    );

    let mut child = project
        .command(&["secrets", "--set", "ACCESS_CLIENT_SECRET"], "rc")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"from-stdin-s3cret\n")
        .unwrap();
    let output = Run(child.wait_with_output().unwrap());
    assert_eq!(output.code(), Some(0), "{}", output.stderr());
    assert!(!output.stderr().contains("from-stdin-s3cret"));
    let env_file = project.dir.join(".env.rc");
    assert!(std::fs::read_to_string(&env_file)
        .unwrap()
        .contains("ACCESS_CLIENT_SECRET=from-stdin-s3cret"));
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&env_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let refused = project
        .command(&["secrets", "--set", "NOT_A_SECRET"], "rc")
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("NOT_A_SECRET is not a secret of rc"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gradual_deploy_splits_traffic_and_the_next_one_completes_it() {
    let standin = standin().await;
    let project = Project::new("gradual");
    project.deploy(&standin, &[]).ok();
    let old = current_version(&standin);

    project.describe("rc-canary");
    project.deploy(&standin, &["--percent", "10"]).ok();
    let shares = current_shares(&standin);
    assert_eq!(shares.len(), 2, "{shares:?}");
    let new = shares.iter().find(|(id, _)| *id != old).unwrap().clone();
    assert_eq!(new.1, 10.0);
    assert!(shares.contains(&(old.clone(), 90.0)), "{shares:?}");

    // Raising its share keeps the split with the old version, and settles.
    project.deploy(&standin, &["--percent", "20"]).ok();
    assert_eq!(
        current_shares(&standin),
        [(new.0.clone(), 20.0), (old.clone(), 80.0)]
    );
    let again = project.deploy(&standin, &["--percent", "20"]).ok().json();
    assert_eq!(again["api_writes"], 0, "{again}");

    // The plan of a plain deploy now is to move the new version to 100%,
    // without uploading anything again.
    let plan = project.plan(&standin).json();
    assert_eq!(
        changes(&plan),
        [("update".into(), "worker".into(), "edge-api-rc".into())]
    );
    assert_eq!(plan["changes"][0]["fields"][0]["field"], "traffic");
    assert_eq!(plan["changes"][0]["fields"][0]["after"], "\"100%\"");
    standin.reset_counters();
    project.deploy(&standin, &[]).ok();
    assert!(
        !standin
            .requests()
            .iter()
            .any(|r| r.write && r.path.ends_with("/versions")),
        "no second upload"
    );
    assert_eq!(current_version(&standin), new.0);
    assert_every_request_valid(&standin);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_that_loses_its_lock_during_the_health_checks_does_not_roll_back() {
    let standin = standin().await;
    let project = Project::new("lost");
    project.deploy(&standin, &[]).ok();
    let good = current_version(&standin);

    project.describe("rc-broken");
    standin.set_host_healthy("rc-api.example.com", false);
    standin.reset_counters();
    let renew_every_step = [("EDGE_API_DEPLOY_LOCK_RENEW_SECS", "0")];
    let bundle = project.dir.join("bundle");
    let deploy_args = [
        "deploy",
        "--skip-migrations",
        "--health-timeout",
        "5",
        "--bundle",
        bundle.to_str().unwrap(),
    ];
    let client = reqwest::Client::new();
    let stopped = std::thread::scope(|scope| {
        let run = scope.spawn(|| project.xtask_with(&standin, &deploy_args, &renew_every_step));
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(async {
                // The eighth renewal comes before the health checks (see
                // a_running_deploy_renews_its_lock_and_stops_when_it_is_taken_away);
                // the lock is broken while they wait on the unhealthy API.
                let renewals = || {
                    standin
                        .requests()
                        .iter()
                        .filter(|r| {
                            r.operation.as_deref()
                                == Some("dns-records-for-a-zone-patch-dns-record")
                        })
                        .count()
                };
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
                while renewals() < 8 {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "{:#?}",
                        standin.requests()
                    );
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                take_the_lock_away(&standin, &client).await;
            })
        });
        run.join().unwrap()
    });
    let stopped = stopped.no_secrets();
    assert_eq!(stopped.code(), Some(1), "{}", stopped.stderr());
    for says in [
        "health checks failed",
        "the Worker was not rolled back",
        "the deploy lock was taken from this deploy",
    ] {
        assert!(
            stopped.stderr().contains(says),
            "{says}: {}",
            stopped.stderr()
        );
    }
    // The Worker is as the deploy left it: the broken version, not the
    // previous one (another deploy may hold the environment now).
    assert_ne!(current_version(&standin), good);
    assert!(lock_records(&standin).is_empty());
    assert_every_request_valid(&standin);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pages_rollback_behind_the_tools_back_is_drift() {
    let standin = standin().await;
    let project = Project::new("pages-rollback");
    project.deploy(&standin, &[]).ok();
    let canonical = |standin: &StandIn| {
        standin.pages_project("edge-web-rc").unwrap()["canonical_deployment"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let first = canonical(&standin);
    std::fs::write(
        project.dir.join("sites/web/index.html"),
        "<!doctype html><title>web, second</title>\n",
    )
    .unwrap();
    project.deploy(&standin, &[]).ok();
    let second = canonical(&standin);
    assert_ne!(first, second);
    assert_eq!(changes(&project.plan(&standin).ok().json()), []);

    // Someone rolls production back to the first site: the newest
    // deployment is still the second, but production serves the first.
    let rolled = reqwest::Client::new()
        .post(format!(
            "{}/accounts/{ACCOUNT}/pages/projects/edge-web-rc/deployments/{first}/rollback",
            standin.base_url()
        ))
        .bearer_auth(TOKEN)
        .json(&Value::Null)
        .send()
        .await
        .unwrap();
    assert!(
        rolled.status().is_success(),
        "{}",
        rolled.text().await.unwrap()
    );
    let project_view = standin.pages_project("edge-web-rc").unwrap();
    assert_eq!(project_view["latest_deployment"]["id"], second.as_str());
    assert_eq!(project_view["canonical_deployment"]["id"], first.as_str());

    let drift = project.plan(&standin);
    assert_eq!(drift.code(), Some(2), "{}", drift.stderr());
    assert_eq!(
        changes(&drift.json()),
        [("update".into(), "pages-site".into(), "edge-web-rc".into())]
    );
    project.deploy(&standin, &[]).ok();
    let third = canonical(&standin);
    assert!(third != first && third != second, "a new upload serves");
    assert_converged(&project, &standin);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_account_is_reported_as_such_and_nothing_is_written() {
    let standin = standin().await;
    let project = Project::new("wrong-account");
    let path = project.dir.join("deploy.toml");
    let wrong = "0123456789abcdef0123456789abcdef";
    let good = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, good.replace(ACCOUNT, wrong)).unwrap();

    // Cloudflare answers 7003 for every path under an account the token
    // cannot reach: that is no empty account to plan creations into.
    let plan = project.plan(&standin).no_secrets();
    assert_eq!(plan.code(), Some(1), "{}", plan.stderr());
    assert!(
        plan.stderr().contains("could not route") && plan.stderr().contains("account_id"),
        "{}",
        plan.stderr()
    );
    assert!(!plan.stdout().contains("\"create\""), "{}", plan.stdout());

    let deploy = project.deploy(&standin, &[]).no_secrets();
    assert_eq!(deploy.code(), Some(1), "{}", deploy.stderr());
    assert!(
        deploy.stderr().contains("could not route"),
        "{}",
        deploy.stderr()
    );
    let writes: Vec<String> = standin
        .requests()
        .into_iter()
        .filter(|r| r.write)
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(writes, Vec::<String>::new(), "no lock, nothing created");
    assert!(lock_records(&standin).is_empty());
}
