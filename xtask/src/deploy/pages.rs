//! Pages projects: the project with its settings (plain variables, secrets,
//! the `API` service binding to the environment's Worker), its custom
//! domain, and its site, uploaded with `wrangler pages deploy`.
//!
//! Production and preview deployments get the same settings, so a preview
//! of a branch calls the same environment's API. Secrets are compared by
//! the digests kept in the plain variable `DEPLOY_SECRET_DIGESTS`; the site
//! by a digest of its files, kept in the deployment's commit message.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;
use cloudflare::pages::{
    CreateProject, DeploymentConfig, DeploymentConfigs, EnvVar, PagesDeployment, PagesDomain,
    PagesProject, ServiceBinding, UpdateProject,
};
use cloudflare::{Client, Sensitive};
use sha2::{Digest, Sha256};

use super::plan::{Action, Field, Fields, Plan};
use super::worker::SECRET_DIGESTS;

/// The service binding's name in every project: the shim calls `env.API`.
pub const BINDING: &str = "API";

#[derive(Debug, Clone)]
pub struct Desired {
    pub project: String,
    pub hostname: String,
    pub production_branch: String,
    pub compatibility_date: String,
    /// The Worker the `API` binding points at; `None` for a project
    /// without the binding (a static site).
    pub script: Option<String>,
    pub vars: BTreeMap<String, String>,
    pub secrets: BTreeMap<String, (Sensitive, String)>,
    /// The site this tool uploads; `None` for a project whose deployments
    /// come from elsewhere (the tool keeps its settings, domain and DNS).
    pub site: Option<PathBuf>,
    /// `None` when there is no site, or its directory does not exist (yet).
    pub site_digest: Option<String>,
}

/// A project as read; what production serves is the project's
/// `canonical_deployment`.
#[derive(Debug, Clone, Default)]
pub struct Live {
    pub project: Option<PagesProject>,
    pub domains: Vec<PagesDomain>,
}

/// A digest of every file under `dir` (paths and bytes), or `None` when
/// there is no such directory.
pub fn site_digest(dir: &Path) -> anyhow::Result<Option<String>> {
    if !dir.is_dir() {
        return Ok(None);
    }
    let mut files = Vec::new();
    collect(dir, dir, &mut files)?;
    files.sort();
    let mut hash = Sha256::new();
    for relative in files {
        let bytes = std::fs::read(dir.join(&relative))?;
        hash.update(relative.as_bytes());
        hash.update([0]);
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(&bytes);
    }
    Ok(Some(
        hash.finalize()[..10]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    ))
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<String>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(root, &path, out)?;
        } else {
            let relative = path.strip_prefix(root).expect("under root");
            out.push(relative.to_string_lossy().replace('\\', "/"));
        }
    }
    Ok(())
}

pub async fn read(client: &Client, account: &str, project: &str) -> anyhow::Result<Live> {
    let api = client.pages(account);
    let project = match api.get_project(project).await {
        Ok(p) => p,
        Err(e) if e.is_not_found() => return Ok(Live::default()),
        Err(e) => return Err(e.into()),
    };
    let domains = api.list_domains(&project.name).await?;
    Ok(Live {
        project: Some(project),
        domains,
    })
}

fn project_fields(desired: &Desired) -> Fields {
    let mut f = Fields::new();
    f.insert(
        "production_branch".into(),
        Field::plain(&desired.production_branch),
    );
    f.insert(
        "compatibility_date".into(),
        Field::plain(&desired.compatibility_date),
    );
    if let Some(script) = &desired.script {
        f.insert(format!("services.{BINDING}"), Field::plain(script));
    }
    for (name, value) in &desired.vars {
        f.insert(format!("vars.{name}"), Field::plain(value));
    }
    for (name, (_, digest)) in &desired.secrets {
        f.insert(
            format!("secrets.{name}"),
            Field::Secret(Some(digest.clone())),
        );
    }
    f
}

fn live_project_fields(project: &PagesProject) -> Fields {
    let mut f = Fields::new();
    f.insert(
        "production_branch".into(),
        Field::plain(project.production_branch.clone().unwrap_or_default()),
    );
    let production = project
        .deployment_configs
        .as_ref()
        .and_then(|c| c.production.clone())
        .unwrap_or_default();
    f.insert(
        "compatibility_date".into(),
        Field::plain(production.compatibility_date.clone().unwrap_or_default()),
    );
    for (name, binding) in production.services.clone().unwrap_or_default() {
        if let Some(binding) = binding {
            f.insert(format!("services.{name}"), Field::plain(binding.service));
        }
    }
    let vars = production.env_vars.clone().unwrap_or_default();
    let digests: BTreeMap<String, String> = match vars.get(SECRET_DIGESTS) {
        Some(Some(EnvVar::PlainText { value })) => serde_json::from_str(value).unwrap_or_default(),
        _ => BTreeMap::new(),
    };
    for (name, var) in vars {
        match var {
            Some(EnvVar::PlainText { value }) if name != SECRET_DIGESTS => {
                f.insert(format!("vars.{name}"), Field::plain(value));
            }
            Some(EnvVar::SecretText { .. }) => {
                f.insert(
                    format!("secrets.{name}"),
                    Field::Secret(digests.get(&name).cloned()),
                );
            }
            _ => {}
        }
    }
    f
}

fn one(name: &str, value: &str) -> Fields {
    let mut f = Fields::new();
    f.insert(name.into(), Field::plain(value));
    f
}

/// The commit message a site upload carries, and how its digest is found.
fn site_message(digest: &str) -> String {
    format!("site {digest}")
}

fn deployed_site(deployment: &PagesDeployment) -> Option<String> {
    let message = deployment.deployment_trigger.as_ref()?["metadata"]["commit_message"].as_str()?;
    message.strip_prefix("site ").map(str::to_owned)
}

pub fn plan(plan: &mut Plan, desired: &Desired, live: &Live) {
    plan.compare(
        "pages-project",
        &desired.project,
        live.project.as_ref().map(live_project_fields).as_ref(),
        Some(&project_fields(desired)),
    );
    let has_domain = live.domains.iter().any(|d| d.name == desired.hostname);
    plan.compare(
        "pages-domain",
        &desired.hostname,
        has_domain
            .then(|| one("project", &desired.project))
            .as_ref(),
        Some(&one("project", &desired.project)),
    );
    let Some(site) = &desired.site else {
        // Deployed by someone else: whatever is there is theirs.
        return;
    };
    // What production serves: the canonical deployment, not the newest one
    // (which may have failed, or been rolled back from).
    let live_site = live
        .project
        .as_ref()
        .and_then(|p| p.canonical_deployment.as_ref())
        .map(|d| deployed_site(d).unwrap_or_else(|| "(not deployed by this tool)".into()));
    let want = desired
        .site_digest
        .clone()
        .unwrap_or_else(|| format!("(missing: {})", site.display()));
    plan.compare(
        "pages-site",
        &desired.project,
        live_site.map(|s| one("files", &s)).as_ref(),
        Some(&one("files", &want)),
    );
}

/// The settings of one environment of a project; `removed` names the vars,
/// secrets and service bindings the live project has and the description
/// dropped.
fn config(desired: &Desired, removed: &[String]) -> DeploymentConfig {
    let mut env_vars: BTreeMap<String, Option<EnvVar>> = desired
        .vars
        .iter()
        .map(|(n, v)| (n.clone(), Some(EnvVar::plain(v))))
        .collect();
    for (name, (value, _)) in &desired.secrets {
        env_vars.insert(name.clone(), Some(EnvVar::secret(value.clone())));
    }
    let digests: BTreeMap<&String, &String> =
        desired.secrets.iter().map(|(n, (_, d))| (n, d)).collect();
    env_vars.insert(
        SECRET_DIGESTS.into(),
        Some(EnvVar::plain(
            serde_json::to_string(&digests).expect("strings serialise"),
        )),
    );
    // A PATCH merges: what the description dropped is removed with null.
    let mut services = BTreeMap::new();
    for field in removed {
        match field.split_once('.') {
            Some(("services", name)) => {
                services.insert(name.to_owned(), None);
            }
            Some((_, name)) => {
                env_vars.entry(name.to_owned()).or_insert(None);
            }
            None => {}
        }
    }
    if let Some(script) = &desired.script {
        services.insert(BINDING.to_owned(), Some(ServiceBinding::new(script)));
    }
    DeploymentConfig {
        env_vars: Some(env_vars),
        services: (!services.is_empty()).then_some(services),
        compatibility_date: Some(desired.compatibility_date.clone()),
        ..Default::default()
    }
}

/// How the site upload reaches Cloudflare: wrangler, with the deploy's
/// token, account and API address.
pub struct Uploader<'a> {
    pub wrangler: &'a Path,
    pub token: &'a Sensitive,
    pub account: &'a str,
    /// `Some` when the API is not api.cloudflare.com (the stand-in).
    pub api_base_url: Option<&'a str>,
}

pub async fn apply(
    client: &Client,
    account: &str,
    desired: &Desired,
    changes: &Plan,
    uploader: &Uploader<'_>,
) -> anyhow::Result<()> {
    let api = client.pages(account);
    if let Some(change) = changes.change("pages-project", &desired.project) {
        if change.action == Action::Create {
            api.create_project(&CreateProject {
                name: desired.project.clone(),
                production_branch: desired.production_branch.clone(),
                deployment_configs: Some(DeploymentConfigs {
                    preview: Some(config(desired, &[])),
                    production: Some(config(desired, &[])),
                }),
            })
            .await?;
        } else {
            let removed: Vec<String> = change
                .fields
                .iter()
                .filter(|f| f.after.is_none())
                .map(|f| f.field.clone())
                .collect();
            api.update_project(
                &desired.project,
                &UpdateProject {
                    production_branch: Some(desired.production_branch.clone()),
                    deployment_configs: Some(DeploymentConfigs {
                        preview: Some(config(desired, &removed)),
                        production: Some(config(desired, &removed)),
                    }),
                },
            )
            .await?;
        }
    }
    if changes.change("pages-domain", &desired.hostname).is_some() {
        match api.add_domain(&desired.project, &desired.hostname).await {
            Ok(_) => {}
            Err(e) if e.is_already_exists() => {}
            Err(e) => return Err(e.into()),
        }
    }
    if let (Some(site), Some(_)) = (
        &desired.site,
        changes.change("pages-site", &desired.project),
    ) {
        let digest = desired.site_digest.as_deref().with_context(|| {
            format!(
                "the site of {} is missing: {} does not exist",
                desired.project,
                site.display()
            )
        })?;
        upload_site(uploader, desired, site, digest)?;
    }
    Ok(())
}

/// `wrangler pages deploy`: uploads the files Cloudflare does not have yet
/// and creates the production deployment.
fn upload_site(
    uploader: &Uploader<'_>,
    desired: &Desired,
    site: &Path,
    digest: &str,
) -> anyhow::Result<()> {
    let mut command = Command::new(uploader.wrangler);
    command
        .args(["pages", "deploy"])
        .arg(site)
        .args(["--project-name", &desired.project])
        .args(["--branch", &desired.production_branch])
        .args(["--commit-message", &site_message(digest)])
        .arg("--commit-dirty=true")
        .current_dir(crate::project::root())
        .env("CLOUDFLARE_API_TOKEN", uploader.token.expose())
        .env("CLOUDFLARE_ACCOUNT_ID", uploader.account)
        .env("WRANGLER_SEND_METRICS", "false")
        .env("NO_COLOR", "1")
        .env("CI", "true");
    if let Some(base) = uploader.api_base_url {
        command.env("CLOUDFLARE_API_BASE_URL", base);
    }
    let output = command.output().context("running wrangler pages deploy")?;
    if !output.status.success() {
        // wrangler's output names files and errors, never the token (it is
        // passed in the environment), but it is scrubbed all the same.
        let text =
            String::from_utf8_lossy(&output.stderr).replace(uploader.token.expose(), "[token]");
        anyhow::bail!(
            "wrangler pages deploy of {} failed:\n{}",
            desired.project,
            crate::project::tail(&text, 20)
        );
    }
    Ok(())
}

pub fn plan_destroy(plan: &mut Plan, live: &Live) {
    if let Some(project) = &live.project {
        for domain in &live.domains {
            plan.compare(
                "pages-domain",
                &domain.name,
                Some(&one("project", &project.name)),
                None,
            );
        }
        plan.compare(
            "pages-project",
            &project.name,
            Some(&live_project_fields(project)),
            None,
        );
    }
}

pub async fn destroy(client: &Client, account: &str, live: &Live) -> anyhow::Result<()> {
    let api = client.pages(account);
    if let Some(project) = &live.project {
        for domain in &live.domains {
            api.delete_domain(&project.name, &domain.name).await?;
        }
        api.delete_project(&project.name).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desired(site_digest: &str) -> Desired {
        Desired {
            project: "web-rc".into(),
            hostname: "rc-www.example.com".into(),
            production_branch: "main".into(),
            compatibility_date: "2026-04-01".into(),
            script: None,
            vars: BTreeMap::new(),
            secrets: BTreeMap::new(),
            site: Some(PathBuf::from("sites/web")),
            site_digest: Some(site_digest.into()),
        }
    }

    /// A production deployment of site `digest` whose deploy stage ended
    /// with `status`.
    fn deployment(id: &str, digest: &str, status: &str) -> serde_json::Value {
        serde_json::json!({
            "id": id,
            "environment": "production",
            "latest_stage": {"name": "deploy", "status": status},
            "deployment_trigger": {"type": "ad_hoc", "metadata": {
                "branch": "main", "commit_message": site_message(digest),
            }},
        })
    }

    /// The project as Cloudflare returns it, with its newest deployment
    /// and the one production serves.
    fn live(latest: serde_json::Value, canonical: serde_json::Value) -> Live {
        let desired = desired("unused");
        let project = serde_json::json!({
            "name": desired.project,
            "production_branch": desired.production_branch,
            "deployment_configs": {
                "preview": config(&desired, &[]),
                "production": config(&desired, &[]),
            },
            "latest_deployment": latest,
            "canonical_deployment": canonical,
        });
        let mut live = Live::default();
        live.domains.push(PagesDomain {
            id: None,
            name: desired.hostname,
            status: Some("active".into()),
            zone_tag: None,
            created_on: None,
        });
        live.project = Some(serde_json::from_value(project).unwrap());
        live
    }

    fn site_change(live: &Live, want: &str) -> Option<(Action, Option<String>)> {
        let mut p = Plan::default();
        plan(&mut p, &desired(want), live);
        p.change("pages-site", "web-rc")
            .map(|c| (c.action, c.fields[0].before.clone()))
    }

    #[test]
    fn the_site_is_compared_with_what_production_serves() {
        let old = deployment("d1", "0ld", "success");
        let new = deployment("d2", "n3w", "success");
        // Deployed and serving: nothing to do.
        assert_eq!(site_change(&live(new.clone(), new.clone()), "n3w"), None);
        // Rolled back to an older deployment by someone: drift.
        assert_eq!(
            site_change(&live(new.clone(), old.clone()), "n3w"),
            Some((Action::Update, Some("\"0ld\"".into())))
        );
        // The newest deployment failed: production still serves the old.
        let failed = deployment("d3", "n3w", "failure");
        assert_eq!(
            site_change(&live(failed.clone(), old), "n3w"),
            Some((Action::Update, Some("\"0ld\"".into())))
        );
        // Nothing serves yet (the only deployment failed).
        assert_eq!(
            site_change(&live(failed, serde_json::Value::Null), "n3w"),
            Some((Action::Create, None))
        );
    }
}
