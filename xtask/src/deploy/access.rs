//! Cloudflare Access for an environment: a service token for health checks,
//! two reusable policies (the team, by email or email domain; the health
//! token, as a non-identity rule) and one self-hosted application over the
//! environment's hostnames that uses both.
//!
//! Provisioned before the Worker: the Worker's `ACCESS_AUD` is the
//! application's audience tag, which exists only once the application does.

use cloudflare::access::{
    AccessApp, AccessAppInput, AccessPolicy, AccessRule, Decision, Destination, PolicyInput,
    ServiceToken,
};
use cloudflare::Client;

use super::config::ResolvedAccess;
use super::plan::{Field, Fields, Plan};
use super::secrets::Secrets;

/// The secrets the health token's credentials are kept under.
pub const CLIENT_ID: &str = "ACCESS_CLIENT_ID";
pub const CLIENT_SECRET: &str = "ACCESS_CLIENT_SECRET";

#[derive(Debug, Clone, Default)]
pub struct Live {
    pub token: Option<ServiceToken>,
    pub team_policy: Option<AccessPolicy>,
    pub health_policy: Option<AccessPolicy>,
    pub app: Option<AccessApp>,
}

fn team_policy_name(access: &ResolvedAccess) -> String {
    format!("{} team", access.app)
}

fn health_policy_name(access: &ResolvedAccess) -> String {
    format!("{} health checks", access.app)
}

pub async fn read(client: &Client, account: &str, access: &ResolvedAccess) -> anyhow::Result<Live> {
    let api = client.access(account);
    let token = api
        .list_service_tokens()
        .await?
        .into_iter()
        .find(|t| t.name == access.service_token);
    let policies = api.list_policies().await?;
    let find = |name: String| policies.iter().find(|p| p.name == name).cloned();
    let app = api
        .list_apps()
        .await?
        .into_iter()
        .find(|a| a.name.as_deref() == Some(access.app.as_str()));
    Ok(Live {
        token,
        team_policy: find(team_policy_name(access)),
        health_policy: find(health_policy_name(access)),
        app,
    })
}

fn team_rules(access: &ResolvedAccess) -> Vec<AccessRule> {
    let mut rules: Vec<AccessRule> = access
        .allowed_emails
        .iter()
        .map(AccessRule::email)
        .chain(
            access
                .allowed_email_domains
                .iter()
                .map(AccessRule::email_domain),
        )
        .collect();
    rules.sort_by_key(rule_text);
    rules
}

fn rule_text(rule: &AccessRule) -> String {
    match rule {
        AccessRule::Email { email } => format!("email:{email}"),
        AccessRule::EmailDomain { domain } => format!("email_domain:{domain}"),
        AccessRule::ServiceToken { token_id } => format!("service_token:{token_id}"),
        AccessRule::AnyValidServiceToken {} => "any_valid_service_token".into(),
        AccessRule::Everyone {} => "everyone".into(),
        AccessRule::Other(value) => value.to_string(),
    }
}

fn rules_field(rules: &[AccessRule]) -> Field {
    let mut texts: Vec<String> = rules.iter().map(rule_text).collect();
    texts.sort();
    Field::plain(texts.join(", "))
}

fn policy_fields(decision: Decision, rules: Field, session: Option<&str>) -> Fields {
    let mut fields = Fields::new();
    // As the API spells it (`non_identity`).
    let decision = serde_json::to_value(decision)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    fields.insert("decision".into(), Field::plain(decision));
    fields.insert("include".into(), rules);
    if let Some(session) = session {
        fields.insert("session_duration".into(), Field::plain(session));
    }
    fields
}

fn live_policy_fields(policy: &AccessPolicy) -> Fields {
    policy_fields(
        policy.decision,
        rules_field(&policy.include),
        policy.session_duration.as_deref(),
    )
}

fn app_fields(access: &ResolvedAccess) -> Fields {
    let mut fields = Fields::new();
    fields.insert("type".into(), Field::plain("self_hosted"));
    fields.insert("domain".into(), Field::plain(&access.hostnames[0]));
    fields.insert(
        "destinations".into(),
        Field::plain(access.hostnames.join(", ")),
    );
    fields.insert(
        "session_duration".into(),
        Field::plain(&access.session_duration),
    );
    fields.insert(
        "policies".into(),
        Field::plain(format!(
            "{}, {}",
            team_policy_name(access),
            health_policy_name(access)
        )),
    );
    fields
}

fn live_app_fields(app: &AccessApp, live: &Live) -> Fields {
    let mut fields = Fields::new();
    fields.insert(
        "type".into(),
        Field::plain(app.app_type.clone().unwrap_or_default()),
    );
    fields.insert(
        "domain".into(),
        Field::plain(app.domain.clone().unwrap_or_default()),
    );
    let destinations: Vec<String> = app
        .destinations
        .iter()
        .filter_map(|d| d["uri"].as_str().map(str::to_owned))
        .collect();
    fields.insert("destinations".into(), Field::plain(destinations.join(", ")));
    fields.insert(
        "session_duration".into(),
        Field::plain(app.session_duration.clone().unwrap_or_default()),
    );
    let mut policies = app.policies.clone();
    policies.sort_by_key(|p| p.precedence.unwrap_or(u32::MAX));
    let names: Vec<String> = policies
        .iter()
        .map(|p| {
            [&live.team_policy, &live.health_policy]
                .into_iter()
                .flatten()
                .find(|known| known.id == p.id)
                .map(|known| known.name.clone())
                .or_else(|| p.name.clone())
                .unwrap_or_else(|| p.id.clone())
        })
        .collect();
    fields.insert("policies".into(), Field::plain(names.join(", ")));
    fields
}

pub fn plan(plan: &mut Plan, access: &ResolvedAccess, live: &Live) {
    let token_fields = |name: &str| {
        let mut f = Fields::new();
        f.insert("name".into(), Field::plain(name));
        f
    };
    plan.compare(
        "access-service-token",
        &access.service_token,
        live.token.as_ref().map(|t| token_fields(&t.name)).as_ref(),
        Some(&token_fields(&access.service_token)),
    );
    plan.compare(
        "access-policy",
        &team_policy_name(access),
        live.team_policy.as_ref().map(live_policy_fields).as_ref(),
        Some(&policy_fields(
            Decision::Allow,
            rules_field(&team_rules(access)),
            Some(&access.session_duration),
        )),
    );
    let health_rule = match &live.token {
        Some(token) => rules_field(&[AccessRule::service_token(&token.id)]),
        None => Field::Pending,
    };
    plan.compare(
        "access-policy",
        &health_policy_name(access),
        live.health_policy.as_ref().map(live_policy_fields).as_ref(),
        Some(&policy_fields(Decision::NonIdentity, health_rule, None)),
    );
    plan.compare(
        "access-app",
        &access.app,
        live.app.as_ref().map(|a| live_app_fields(a, live)).as_ref(),
        Some(&app_fields(access)),
    );
}

/// What the Worker and the health checks need from Access.
#[derive(Debug, Clone)]
pub struct Provisioned {
    pub aud: String,
    pub client_id: String,
}

/// Creates or updates what differs; a missing token is created and its
/// credentials kept in `.env.<env>` (Cloudflare shows the secret once).
pub async fn apply(
    client: &Client,
    account: &str,
    access: &ResolvedAccess,
    live: &Live,
    changes: &Plan,
    secrets: &mut Secrets,
) -> anyhow::Result<Provisioned> {
    let api = client.access(account);
    let token = match &live.token {
        Some(token) => token.clone(),
        None => {
            let created = api
                .create_service_token(&cloudflare::access::CreateServiceToken {
                    name: access.service_token.clone(),
                    duration: None,
                })
                .await?;
            secrets.remember(CLIENT_ID, created.client_id.clone().into())?;
            secrets.remember(CLIENT_SECRET, created.client_secret.clone())?;
            ServiceToken {
                id: created.id,
                name: created.name,
                client_id: Some(created.client_id),
                duration: created.duration,
                expires_at: created.expires_at,
                created_at: None,
            }
        }
    };
    let client_id = token
        .client_id
        .clone()
        .or_else(|| secrets.get(CLIENT_ID).map(|s| s.expose().to_owned()))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "the Access service token {:?} exists but its client id is unknown: set {CLIENT_ID}",
                access.service_token
            )
        })?;

    let team = PolicyInput {
        session_duration: Some(access.session_duration.clone()),
        ..PolicyInput::new(
            team_policy_name(access),
            Decision::Allow,
            team_rules(access),
        )
    };
    let team_id = upsert_policy(&api, changes, &team, live.team_policy.as_ref()).await?;
    let health = PolicyInput::new(
        health_policy_name(access),
        Decision::NonIdentity,
        vec![AccessRule::service_token(&token.id)],
    );
    let health_id = upsert_policy(&api, changes, &health, live.health_policy.as_ref()).await?;

    let mut input = AccessAppInput::self_hosted(&access.app, &access.hostnames[0])
        .policies(&[&team_id, &health_id]);
    input.destinations = Some(
        access
            .hostnames
            .iter()
            .map(|h| Destination::Public { uri: h.clone() })
            .collect(),
    );
    input.session_duration = Some(access.session_duration.clone());
    let app = match (&live.app, changes.change("access-app", &access.app)) {
        (Some(app), None) => app.clone(),
        (Some(app), Some(_)) => api.update_app(&app.id, &input).await?,
        (None, _) => api.create_app(&input).await?,
    };
    let aud = app
        .aud
        .ok_or_else(|| anyhow::anyhow!("Access answered without the application's aud"))?;
    Ok(Provisioned { aud, client_id })
}

async fn upsert_policy(
    api: &cloudflare::access::Access<'_>,
    changes: &Plan,
    input: &PolicyInput,
    live: Option<&AccessPolicy>,
) -> anyhow::Result<String> {
    Ok(match (live, changes.change("access-policy", &input.name)) {
        (Some(policy), None) => policy.id.clone(),
        (Some(policy), Some(_)) => api.update_policy(&policy.id, input).await?.id,
        (None, _) => api.create_policy(input).await?.id,
    })
}

/// Deletes the application, then its policies, then the token.
pub async fn destroy(client: &Client, account: &str, live: &Live) -> anyhow::Result<()> {
    let api = client.access(account);
    if let Some(app) = &live.app {
        api.delete_app(&app.id).await?;
    }
    for policy in [&live.team_policy, &live.health_policy]
        .into_iter()
        .flatten()
    {
        api.delete_policy(&policy.id).await?;
    }
    if let Some(token) = &live.token {
        api.delete_service_token(&token.id).await?;
    }
    Ok(())
}

/// The plan's view of what `destroy` removes.
pub fn plan_destroy(plan: &mut Plan, access: &ResolvedAccess, live: &Live) {
    if let Some(app) = &live.app {
        plan.compare(
            "access-app",
            &access.app,
            Some(&live_app_fields(app, live)),
            None,
        );
    }
    for policy in [&live.team_policy, &live.health_policy]
        .into_iter()
        .flatten()
    {
        plan.compare(
            "access-policy",
            &policy.name,
            Some(&live_policy_fields(policy)),
            None,
        );
    }
    if let Some(token) = &live.token {
        let mut f = Fields::new();
        f.insert("name".into(), Field::plain(&token.name));
        plan.compare("access-service-token", &token.name, Some(&f), None);
    }
}
