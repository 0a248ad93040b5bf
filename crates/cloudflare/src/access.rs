//! Cloudflare Access at account level: self-hosted applications, reusable
//! policies, and service tokens (for machine-to-machine calls through
//! Access).

use serde::{Deserialize, Serialize};

use crate::client::{seg, Client, Request};
use crate::error::Result;
use crate::secret::Sensitive;

/// What a policy does when its rules match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Allow,
    Deny,
    NonIdentity,
    Bypass,
}

/// One rule of a policy's `include`, `exclude` or `require` list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessRule {
    /// `{"email": {"email": "a@example.com"}}`.
    Email { email: String },
    /// `{"email_domain": {"domain": "example.com"}}`.
    EmailDomain { domain: String },
    /// `{"service_token": {"token_id": "..."}}`.
    ServiceToken { token_id: String },
    /// `{"any_valid_service_token": {}}`.
    AnyValidServiceToken {},
    /// `{"everyone": {}}`.
    Everyone {},
    /// Any other rule the API returns, kept as JSON.
    #[serde(untagged)]
    Other(serde_json::Value),
}

impl AccessRule {
    pub fn email(email: impl Into<String>) -> Self {
        Self::Email {
            email: email.into(),
        }
    }

    pub fn email_domain(domain: impl Into<String>) -> Self {
        Self::EmailDomain {
            domain: domain.into(),
        }
    }

    pub fn service_token(token_id: impl Into<String>) -> Self {
        Self::ServiceToken {
            token_id: token_id.into(),
        }
    }
}

/// Body of reusable policy create and update.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyInput {
    pub name: String,
    pub decision: Decision,
    pub include: Vec<AccessRule>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<AccessRule>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub require: Vec<AccessRule>,
    /// Overrides the application's session duration, e.g. `"24h"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_duration: Option<String>,
}

impl PolicyInput {
    pub fn new(name: impl Into<String>, decision: Decision, include: Vec<AccessRule>) -> Self {
        Self {
            name: name.into(),
            decision,
            include,
            exclude: Vec::new(),
            require: Vec::new(),
            session_duration: None,
        }
    }
}

/// A reusable policy as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessPolicy {
    pub id: String,
    pub name: String,
    pub decision: Decision,
    #[serde(default, deserialize_with = "crate::envelope::null_as_empty")]
    pub include: Vec<AccessRule>,
    #[serde(default, deserialize_with = "crate::envelope::null_as_empty")]
    pub exclude: Vec<AccessRule>,
    #[serde(default, deserialize_with = "crate::envelope::null_as_empty")]
    pub require: Vec<AccessRule>,
    #[serde(default)]
    pub session_duration: Option<String>,
    #[serde(default)]
    pub reusable: Option<bool>,
    #[serde(default)]
    pub app_count: Option<u64>,
}

/// Where a self-hosted application is reachable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Destination {
    /// `{type:"public", uri}`: a hostname with optional path.
    Public { uri: String },
}

/// A reference from an application to a reusable policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppPolicyRef {
    pub id: String,
    /// Evaluation order, starting at 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precedence: Option<u32>,
}

/// Body of application create and update (a `self_hosted` application).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccessAppInput {
    #[serde(rename = "type")]
    pub app_type: String,
    pub name: String,
    /// Primary domain (hostname and optional path) the app protects.
    pub domain: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destinations: Option<Vec<Destination>>,
    /// e.g. `"24h"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_duration: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policies: Option<Vec<AppPolicyRef>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_launcher_visible: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_redirect_to_identity: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_idps: Option<Vec<String>>,
    /// Answer 401 instead of redirecting to login for service-token-only
    /// apps (machine clients cannot follow the login flow).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_auth_401_redirect: Option<bool>,
}

impl AccessAppInput {
    /// A self-hosted application for `domain`, also listed as its only
    /// public destination.
    pub fn self_hosted(name: impl Into<String>, domain: impl Into<String>) -> Self {
        let domain = domain.into();
        Self {
            app_type: "self_hosted".to_string(),
            name: name.into(),
            destinations: Some(vec![Destination::Public {
                uri: domain.clone(),
            }]),
            domain,
            session_duration: None,
            policies: None,
            app_launcher_visible: None,
            auto_redirect_to_identity: None,
            allowed_idps: None,
            service_auth_401_redirect: None,
        }
    }

    /// Attaches reusable policies in the given order (precedence 1, 2, ...).
    pub fn policies(mut self, policy_ids: &[&str]) -> Self {
        self.policies = Some(
            policy_ids
                .iter()
                .zip(1..)
                .map(|(id, precedence)| AppPolicyRef {
                    id: id.to_string(),
                    precedence: Some(precedence),
                })
                .collect(),
        );
        self
    }
}

/// A policy as embedded in an application response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppPolicy {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub precedence: Option<u32>,
    #[serde(default)]
    pub decision: Option<Decision>,
}

/// An Access application as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessApp {
    pub id: String,
    #[serde(default)]
    pub aud: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(rename = "type", default)]
    pub app_type: Option<String>,
    #[serde(default)]
    pub session_duration: Option<String>,
    #[serde(default, deserialize_with = "crate::envelope::null_as_empty")]
    pub destinations: Vec<serde_json::Value>,
    #[serde(default, deserialize_with = "crate::envelope::null_as_empty")]
    pub policies: Vec<AppPolicy>,
}

/// Body of service token creation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreateServiceToken {
    pub name: String,
    /// Lifetime such as `"8760h"` (the API's default) or `"forever"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
}

/// A service token as listed (the secret is never returned again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceToken {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub duration: Option<String>,
    #[serde(default)]
    pub expires_at: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
}

/// The creation response: the only time `client_secret` is returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreatedServiceToken {
    pub id: String,
    pub name: String,
    pub client_id: String,
    pub client_secret: Sensitive,
    #[serde(default)]
    pub duration: Option<String>,
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// Access operations in one account; see [`Client::access`].
#[derive(Debug, Clone)]
pub struct Access<'c> {
    client: &'c Client,
    account_id: String,
}

impl Client {
    pub fn access(&self, account_id: &str) -> Access<'_> {
        Access {
            client: self,
            account_id: account_id.to_string(),
        }
    }
}

/// The schema's maximum `per_page` for Access lists.
const ACCESS_PER_PAGE: u32 = 1000;

impl Access<'_> {
    fn path(&self, collection: &str) -> String {
        format!("/accounts/{}/access/{collection}", seg(&self.account_id))
    }

    fn item_path(&self, collection: &str, id: &str) -> String {
        format!("{}/{}", self.path(collection), seg(id))
    }

    pub async fn list_apps(&self) -> Result<Vec<AccessApp>> {
        self.client
            .get_all_pages(Request::get(self.path("apps")), ACCESS_PER_PAGE)
            .await
    }

    /// Creates an application. Not retried after a 5xx or timeout.
    pub async fn create_app(&self, app: &AccessAppInput) -> Result<AccessApp> {
        self.client.post(self.path("apps"), app).await
    }

    /// Replaces an application (PUT): fields left unset, `policies`
    /// included, are reset, so pass the full desired state.
    pub async fn update_app(&self, app_id: &str, app: &AccessAppInput) -> Result<AccessApp> {
        self.client.put(self.item_path("apps", app_id), app).await
    }

    pub async fn delete_app(&self, app_id: &str) -> Result<()> {
        self.client.delete(self.item_path("apps", app_id)).await
    }

    pub async fn list_policies(&self) -> Result<Vec<AccessPolicy>> {
        self.client
            .get_all_pages(Request::get(self.path("policies")), ACCESS_PER_PAGE)
            .await
    }

    /// Creates a reusable policy. Not retried after a 5xx or timeout.
    pub async fn create_policy(&self, policy: &PolicyInput) -> Result<AccessPolicy> {
        self.client.post(self.path("policies"), policy).await
    }

    /// Replaces a reusable policy (PUT) with the full desired state.
    pub async fn update_policy(
        &self,
        policy_id: &str,
        policy: &PolicyInput,
    ) -> Result<AccessPolicy> {
        self.client
            .put(self.item_path("policies", policy_id), policy)
            .await
    }

    pub async fn delete_policy(&self, policy_id: &str) -> Result<()> {
        self.client
            .delete(self.item_path("policies", policy_id))
            .await
    }

    pub async fn list_service_tokens(&self) -> Result<Vec<ServiceToken>> {
        self.client
            .get_all_pages(Request::get(self.path("service_tokens")), ACCESS_PER_PAGE)
            .await
    }

    /// Creates a service token; store `client_secret` now, it is not
    /// returned again. Not retried after a 5xx or timeout.
    pub async fn create_service_token(
        &self,
        token: &CreateServiceToken,
    ) -> Result<CreatedServiceToken> {
        self.client.post(self.path("service_tokens"), token).await
    }

    pub async fn delete_service_token(&self, token_id: &str) -> Result<()> {
        self.client
            .delete(self.item_path("service_tokens", token_id))
            .await
    }
}
