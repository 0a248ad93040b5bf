//! The API Worker: its code, settings and secrets as one version, the
//! deployment that sends traffic to it, and its custom domain.
//!
//! What is deployed is read from the newest version of the current
//! deployment: its bindings (plain settings by value, secrets by name), its
//! compatibility date, and two things this tool leaves on every version so
//! a later plan can compare without downloading code or secrets: the
//! bundle's digest as the version tag (`workers/tag`), and the secrets'
//! digests in the plain setting `DEPLOY_SECRET_DIGESTS`.
//!
//! The script is created with one upload (which also deploys it); later
//! changes are a new version and then a deployment, at 100% or, with
//! `--percent`, split with the stable version serving now (see
//! [`shares`]).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use cloudflare::workers::{
    Annotations, AttachDomain, CreateDeployment, Deployment, ListDomains, ModuleKind,
    UploadMetadata, WorkerBinding, WorkerDomain, WorkerModule, WorkerUpload, WorkerVersion,
};
use cloudflare::{Client, Sensitive};
use sha2::{Digest, Sha256};

use super::plan::{Field, Fields, Plan};

/// The plain setting that carries the secrets' digests.
pub const SECRET_DIGESTS: &str = "DEPLOY_SECRET_DIGESTS";

/// The modules of a `wrangler deploy --dry-run` output, main module first.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub modules: Vec<WorkerModule>,
    /// Short digest of every module's name and bytes: the version tag.
    pub digest: String,
}

impl Bundle {
    pub fn load(dir: &Path) -> anyhow::Result<Bundle> {
        let mut modules = Vec::new();
        let mut hash = Sha256::new();
        for (name, kind) in crate::build::bundle_modules(dir)? {
            let bytes =
                std::fs::read(dir.join(&name)).with_context(|| format!("reading {name}"))?;
            hash.update((name.len() as u64).to_le_bytes());
            hash.update(name.as_bytes());
            hash.update((bytes.len() as u64).to_le_bytes());
            hash.update(&bytes);
            let kind = if kind == "wasm" {
                ModuleKind::Wasm
            } else {
                ModuleKind::EsModule
            };
            modules.push(WorkerModule::new(name, kind, bytes));
        }
        let digest = hash.finalize()[..10]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Bundle { modules, digest })
    }
}

/// The Worker as the description and the build want it.
#[derive(Debug, Clone)]
pub struct Desired {
    pub script: String,
    pub hostname: String,
    pub compatibility_date: String,
    /// Cron Triggers, sorted.
    pub crons: Vec<String>,
    /// `None`: waits on Access (known once it is provisioned).
    pub vars: BTreeMap<String, Option<String>>,
    /// Value and digest of each secret.
    pub secrets: BTreeMap<String, (Sensitive, String)>,
    pub bundle: Bundle,
    /// Share of traffic for the new version (100 unless `--percent`).
    pub percent: f64,
}

#[derive(Debug, Clone, Default)]
pub struct Live {
    /// The current deployment; `None` when the script does not exist.
    pub deployment: Option<Deployment>,
    /// The newest version of that deployment, and its share of traffic.
    pub version: Option<(WorkerVersion, f64)>,
    /// The version serving before it (a rollback target).
    pub previous_version: Option<String>,
    pub domain: Option<WorkerDomain>,
    /// Custom domains on this hostname that belong to another Worker.
    pub foreign_domain: Option<WorkerDomain>,
    /// The script's Cron Triggers, sorted; `None` when the script does not
    /// exist.
    pub crons: Option<Vec<String>>,
}

pub async fn read(
    client: &Client,
    account: &str,
    script: &str,
    hostname: &str,
) -> anyhow::Result<Live> {
    let api = client.workers(account);
    let mut live = Live::default();
    match api.list_deployments(script).await {
        Ok(mut deployments) => {
            // Newest first, as the API lists them (the sort is stable, so
            // deployments of the same second keep the API's order).
            deployments.sort_by(|a, b| b.created_on.cmp(&a.created_on));
            if let Some(current) = deployments.first().cloned() {
                let mut newest: Option<(WorkerVersion, f64)> = None;
                for entry in &current.versions {
                    let version = api.get_version(script, &entry.version_id).await?;
                    // Version numbers grow with every upload.
                    let newer = newest
                        .as_ref()
                        .is_none_or(|(n, _)| version.number > n.number);
                    if newer {
                        newest = Some((version, entry.percentage));
                    }
                }
                live.previous_version = deployments
                    .iter()
                    .skip(1)
                    .flat_map(|d| d.versions.iter())
                    .map(|v| v.version_id.clone())
                    .find(|id| newest.as_ref().is_none_or(|(n, _)| &n.id != id));
                live.version = newest;
                live.deployment = Some(current);
                let mut crons: Vec<String> = api
                    .get_schedules(script)
                    .await?
                    .into_iter()
                    .map(|s| s.cron)
                    .collect();
                crons.sort();
                live.crons = Some(crons);
            }
        }
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e.into()),
    }
    for domain in api
        .list_domains(&ListDomains {
            hostname: Some(hostname.to_owned()),
            ..Default::default()
        })
        .await?
    {
        if domain.service == script {
            live.domain = Some(domain);
        } else {
            live.foreign_domain = Some(domain);
        }
    }
    Ok(live)
}

fn desired_fields(desired: &Desired) -> Fields {
    let mut fields = Fields::new();
    fields.insert("code".into(), Field::plain(&desired.bundle.digest));
    fields.insert(
        "compatibility_date".into(),
        Field::plain(&desired.compatibility_date),
    );
    for (name, value) in &desired.vars {
        fields.insert(
            format!("vars.{name}"),
            value.as_ref().map_or(Field::Pending, Field::plain),
        );
    }
    for (name, (_, digest)) in &desired.secrets {
        fields.insert(
            format!("secrets.{name}"),
            Field::Secret(Some(digest.clone())),
        );
    }
    fields.insert(
        "traffic".into(),
        Field::plain(format!("{}%", desired.percent)),
    );
    fields
}

fn bindings_of(version: &WorkerVersion) -> Vec<serde_json::Value> {
    version
        .resources
        .as_ref()
        .and_then(|r| r["bindings"].as_array().cloned())
        .unwrap_or_default()
}

fn live_fields(version: &WorkerVersion, percent: f64) -> Fields {
    let mut fields = Fields::new();
    let tag = version
        .annotations
        .as_ref()
        .and_then(|a| a.tag.clone())
        .unwrap_or_else(|| "(not deployed by this tool)".into());
    fields.insert("code".into(), Field::plain(tag));
    let date = version
        .resources
        .as_ref()
        .and_then(|r| r["script_runtime"]["compatibility_date"].as_str())
        .unwrap_or_default();
    fields.insert("compatibility_date".into(), Field::plain(date));
    let bindings = bindings_of(version);
    let digests: BTreeMap<String, String> = bindings
        .iter()
        .find(|b| b["name"] == SECRET_DIGESTS)
        .and_then(|b| serde_json::from_str(b["text"].as_str()?).ok())
        .unwrap_or_default();
    for binding in &bindings {
        let Some(name) = binding["name"].as_str() else {
            continue;
        };
        match binding["type"].as_str() {
            Some("plain_text") if name != SECRET_DIGESTS => {
                fields.insert(
                    format!("vars.{name}"),
                    Field::plain(binding["text"].as_str().unwrap_or_default()),
                );
            }
            Some("secret_text") => {
                fields.insert(
                    format!("secrets.{name}"),
                    Field::Secret(digests.get(name).cloned()),
                );
            }
            _ => {}
        }
    }
    fields.insert("traffic".into(), Field::plain(format!("{percent}%")));
    fields
}

/// The triggers as one field (`a; b`): a change shows both whole lists.
fn cron_fields(crons: &[String]) -> Fields {
    let mut fields = Fields::new();
    fields.insert("crons".into(), Field::plain(crons.join("; ")));
    fields
}

pub fn plan(plan: &mut Plan, desired: &Desired, live: &Live) {
    plan.compare(
        "worker",
        &desired.script,
        live.version
            .as_ref()
            .map(|(v, p)| live_fields(v, *p))
            .as_ref(),
        Some(&desired_fields(desired)),
    );
    let domain_fields = |service: &str| {
        let mut f = Fields::new();
        f.insert("service".into(), Field::plain(service));
        f
    };
    plan.compare(
        "worker-domain",
        &desired.hostname,
        live.domain
            .as_ref()
            .or(live.foreign_domain.as_ref())
            .map(|d| domain_fields(&d.service))
            .as_ref(),
        Some(&domain_fields(&desired.script)),
    );
    // A resource of its own: triggers belong to the script, not to a
    // version, and changing them needs no upload.
    let live_crons = live.crons.as_deref().filter(|c| !c.is_empty());
    if live_crons.is_some() || !desired.crons.is_empty() {
        plan.compare(
            "worker-crons",
            &desired.script,
            live_crons.map(cron_fields).as_ref(),
            (!desired.crons.is_empty())
                .then(|| cron_fields(&desired.crons))
                .as_ref(),
        );
    }
}

/// Whether a plan's change of the Worker needs a new version (anything but
/// the traffic share differs).
fn needs_upload(plan: &Plan, script: &str) -> bool {
    plan.change("worker", script).is_some_and(|c| {
        c.action == super::plan::Action::Create || c.fields.iter().any(|f| f.field != "traffic")
    })
}

/// What a deploy did to the Worker, for the health check and rollback.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    /// The version now deployed, if this run deployed one.
    pub deployed: Option<String>,
    /// The deployment serving before, to roll back to: its versions and
    /// shares as they were (its newest version alone may be the canary, or
    /// the very version that failed).
    pub previous: Option<Vec<(String, f64)>>,
}

impl Applied {
    fn before(live: &Live) -> Applied {
        Applied {
            deployed: None,
            previous: live.deployment.as_ref().map(|d| {
                d.versions
                    .iter()
                    .map(|v| (v.version_id.clone(), v.percentage))
                    .collect()
            }),
        }
    }
}

/// The shares of a deployment giving `version` `percent` of traffic. The
/// rest goes to the stable version of the live deployment: the one that is
/// not its newest (the canary), else its only one. So raising a canary's
/// share keeps its split with the same stable version, and new code during
/// a canary replaces the canary.
fn shares(live: &Live, version: &str, percent: f64) -> Vec<(String, f64)> {
    let newest = live.version.as_ref().map(|(v, _)| v.id.as_str());
    let serving = live.deployment.iter().flat_map(|d| &d.versions);
    let stable = serving
        .map(|v| v.version_id.as_str())
        .find(|id| Some(*id) != newest)
        .or(newest);
    match stable {
        Some(stable) if percent < 100.0 && stable != version => vec![
            (version.to_owned(), percent),
            (stable.to_owned(), 100.0 - percent),
        ],
        _ => vec![(version.to_owned(), 100.0)],
    }
}

/// A deployment's shares for a message: `a (10%), b (90%)`.
pub fn describe(shares: &[(String, f64)]) -> String {
    shares
        .iter()
        .map(|(id, percent)| format!("{id} ({percent}%)"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub async fn apply(
    client: &Client,
    account: &str,
    zone_id: &str,
    desired: &Desired,
    live: &Live,
    changes: &Plan,
    env: &str,
) -> anyhow::Result<Applied> {
    let api = client.workers(account);
    let mut applied = Applied::before(live);
    if changes.change("worker", &desired.script).is_some() {
        let vars: Vec<(String, String)> = desired
            .vars
            .iter()
            .map(|(name, value)| {
                value
                    .clone()
                    .map(|v| (name.clone(), v))
                    .with_context(|| format!("{name} waits on Access, which was not provisioned"))
            })
            .collect::<anyhow::Result<_>>()?;
        let digests: BTreeMap<&String, &String> =
            desired.secrets.iter().map(|(n, (_, d))| (n, d)).collect();
        let mut bindings: Vec<WorkerBinding> = vars
            .into_iter()
            .map(|(name, text)| WorkerBinding::plain_text(name, text))
            .collect();
        bindings.push(WorkerBinding::plain_text(
            SECRET_DIGESTS,
            serde_json::to_string(&digests)?,
        ));
        bindings.extend(
            desired
                .secrets
                .iter()
                .map(|(name, (value, _))| WorkerBinding::secret_text(name, value.clone())),
        );
        let mut metadata = UploadMetadata::new(desired.bundle.modules[0].name.clone());
        metadata.bindings = bindings;
        metadata.compatibility_date = Some(desired.compatibility_date.clone());
        metadata.annotations = Some(Annotations {
            message: Some(format!("cargo xtask deploy --env {env}")),
            tag: Some(desired.bundle.digest.clone()),
            triggered_by: None,
        });
        let upload = WorkerUpload {
            metadata,
            modules: desired.bundle.modules.clone(),
        };
        let version_id = if live.deployment.is_none() {
            // Creating the script deploys its first version at 100%.
            api.upload_script(&desired.script, &upload).await?;
            let deployments = api.list_deployments(&desired.script).await?;
            deployments
                .first()
                .and_then(|d| d.versions.first())
                .map(|v| v.version_id.clone())
                .context("the new script has no deployment")?
        } else {
            let version_id = if needs_upload(changes, &desired.script) {
                api.upload_version(&desired.script, &upload).await?.id
            } else {
                live.version
                    .as_ref()
                    .map(|(v, _)| v.id.clone())
                    .context("no version to shift traffic to")?
            };
            let deployment = CreateDeployment::split(shares(live, &version_id, desired.percent))
                .message(format!("cargo xtask deploy --env {env}"));
            api.create_deployment(&desired.script, &deployment).await?;
            version_id
        };
        applied.deployed = Some(version_id);
    }
    if changes.change("worker-crons", &desired.script).is_some() {
        api.put_schedules(&desired.script, &desired.crons).await?;
    }
    if changes.change("worker-domain", &desired.hostname).is_some() {
        if let Some(foreign) = &live.foreign_domain {
            anyhow::bail!(
                "{} is the custom domain of the Worker {:?}; detach it there first",
                foreign.hostname,
                foreign.service
            );
        }
        let mut attach = AttachDomain::new(&desired.hostname, &desired.script);
        attach.zone_id = Some(zone_id.to_owned());
        api.attach_domain(&attach).await?;
    }
    Ok(applied)
}

/// Deploys `versions` at their shares (a rollback). Forced: the API
/// refuses to go back to a version older than a secret change without it
/// (code 10220), and going back, old secrets included, is what a rollback
/// is for.
pub async fn roll_back(
    client: &Client,
    account: &str,
    script: &str,
    versions: Vec<(String, f64)>,
    why: &str,
) -> anyhow::Result<()> {
    client
        .workers(account)
        .create_deployment_forced(script, &CreateDeployment::split(versions).message(why))
        .await?;
    Ok(())
}

pub async fn destroy(
    client: &Client,
    account: &str,
    script: &str,
    live: &Live,
) -> anyhow::Result<()> {
    let api = client.workers(account);
    if let Some(domain) = &live.domain {
        api.detach_domain(&domain.id).await?;
    }
    if live.deployment.is_some() {
        api.delete_script(script, true).await?;
    }
    Ok(())
}

pub fn plan_destroy(plan: &mut Plan, script: &str, live: &Live) {
    // Deleting the script takes its triggers with it.
    if let Some(crons) = live.crons.as_deref().filter(|c| !c.is_empty()) {
        plan.compare("worker-crons", script, Some(&cron_fields(crons)), None);
    }
    if let Some(domain) = &live.domain {
        let mut f = Fields::new();
        f.insert("service".into(), Field::plain(&domain.service));
        plan.compare("worker-domain", &domain.hostname, Some(&f), None);
    }
    if let Some((version, percent)) = &live.version {
        plan.compare(
            "worker",
            script,
            Some(&live_fields(version, *percent)),
            None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A live Worker whose current deployment is `shares`, each version
    /// numbered by its place in `numbers`.
    fn live(shares: &[(&str, f64)], numbers: &[&str]) -> Live {
        let number = |id: &str| numbers.iter().position(|n| *n == id).unwrap() + 1;
        let deployment: Deployment = serde_json::from_value(serde_json::json!({
            "id": "d",
            "versions": shares
                .iter()
                .map(|(id, p)| serde_json::json!({"version_id": id, "percentage": p}))
                .collect::<Vec<_>>(),
        }))
        .unwrap();
        let (newest, percent) = shares
            .iter()
            .max_by_key(|(id, _)| number(id))
            .copied()
            .unwrap();
        let version: WorkerVersion =
            serde_json::from_value(serde_json::json!({"id": newest, "number": number(newest)}))
                .unwrap();
        Live {
            deployment: Some(deployment),
            version: Some((version, percent)),
            ..Live::default()
        }
    }

    fn owned(shares: &[(&str, f64)]) -> Vec<(String, f64)> {
        shares.iter().map(|(id, p)| (id.to_string(), *p)).collect()
    }

    #[test]
    fn a_canary_is_split_with_the_version_serving() {
        let live = live(&[("stable", 100.0)], &["stable", "canary"]);
        assert_eq!(
            shares(&live, "canary", 10.0),
            owned(&[("canary", 10.0), ("stable", 90.0)])
        );
        assert_eq!(shares(&live, "canary", 100.0), owned(&[("canary", 100.0)]));
    }

    #[test]
    fn raising_a_canarys_share_keeps_it_split_with_the_stable_version() {
        // In the order this tool deploys, and in the other.
        for order in [
            [("canary", 10.0), ("stable", 90.0)],
            [("stable", 90.0), ("canary", 10.0)],
        ] {
            let live = live(&order, &["stable", "canary"]);
            assert_eq!(
                shares(&live, "canary", 20.0),
                owned(&[("canary", 20.0), ("stable", 80.0)])
            );
            assert_eq!(shares(&live, "canary", 100.0), owned(&[("canary", 100.0)]));
        }
    }

    #[test]
    fn new_code_during_a_canary_is_split_with_the_stable_version() {
        let live = live(
            &[("canary", 10.0), ("stable", 90.0)],
            &["stable", "canary", "next"],
        );
        assert_eq!(
            shares(&live, "next", 10.0),
            owned(&[("next", 10.0), ("stable", 90.0)])
        );
    }

    #[test]
    fn a_rollback_restores_the_previous_deployment_as_it_was() {
        let canary = live(&[("canary", 10.0), ("stable", 90.0)], &["stable", "canary"]);
        assert_eq!(
            Applied::before(&canary).previous,
            Some(owned(&[("canary", 10.0), ("stable", 90.0)]))
        );
        let single = live(&[("stable", 100.0)], &["stable"]);
        assert_eq!(
            Applied::before(&single).previous,
            Some(owned(&[("stable", 100.0)]))
        );
        assert_eq!(Applied::before(&Live::default()).previous, None);
    }

    #[test]
    fn shares_are_described_with_their_percentages() {
        assert_eq!(
            describe(&owned(&[("a", 10.0), ("b", 90.0)])),
            "a (10%), b (90%)"
        );
    }
}
