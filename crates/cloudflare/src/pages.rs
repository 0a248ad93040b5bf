//! Pages projects: deployment configs (env vars, service bindings), custom
//! domains, deployments and rollbacks, and the upload token for direct
//! uploads.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::client::{seg, Client, Request};
use crate::envelope::Page;
use crate::error::Result;
use crate::secret::Sensitive;

/// An environment variable of a Pages deployment config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EnvVar {
    /// `{type:"plain_text", value}`.
    PlainText {
        #[serde(default)]
        value: String,
    },
    /// `{type:"secret_text", value}`; the API returns it without its value.
    SecretText {
        #[serde(default)]
        value: Sensitive,
    },
}

impl EnvVar {
    pub fn plain(value: impl Into<String>) -> Self {
        Self::PlainText {
            value: value.into(),
        }
    }

    pub fn secret(value: impl Into<Sensitive>) -> Self {
        Self::SecretText {
            value: value.into(),
        }
    }
}

/// A service binding of Pages Functions to a Worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceBinding {
    pub service: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<String>,
}

impl ServiceBinding {
    pub fn new(service: impl Into<String>) -> Self {
        Self {
            service: service.into(),
            environment: None,
            entrypoint: None,
        }
    }
}

/// Settings of one environment (preview or production) of a project.
///
/// In a PATCH, maps are merged into the current ones: an entry set to
/// `None` (sent as `null`) removes that variable or binding.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeploymentConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_vars: Option<BTreeMap<String, Option<EnvVar>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<BTreeMap<String, Option<ServiceBinding>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compatibility_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compatibility_flags: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_open: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub always_use_latest_compatibility_date: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_model: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeploymentConfigs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<DeploymentConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub production: Option<DeploymentConfig>,
}

/// A Pages project as the API returns it (the fields the deploy tool reads).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PagesProject {
    #[serde(default)]
    pub id: Option<String>,
    pub name: String,
    #[serde(default)]
    pub subdomain: Option<String>,
    #[serde(default, deserialize_with = "crate::envelope::null_as_empty")]
    pub domains: Vec<String>,
    #[serde(default)]
    pub production_branch: Option<String>,
    #[serde(default)]
    pub deployment_configs: Option<DeploymentConfigs>,
    #[serde(default)]
    pub created_on: Option<String>,
    #[serde(default)]
    pub latest_deployment: Option<PagesDeployment>,
    #[serde(default)]
    pub canonical_deployment: Option<PagesDeployment>,
}

/// Body of project creation; `name` and `production_branch` are required.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CreateProject {
    pub name: String,
    pub production_branch: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_configs: Option<DeploymentConfigs>,
}

/// Body of a project PATCH; only set fields are sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UpdateProject {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub production_branch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_configs: Option<DeploymentConfigs>,
}

/// A custom domain of a project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PagesDomain {
    #[serde(default)]
    pub id: Option<String>,
    pub name: String,
    /// `initializing`, `pending`, `active`, `deactivated`, `blocked`, `error`.
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub zone_tag: Option<String>,
    #[serde(default)]
    pub created_on: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct AddDomain<'a> {
    name: &'a str,
}

/// A Pages deployment (the fields the deploy tool reads; stages and
/// trigger details are kept as JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PagesDeployment {
    pub id: String,
    #[serde(default)]
    pub short_id: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    /// `production` or `preview`.
    #[serde(default)]
    pub environment: Option<String>,
    #[serde(default)]
    pub created_on: Option<String>,
    #[serde(default)]
    pub aliases: Option<Vec<String>>,
    #[serde(default)]
    pub latest_stage: Option<serde_json::Value>,
    #[serde(default)]
    pub deployment_trigger: Option<serde_json::Value>,
}

/// Which environment's deployments to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PagesEnvironment {
    Production,
    Preview,
}

impl PagesEnvironment {
    pub fn as_str(self) -> &'static str {
        match self {
            PagesEnvironment::Production => "production",
            PagesEnvironment::Preview => "preview",
        }
    }
}

/// The JWT for direct uploads of assets to a project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UploadToken {
    pub jwt: Sensitive,
}

/// Pages operations in one account; see [`Client::pages`].
#[derive(Debug, Clone)]
pub struct Pages<'c> {
    client: &'c Client,
    account_id: String,
}

impl Client {
    pub fn pages(&self, account_id: &str) -> Pages<'_> {
        Pages {
            client: self,
            account_id: account_id.to_string(),
        }
    }
}

/// Projects per page when listing.
const PROJECTS_PER_PAGE: u32 = 10;

impl Pages<'_> {
    fn projects_path(&self) -> String {
        format!("/accounts/{}/pages/projects", seg(&self.account_id))
    }

    fn project_path(&self, project: &str) -> String {
        format!("{}/{}", self.projects_path(), seg(project))
    }

    pub async fn list_projects(&self) -> Result<Vec<PagesProject>> {
        self.client
            .get_all_pages(Request::get(self.projects_path()), PROJECTS_PER_PAGE)
            .await
    }

    pub async fn get_project(&self, project: &str) -> Result<PagesProject> {
        self.client.get(self.project_path(project)).await
    }

    /// Creates a project. Not retried after a 5xx or timeout; a repeat
    /// would fail with "name taken" (see `Error::is_already_exists`).
    pub async fn create_project(&self, project: &CreateProject) -> Result<PagesProject> {
        self.client.post(self.projects_path(), project).await
    }

    pub async fn update_project(
        &self,
        project: &str,
        update: &UpdateProject,
    ) -> Result<PagesProject> {
        self.client.patch(self.project_path(project), update).await
    }

    pub async fn delete_project(&self, project: &str) -> Result<()> {
        self.client.delete(self.project_path(project)).await
    }

    pub async fn list_domains(&self, project: &str) -> Result<Vec<PagesDomain>> {
        self.client
            .get(format!("{}/domains", self.project_path(project)))
            .await
    }

    /// Adds a custom domain. Not retried after a 5xx or timeout.
    pub async fn add_domain(&self, project: &str, name: &str) -> Result<PagesDomain> {
        self.client
            .post(
                format!("{}/domains", self.project_path(project)),
                &AddDomain { name },
            )
            .await
    }

    pub async fn delete_domain(&self, project: &str, name: &str) -> Result<()> {
        self.client
            .delete(format!(
                "{}/domains/{}",
                self.project_path(project),
                seg(name)
            ))
            .await
    }

    /// One page of deployments, newest first.
    pub async fn list_deployments(
        &self,
        project: &str,
        environment: Option<PagesEnvironment>,
        page: u32,
        per_page: u32,
    ) -> Result<Page<PagesDeployment>> {
        let request = Request::get(format!("{}/deployments", self.project_path(project)))
            .query_opt("env", environment.map(PagesEnvironment::as_str))
            .query("page", page)
            .query("per_page", per_page);
        self.client.send_page(request).await
    }

    pub async fn get_deployment(
        &self,
        project: &str,
        deployment_id: &str,
    ) -> Result<PagesDeployment> {
        self.client
            .get(format!(
                "{}/deployments/{}",
                self.project_path(project),
                seg(deployment_id)
            ))
            .await
    }

    /// Makes an earlier production deployment current again. Marked
    /// idempotent: repeating it leaves the same deployment current.
    pub async fn rollback_deployment(
        &self,
        project: &str,
        deployment_id: &str,
    ) -> Result<PagesDeployment> {
        let request = Request::post(format!(
            "{}/deployments/{}/rollback",
            self.project_path(project),
            seg(deployment_id)
        ))
        .idempotent(true);
        self.client.send(request).await
    }

    /// A JWT for uploading assets directly (as `wrangler pages deploy` does).
    pub async fn upload_token(&self, project: &str) -> Result<UploadToken> {
        self.client
            .get(format!("{}/upload-token", self.project_path(project)))
            .await
    }
}
