//! `cargo xtask plan | deploy | rollback | destroy | graph | secrets`: an
//! environment on Cloudflare as `deploy.toml` describes it.
//!
//! Every command reads the live state first and compares it with the
//! description (`plan.rs`); `deploy` then applies the difference in
//! dependency order: migrations, Access (the Worker needs its audience
//! tag), the Worker (version, deployment, custom domain), DNS, Pages
//! (project, domain, site). A deploy that finds nothing to change (no
//! pending migration, an empty plan) makes no write call. One that does
//! takes the environment's lock (`lock.rs`), migrates and plans again
//! under it, applies, checks health and rolls the Worker back if the
//! checks fail. Each step converges: a deploy interrupted anywhere
//! is finished by running it again.
//!
//! One module per kind of resource (`access`, `worker`, `dns`, `pages`),
//! each reading its live state, adding its changes to the plan, applying
//! them and destroying them.

mod access;
mod config;
mod dns;
mod graph;
mod health;
mod lock;
mod pages;
mod plan;
mod secrets;
mod worker;

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use cloudflare::{Client, ClientConfig, Sensitive};
use serde::Serialize;

use crate::flags::{self, Environment};
use crate::project;
use crate::ui::Ui;
use config::Resolved;
use plan::Plan;
use secrets::Secrets;

/// The API token's name among an environment's secrets.
const API_TOKEN: &str = "CLOUDFLARE_API_TOKEN";

/// Exit status of `plan` when there are changes (as `terraform plan
/// -detailed-exitcode`): 0 nothing to do, 1 error, 2 changes.
pub const EXIT_CHANGES: i32 = 2;

/// What one command works with: the resolved description, the secrets,
/// the API client and the zone.
struct Session {
    resolved: Resolved,
    /// The Worker's secrets (value and digest), and each Pages project as
    /// wanted, computed once per run: the sites are hashed and the secrets
    /// digested here, not on every plan.
    worker_secrets: BTreeMap<String, (Sensitive, String)>,
    pages: Vec<pages::Desired>,
    secrets: Secrets,
    client: Client,
    token: Sensitive,
    api_url: String,
    zone_id: String,
    runtime: tokio::runtime::Runtime,
}

/// Everything read from Cloudflare.
#[derive(Debug, Default)]
struct Live {
    access: Option<access::Live>,
    worker: worker::Live,
    dns: dns::Live,
    pages: Vec<pages::Live>,
}

impl Session {
    fn open(ui: &Ui, target: &flags::DeployTarget, need_secrets: bool) -> anyhow::Result<Session> {
        let config_path = resolve_path(&target.config);
        let resolved = load_description(&config_path, target.env)?;
        refuse_tracked_secrets(&config_path)?;
        let deployed = resolved.secret_names();
        let mut names = deployed.clone();
        names.extend([access::CLIENT_ID, access::CLIENT_SECRET, API_TOKEN]);
        let base = description_dir(&config_path);
        let secrets = Secrets::load(&base, target.env, &names)?;
        let token = std::env::var(API_TOKEN)
            .ok()
            .map(Sensitive::from)
            .or_else(|| secrets.get(API_TOKEN).cloned())
            .with_context(|| {
                format!(
                    "no Cloudflare API token: set {API_TOKEN} (or {}, or put it in {})",
                    secrets::variable(target.env, API_TOKEN),
                    secrets.env_file().display()
                )
            })?;
        if need_secrets {
            let missing = secrets.missing(deployed);
            if !missing.is_empty() {
                bail!(
                    "secrets without a value: {}. Set {} or put NAME=value lines in {}",
                    missing.join(", "),
                    missing
                        .iter()
                        .map(|n| secrets::variable(target.env, n))
                        .collect::<Vec<_>>()
                        .join(", "),
                    secrets.env_file().display()
                );
            }
        }
        // A rate-limit lockout can hold a call for minutes: say so.
        let notices = *ui;
        let client = Client::new(
            ClientConfig::new(token.clone())
                .base_url(target.api_url.trim_end_matches('/'))
                .on_wait(move |line| notices.info(line)),
        )?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let zone = resolved.zone.clone();
        let zone_id = ui.step(&format!("find the zone {zone}"), || {
            runtime.block_on(async {
                let zone = client
                    .zones()
                    .find_by_name(&zone)
                    .await?
                    .with_context(|| format!("the token sees no zone {zone}"))?;
                Ok(zone.id)
            })
        })?;
        let secret_values = |names: &[String]| -> BTreeMap<String, (Sensitive, String)> {
            names
                .iter()
                .filter_map(|name| {
                    let value = secrets.get(name)?.clone();
                    let digest = secrets::digest(resolved.env, name, &value);
                    Some((name.clone(), (value, digest)))
                })
                .collect()
        };
        let worker_secrets = secret_values(&resolved.worker.secrets);
        let pages = resolved
            .pages
            .iter()
            .map(|p| {
                let site = p.site.as_ref().map(|s| base.join(s));
                Ok(pages::Desired {
                    project: p.project.clone(),
                    hostname: p.hostname.clone(),
                    production_branch: p.production_branch.clone(),
                    compatibility_date: resolved.worker.compatibility_date.clone(),
                    script: p.api_binding.then(|| resolved.worker.script.clone()),
                    vars: p.vars.clone(),
                    secrets: secret_values(&p.secrets),
                    site_digest: match &site {
                        Some(site) => pages::site_digest(site)?,
                        None => None,
                    },
                    site,
                })
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Session {
            worker_secrets,
            pages,
            resolved,
            secrets,
            client,
            token,
            api_url: target.api_url.clone(),
            zone_id,
            runtime,
        })
    }

    fn account(&self) -> &str {
        &self.resolved.account_id
    }

    /// The environment's deploy lock (see lock.rs), for this run.
    fn take_lock(&self, ui: &Ui, break_lock: bool) -> anyhow::Result<lock::Lock> {
        ui.step("take the deploy lock", || {
            self.runtime.block_on(lock::acquire(
                &self.client,
                &self.zone_id,
                &lock::record_name(&self.resolved.worker.script, &self.resolved.zone),
                &lock::holder(),
                break_lock,
            ))
        })
    }

    fn read_live(&self, ui: &Ui) -> anyhow::Result<Live> {
        ui.step("read what is deployed", || {
            self.runtime.block_on(async {
                let r = &self.resolved;
                let access = match &r.access {
                    Some(a) => Some(access::read(&self.client, self.account(), a).await?),
                    None => None,
                };
                let worker = worker::read(
                    &self.client,
                    self.account(),
                    &r.worker.script,
                    &r.worker.hostname,
                )
                .await?;
                let dns = dns::read(&self.client, &self.zone_id).await?;
                let mut pages = Vec::new();
                for p in &r.pages {
                    pages.push(pages::read(&self.client, self.account(), &p.project).await?);
                }
                Ok(Live {
                    access,
                    worker,
                    dns,
                    pages,
                })
            })
        })
    }

    /// The Worker as wanted, with Access's values as far as they are known.
    fn desired_worker(
        &self,
        bundle: &worker::Bundle,
        aud: Option<&str>,
        client_id: Option<&str>,
        percent: f64,
    ) -> worker::Desired {
        let r = &self.resolved;
        worker::Desired {
            script: r.worker.script.clone(),
            hostname: r.worker.hostname.clone(),
            compatibility_date: r.worker.compatibility_date.clone(),
            crons: r.worker.crons.clone(),
            vars: r.worker_vars(aud, client_id),
            secrets: self.worker_secrets.clone(),
            bundle: bundle.clone(),
            percent,
        }
    }

    fn desired_dns(&self) -> Vec<dns::DesiredRecord> {
        self.resolved
            .pages
            .iter()
            .map(|p| dns::DesiredRecord {
                name: p.hostname.clone(),
                content: format!("{}.pages.dev", p.project),
            })
            .collect()
    }

    /// The whole plan against `live`.
    fn plan(
        &self,
        live: &Live,
        bundle: &worker::Bundle,
        percent: f64,
        adopt: bool,
    ) -> anyhow::Result<Plan> {
        let mut plan = Plan::default();
        let (aud, client_id) = access_values(live);
        if let (Some(a), Some(l)) = (&self.resolved.access, &live.access) {
            access::plan(&mut plan, a, l);
        }
        worker::plan(
            &mut plan,
            &self.desired_worker(bundle, aud.as_deref(), client_id.as_deref(), percent),
            &live.worker,
        );
        let conflicts = dns::plan(
            &mut plan,
            &self.resolved.worker.script,
            &self.desired_dns(),
            &live.dns,
            adopt,
        );
        if !conflicts.is_empty() {
            bail!(
                "DNS records this tool did not create are in the way: {}. Remove them, or pass --adopt to take them over",
                conflicts
                    .iter()
                    .map(|c| format!("{} ({})", c.name, c.record_type))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        for (desired, live) in self.pages.iter().zip(&live.pages) {
            pages::plan(&mut plan, desired, live);
        }
        Ok(plan)
    }

    fn health_checks(&self) -> Vec<health::Check> {
        let r = &self.resolved;
        let credentials = match (
            self.secrets.get(access::CLIENT_ID),
            self.secrets.get(access::CLIENT_SECRET),
        ) {
            (Some(id), Some(secret)) => Some((id.expose().to_owned(), secret.clone())),
            _ => None,
        };
        let behind_access = |host: &str| {
            r.access
                .as_ref()
                .is_some_and(|a| a.hostnames.iter().any(|h| h == host))
        };
        let mut checks = vec![health::Check {
            hostname: r.worker.hostname.clone(),
            path: "/readyz",
            access: credentials
                .clone()
                .filter(|_| behind_access(&r.worker.hostname)),
        }];
        for p in self.pages.iter().filter(|p| p.site_digest.is_some()) {
            checks.push(health::Check {
                hostname: p.hostname.clone(),
                path: "/",
                access: credentials.clone().filter(|_| behind_access(&p.hostname)),
            });
        }
        checks
    }

    /// Waits for `checks` to pass (see health.rs), as one step.
    fn check_health(
        &self,
        ui: &Ui,
        checks: Vec<health::Check>,
        edge_url: Option<&str>,
        timeout_secs: u64,
    ) -> anyhow::Result<()> {
        ui.step(
            &format!("health checks ({} hostnames)", checks.len()),
            || {
                self.runtime
                    .block_on(health::wait_healthy(
                        &checks,
                        edge_url,
                        Duration::from_secs(timeout_secs),
                    ))
                    .map_err(anyhow::Error::msg)
            },
        )
    }

    fn api_base_override(&self) -> Option<&str> {
        (self.api_url.trim_end_matches('/') != cloudflare::DEFAULT_BASE_URL)
            .then_some(self.api_url.as_str())
    }
}

fn access_values(live: &Live) -> (Option<String>, Option<String>) {
    let Some(access) = &live.access else {
        return (None, None);
    };
    (
        access.app.as_ref().and_then(|a| a.aud.clone()),
        access.token.as_ref().and_then(|t| t.client_id.clone()),
    )
}

/// Where `.env.<env>` and the sites of a description are: its directory.
fn description_dir(config: &Path) -> PathBuf {
    config
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(project::root)
}

fn resolve_path(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        project::root().join(path)
    }
}

fn load_description(path: &Path, env: Environment) -> anyhow::Result<Resolved> {
    let description = config::load(path)?;
    config::resolve(&description, env).map_err(|issues| {
        anyhow::anyhow!(
            "{} is not valid for {}:\n{}",
            path.display(),
            env.name(),
            issues
                .iter()
                .map(|i| format!("  - {i}"))
                .collect::<Vec<_>>()
                .join("\n")
        )
    })
}

/// Stops when a tracked config file holds something that looks like a
/// secret (named by key, never by value).
fn refuse_tracked_secrets(config: &Path) -> anyhow::Result<()> {
    let mut findings = secrets::scan(config)?;
    let wrangler = project::root().join("wrangler.toml");
    if wrangler.exists() {
        findings.extend(secrets::scan(&wrangler)?);
    }
    if !findings.is_empty() {
        bail!(
            "a tracked config file holds what looks like a secret; move it out of the file (secrets come from the environment or .env.<env>):\n{}",
            findings
                .iter()
                .map(|f| format!("  - {} {}: {}", f.file.display(), f.key, f.reason))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    Ok(())
}

/// The bundle to deploy: `--bundle DIR`, or a fresh release build and its
/// `wrangler deploy --dry-run` output.
fn worker_bundle(ui: &Ui, env: Environment, dir: Option<&Path>) -> anyhow::Result<worker::Bundle> {
    let dir = match dir {
        Some(dir) => resolve_path(dir),
        None => {
            let tools = crate::install::build_tools(ui)?;
            crate::build::worker(ui, &tools, crate::build::Variant::Deploy)?;
            ui.step(
                &format!("bundle for {} (wrangler --dry-run)", env.name()),
                || crate::build::deploy_bundle(&tools, env).map(|b| b.dir),
            )?
        }
    };
    worker::Bundle::load(&dir)
}

#[derive(Serialize)]
struct PlanReport<'a> {
    env: &'a str,
    changes: &'a [plan::Change],
    api_calls: u64,
    api_writes: u64,
}

pub fn plan(ui: &Ui, flags: &flags::Plan) -> anyhow::Result<i32> {
    let session = Session::open(ui, &flags.target, true)?;
    let bundle = worker_bundle(ui, flags.target.env, flags.bundle.as_deref())?;
    let live = session.read_live(ui)?;
    let plan = session.plan(&live, &bundle, 100.0, flags.adopt)?;
    let stats = session.client.stats();
    if ui.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&PlanReport {
                env: flags.target.env.name(),
                changes: &plan.changes,
                api_calls: stats.requests,
                api_writes: stats.writes,
            })?
        );
    } else {
        eprint!("{}", plan.render());
        eprintln!("  {}", stats.summary());
    }
    Ok(if plan.is_empty() { 0 } else { EXIT_CHANGES })
}

#[derive(Serialize)]
struct DeployReport<'a> {
    env: &'a str,
    /// `None` with `--skip-migrations`.
    migrations: Option<crate::migrate::Report>,
    changes: &'a [plan::Change],
    deployed_version: Option<String>,
    api_calls: u64,
    api_writes: u64,
    api_retries: u64,
    seconds: f64,
}

pub fn deploy(ui: &Ui, flags: &flags::Deploy) -> anyhow::Result<()> {
    let started = Instant::now();
    let env = flags.target.env;
    let mut session = Session::open(ui, &flags.target, true)?;
    let bundle = worker_bundle(ui, env, flags.bundle.as_deref())?;
    let migrations = (!flags.skip_migrations).then_some(flags::Migrate {
        local: false,
        env: Some(env),
        url: None,
        source: None,
    });
    // Only compared here: migrations are applied under the lock, like
    // every other step.
    let pending = match &migrations {
        Some(migrations) => Some(crate::migrate::pending(ui, migrations)?),
        None => {
            ui.info("  skip  migrations (--skip-migrations)");
            None
        }
    };
    let percent = flags.percent.unwrap_or(100.0);
    let live = session.read_live(ui)?;
    let first_plan = session.plan(&live, &bundle, percent, flags.adopt)?;
    if first_plan.is_empty() && pending.as_ref().is_none_or(|(n, _)| *n == 0) {
        eprint!("{}", first_plan.render());
        let migrated = pending.map(|(_, report)| report);
        return finish_deploy(ui, &session, &first_plan, None, migrated, started);
    }

    let mut lock = session.take_lock(ui, flags.break_lock)?;
    let mut under_lock = || {
        let migrated = match &migrations {
            Some(migrations) => Some(crate::migrate::apply_to_target(ui, migrations)?),
            None => None,
        };
        let (plan, deployed) =
            apply_under_lock(ui, &mut session, &mut lock, &bundle, percent, flags)?;
        anyhow::Ok((plan, deployed, migrated))
    };
    let result = under_lock();
    let released = session
        .runtime
        .block_on(lock.release(&session.client))
        .context("releasing the deploy lock");
    let (plan, deployed, migrated) = result?;
    released?;
    finish_deploy(ui, &session, &plan, deployed, migrated, started)
}

fn finish_deploy(
    ui: &Ui,
    session: &Session,
    plan: &Plan,
    deployed: Option<String>,
    migrations: Option<crate::migrate::Report>,
    started: Instant,
) -> anyhow::Result<()> {
    let stats = session.client.stats();
    if ui.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&DeployReport {
                env: session.resolved.env.name(),
                migrations,
                changes: &plan.changes,
                deployed_version: deployed,
                api_calls: stats.requests,
                api_writes: stats.writes,
                api_retries: stats.retries,
                seconds: started.elapsed().as_secs_f64(),
            })?
        );
    } else {
        if let Some(migrations) = &migrations {
            eprintln!("  {}", migrations.summary());
        }
        eprintln!(
            "  deployed {} in {} ({})",
            session.resolved.env.name(),
            crate::ui::format_duration(started.elapsed()),
            stats.summary()
        );
    }
    Ok(())
}

/// Plans again under the lock (another deploy may have just finished),
/// confirms deletes, applies in order and checks health.
fn apply_under_lock(
    ui: &Ui,
    session: &mut Session,
    lock: &mut lock::Lock,
    bundle: &worker::Bundle,
    percent: f64,
    flags: &flags::Deploy,
) -> anyhow::Result<(Plan, Option<String>)> {
    let live = session.read_live(ui)?;
    let plan = session.plan(&live, bundle, percent, flags.adopt)?;
    if !ui.json {
        eprint!("{}", plan.render());
    }
    if plan.has_deletes() && !flags.yes {
        confirm("The plan deletes resources.")?;
    }
    let account = session.account().to_owned();

    let (aud, client_id) = match (&session.resolved.access, &live.access) {
        (Some(desired), Some(live_access)) => {
            session.runtime.block_on(lock.hold(&session.client))?;
            let provisioned = ui.step("Access: service token, policies, application", || {
                session.runtime.block_on(access::apply(
                    &session.client,
                    &account,
                    desired,
                    live_access,
                    &plan,
                    &mut session.secrets,
                ))
            })?;
            (Some(provisioned.aud), Some(provisioned.client_id))
        }
        _ => (None, None),
    };

    // The Worker's plan again, now that Access's values are known.
    let desired_worker =
        session.desired_worker(bundle, aud.as_deref(), client_id.as_deref(), percent);
    let mut worker_plan = Plan::default();
    worker::plan(&mut worker_plan, &desired_worker, &live.worker);
    session.runtime.block_on(lock.hold(&session.client))?;
    let applied = ui.step(
        &format!(
            "Worker {}: version, deployment, domain",
            desired_worker.script
        ),
        || {
            session.runtime.block_on(worker::apply(
                &session.client,
                &account,
                &session.zone_id,
                &desired_worker,
                &live.worker,
                &worker_plan,
                session.resolved.env.name(),
            ))
        },
    )?;

    session.runtime.block_on(lock.hold(&session.client))?;
    ui.step("DNS records", || {
        session.runtime.block_on(dns::apply(
            &session.client,
            &session.zone_id,
            &session.resolved.worker.script,
            &session.desired_dns(),
            &live.dns,
            &plan,
        ))
    })?;

    let wrangler = crate::install::wrangler(ui)?;
    let uploader = pages::Uploader {
        wrangler: &wrangler,
        token: &session.token,
        account: &account,
        api_base_url: session.api_base_override(),
    };
    for desired in &session.pages {
        session.runtime.block_on(lock.hold(&session.client))?;
        ui.step(
            &format!("Pages {}: project, domain, site", desired.project),
            || {
                session.runtime.block_on(pages::apply(
                    &session.client,
                    &account,
                    desired,
                    &plan,
                    &uploader,
                ))
            },
        )?;
    }

    if applied.deployed.is_some() || !plan.is_empty() {
        // Renewed now, not when due: the checks may take up to
        // `--health-timeout` without a step in between.
        session.runtime.block_on(lock.renew(&session.client))?;
        let outcome = session.check_health(
            ui,
            session.health_checks(),
            flags.edge_url.as_deref(),
            flags.health_timeout,
        );
        if let Err(failure) = outcome {
            let Some(previous) = applied.previous.filter(|_| applied.deployed.is_some()) else {
                bail!("health checks failed after the deploy: {failure:#}");
            };
            // A lock lost during the checks may be another deploy's now:
            // rolling back would undo its work.
            session
                .runtime
                .block_on(lock.renew(&session.client))
                .with_context(|| {
                    format!(
                        "health checks failed after the deploy ({failure:#}); the Worker was not rolled back"
                    )
                })?;
            let previous_shares = worker::describe(&previous);
            ui.step(
                &format!("roll the Worker back to {previous_shares}"),
                || {
                    session.runtime.block_on(worker::roll_back(
                        &session.client,
                        &account,
                        &session.resolved.worker.script,
                        previous,
                        "rollback by cargo xtask deploy: health checks failed",
                    ))
                },
            )?;
            bail!(
                "health checks failed after the deploy ({failure:#}); the Worker was rolled back to its previous deployment, {previous_shares}"
            );
        }
    }
    Ok((plan, applied.deployed))
}

fn confirm(what: &str) -> anyhow::Result<()> {
    if !std::io::stdin().is_terminal() {
        bail!("{what} Pass --yes to apply it without a terminal to confirm on.");
    }
    eprint!("{what} Apply it? [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if !matches!(answer.trim(), "y" | "Y" | "yes") {
        bail!("not confirmed; nothing was applied");
    }
    Ok(())
}

pub fn rollback(ui: &Ui, flags: &flags::Rollback) -> anyhow::Result<()> {
    let session = Session::open(ui, &flags.target, false)?;
    let live = session.read_live(ui)?;
    let script = session.resolved.worker.script.clone();
    let current = live
        .worker
        .version
        .as_ref()
        .map(|(v, _)| v.id.clone())
        .with_context(|| format!("the Worker {script} is not deployed"))?;
    let target = match &flags.to {
        Some(version) => version.clone(),
        None => live
            .worker
            .previous_version
            .clone()
            .context("there is no earlier version to roll back to")?,
    };
    if target == current {
        bail!("version {target} is the one serving now");
    }
    let lock = session.take_lock(ui, flags.break_lock)?;
    let result = ui.step(
        &format!("deploy version {target} of {script} at 100%"),
        || {
            session.runtime.block_on(worker::roll_back(
                &session.client,
                session.account(),
                &script,
                vec![(target.clone(), 100.0)],
                &format!("cargo xtask rollback from {current}"),
            ))
        },
    );
    session.runtime.block_on(lock.release(&session.client))?;
    result?;
    // The API only: a rollback changes nothing else.
    let api_only = session.health_checks().into_iter().take(1).collect();
    session.check_health(
        ui,
        api_only,
        flags.edge_url.as_deref(),
        flags.health_timeout,
    )?;
    if ui.json {
        println!(
            "{}",
            serde_json::json!({"env": flags.target.env.name(), "from": current, "to": target})
        );
    } else {
        eprintln!("  {script} serves version {target} (was {current})");
    }
    Ok(())
}

pub fn destroy(ui: &Ui, flags: &flags::Destroy) -> anyhow::Result<()> {
    if flags.target.env == Environment::Prd {
        bail!("destroy is refused for prd: production is removed by hand, if ever");
    }
    // Refusing prd by name is not enough when rc or stg resolve to prd's
    // names (a Worker name without {env}): resolving the description (in
    // `Session::open`, before any API call) refuses any resource one
    // environment shares with another.
    let session = Session::open(ui, &flags.target, false)?;
    let live = session.read_live(ui)?;
    let r = &session.resolved;
    let mut plan = Plan::default();
    for l in &live.pages {
        pages::plan_destroy(&mut plan, l);
    }
    dns::plan_destroy(&mut plan, &r.worker.script, &live.dns);
    worker::plan_destroy(&mut plan, &r.worker.script, &live.worker);
    if let (Some(a), Some(l)) = (&r.access, &live.access) {
        access::plan_destroy(&mut plan, a, l);
    }
    eprint!("{}", plan.render());
    if plan.is_empty() {
        return Ok(());
    }
    if !flags.yes {
        confirm(&format!("This deletes everything of {}.", r.env.name()))?;
    }
    let lock = session.take_lock(ui, flags.break_lock)?;
    let result = ui.step("delete Pages, DNS, the Worker, Access", || {
        session.runtime.block_on(async {
            for l in &live.pages {
                pages::destroy(&session.client, session.account(), l).await?;
            }
            dns::destroy(
                &session.client,
                &session.zone_id,
                &r.worker.script,
                &live.dns,
            )
            .await?;
            worker::destroy(
                &session.client,
                session.account(),
                &r.worker.script,
                &live.worker,
            )
            .await?;
            if let Some(l) = &live.access {
                access::destroy(&session.client, session.account(), l).await?;
            }
            anyhow::Ok(())
        })
    });
    session.runtime.block_on(lock.release(&session.client))?;
    result
}

pub fn graph(_ui: &Ui, flags: &flags::Graph) -> anyhow::Result<()> {
    let resolved = load_description(&resolve_path(&flags.config), flags.env)?;
    print!("{}", graph::mermaid(&resolved));
    Ok(())
}

#[derive(Serialize)]
struct SecretLine {
    target: String,
    name: String,
    variable: String,
    source: Option<secrets::Source>,
}

pub fn secrets(ui: &Ui, flags: &flags::Secrets) -> anyhow::Result<()> {
    let env = flags.env;
    let resolved = load_description(&resolve_path(&flags.config), env)?;
    let mut lines: Vec<(String, String)> = resolved
        .worker
        .secrets
        .iter()
        .map(|n| (format!("worker {}", resolved.worker.script), n.clone()))
        .collect();
    for p in &resolved.pages {
        lines.extend(
            p.secrets
                .iter()
                .map(|n| (format!("pages {}", p.project), n.clone())),
        );
    }
    lines.push(("deploy tool".into(), API_TOKEN.into()));
    if resolved.access.is_some() {
        lines.push(("health checks".into(), access::CLIENT_ID.into()));
        lines.push(("health checks".into(), access::CLIENT_SECRET.into()));
    }
    let names: Vec<&str> = lines.iter().map(|(_, n)| n.as_str()).collect();
    let config_path = resolve_path(&flags.config);
    let mut secrets = Secrets::load(&description_dir(&config_path), env, &names)?;
    if let Some(name) = &flags.set {
        if !names.contains(&name.as_str()) {
            bail!(
                "{name} is not a secret of {} (see `cargo xtask secrets --env {}`)",
                env.name(),
                env.name()
            );
        }
        let mut value = String::new();
        std::io::stdin().read_line(&mut value)?;
        let value = value.trim_end_matches(['\n', '\r']);
        if value.is_empty() {
            bail!("no value on standard input");
        }
        secrets.remember(name, Sensitive::from(value))?;
        ui.info(format!(
            "  {name} kept in {} (applied by the next deploy)",
            secrets.env_file().display()
        ));
        return Ok(());
    }
    let report: Vec<SecretLine> = lines
        .iter()
        .map(|(target, name)| SecretLine {
            target: target.clone(),
            name: name.clone(),
            variable: secrets::variable(env, name),
            source: secrets.source(name),
        })
        .collect();
    if ui.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for line in &report {
            let source = match line.source {
                Some(secrets::Source::ProcessEnvironment) => format!("set ({})", line.variable),
                Some(secrets::Source::EnvFile) => format!("set ({})", secrets.env_file().display()),
                None => format!(
                    "MISSING: set {} or add it to {}",
                    line.variable,
                    secrets.env_file().display()
                ),
            };
            eprintln!("  {:<24} {:<28} {source}", line.target, line.name);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destroy_refuses_before_any_call_when_stg_shares_prds_worker() {
        let text = std::fs::read_to_string(project::root().join("deploy.toml")).unwrap();
        let shared = text.replace("name = \"edge-api-{env}\"", "name = \"edge-api\"");
        assert_ne!(
            shared, text,
            "deploy.toml no longer has the line this test edits"
        );
        let config =
            std::env::temp_dir().join(format!("xtask-destroy-shared-{}.toml", std::process::id()));
        std::fs::write(&config, shared).unwrap();
        let flags = flags::Destroy {
            target: flags::DeployTarget {
                env: Environment::Stg,
                config: config.clone(),
                // Nothing listens there: an API call would fail differently.
                api_url: "http://127.0.0.1:9/client/v4".into(),
            },
            yes: true,
            break_lock: true,
        };
        let error = destroy(&Ui { json: true }, &flags).unwrap_err();
        std::fs::remove_file(&config).ok();
        let message = format!("{error:#}");
        assert!(
            message.contains("worker.name") && message.contains("\"edge-api\" is also prd's"),
            "{message}"
        );
    }
}
