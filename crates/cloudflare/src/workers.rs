//! Workers: script uploads, versions, gradual deployments, secrets,
//! settings, zone routes and custom domains.
//!
//! Scripts and versions are uploaded as `multipart/form-data` the way
//! wrangler does it: a `metadata` part (JSON) naming the main module and
//! the bindings, and one part per module, named by the module's file name
//! and typed by its kind (`application/javascript+module`,
//! `application/wasm`, ...), which is how the API tells ES modules from
//! Wasm and text blobs.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::client::{seg, Client, MultipartPart, Request};
use crate::envelope::Page;
use crate::error::{Error, Result};
use crate::secret::Sensitive;

/// The kind of a module part, which fixes its content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleKind {
    /// An ES module (`application/javascript+module`).
    EsModule,
    /// A service-worker style or CommonJS script (`application/javascript`).
    Script,
    /// A WebAssembly module (`application/wasm`).
    Wasm,
    /// A text blob (`text/plain`).
    Text,
    /// A binary blob (`application/octet-stream`).
    Data,
    /// A source map (`application/source-map`).
    SourceMap,
}

impl ModuleKind {
    pub fn content_type(self) -> &'static str {
        match self {
            ModuleKind::EsModule => "application/javascript+module",
            ModuleKind::Script => "application/javascript",
            ModuleKind::Wasm => "application/wasm",
            ModuleKind::Text => "text/plain",
            ModuleKind::Data => "application/octet-stream",
            ModuleKind::SourceMap => "application/source-map",
        }
    }
}

/// One file of a Worker: its name as imported (`worker.js`,
/// `index_bg.wasm`), kind and bytes (shared, so building the upload for
/// each attempt does not copy them).
#[derive(Clone, PartialEq, Eq)]
pub struct WorkerModule {
    pub name: String,
    pub kind: ModuleKind,
    pub bytes: Bytes,
}

impl std::fmt::Debug for WorkerModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerModule")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("len", &self.bytes.len())
            .finish()
    }
}

impl WorkerModule {
    pub fn new(name: impl Into<String>, kind: ModuleKind, bytes: impl Into<Bytes>) -> Self {
        Self {
            name: name.into(),
            kind,
            bytes: bytes.into(),
        }
    }
}

/// A binding in upload metadata. Only the kinds the deploy tool uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WorkerBinding {
    /// `{type:"plain_text", name, text}`: an environment variable.
    PlainText { name: String, text: String },
    /// `{type:"secret_text", name, text}`: a secret, set with the upload.
    SecretText { name: String, text: Sensitive },
    /// `{type:"service", name, service, environment?, entrypoint?}`.
    Service {
        name: String,
        service: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        environment: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        entrypoint: Option<String>,
    },
    /// `{type:"inherit", name}`: keep this binding from the previous
    /// version (for versions uploaded without re-sending secrets).
    Inherit { name: String },
}

impl WorkerBinding {
    pub fn plain_text(name: impl Into<String>, text: impl Into<String>) -> Self {
        Self::PlainText {
            name: name.into(),
            text: text.into(),
        }
    }

    pub fn secret_text(name: impl Into<String>, text: impl Into<Sensitive>) -> Self {
        Self::SecretText {
            name: name.into(),
            text: text.into(),
        }
    }

    pub fn service(name: impl Into<String>, service: impl Into<String>) -> Self {
        Self::Service {
            name: name.into(),
            service: service.into(),
            environment: None,
            entrypoint: None,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Self::PlainText { name, .. }
            | Self::SecretText { name, .. }
            | Self::Service { name, .. }
            | Self::Inherit { name } => name,
        }
    }
}

/// Annotations of a version (upload metadata, version details) or of a
/// deployment: shown in the dashboard and in `wrangler versions list` /
/// `wrangler deployments list`. The deploy tool keeps the bundle's digest in
/// a version's tag, to compare code without downloading it.
///
/// Both request schemas declare `workers/message`; only versions take
/// `workers/tag`, and `workers/triggered_by` is set by the API on
/// deployments (output only). Unset fields are not sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Annotations {
    #[serde(
        rename = "workers/message",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub message: Option<String>,
    /// Versions only.
    #[serde(
        rename = "workers/tag",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub tag: Option<String>,
    /// Set by the API on deployments (`upload`, `deployment`, `rollback`,
    /// ...); leave it `None` in requests.
    #[serde(
        rename = "workers/triggered_by",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub triggered_by: Option<String>,
}

/// The `metadata` part of a script or version upload.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UploadMetadata {
    /// File name of the entry module; must be one of the uploaded modules.
    pub main_module: String,
    pub bindings: Vec<WorkerBinding>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compatibility_date: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub compatibility_flags: Vec<String>,
    /// Binding types (such as `secret_text`) to keep from the current
    /// script when they are not in `bindings`: lets a code upload leave
    /// secrets set with the secrets API in place.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_bindings: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Annotations>,
}

impl UploadMetadata {
    pub fn new(main_module: impl Into<String>) -> Self {
        Self {
            main_module: main_module.into(),
            bindings: Vec::new(),
            compatibility_date: None,
            compatibility_flags: Vec::new(),
            keep_bindings: None,
            annotations: None,
        }
    }
}

/// A script or version upload: metadata plus module files.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerUpload {
    pub metadata: UploadMetadata,
    pub modules: Vec<WorkerModule>,
}

impl WorkerUpload {
    /// The multipart parts: `metadata` first, then one part per module.
    pub fn to_parts(&self) -> Result<Vec<MultipartPart>> {
        if !self
            .modules
            .iter()
            .any(|m| m.name == self.metadata.main_module)
        {
            return Err(Error::InvalidRequest(format!(
                "main_module {:?} is not among the uploaded modules",
                self.metadata.main_module
            )));
        }
        let metadata = serde_json::to_vec(&self.metadata)
            .map_err(|e| Error::InvalidRequest(format!("metadata does not serialize: {e}")))?;
        let mut parts = vec![MultipartPart {
            name: "metadata".to_string(),
            filename: None,
            content_type: "application/json".to_string(),
            bytes: metadata.into(),
        }];
        parts.extend(self.modules.iter().map(|module| MultipartPart {
            name: module.name.clone(),
            filename: Some(module.name.clone()),
            content_type: module.kind.content_type().to_string(),
            bytes: module.bytes.clone(),
        }));
        Ok(parts)
    }
}

/// A script as listed or returned by an upload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerScript {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub etag: Option<String>,
    #[serde(default)]
    pub compatibility_date: Option<String>,
    #[serde(default, deserialize_with = "crate::envelope::null_as_empty")]
    pub compatibility_flags: Vec<String>,
    #[serde(default)]
    pub created_on: Option<String>,
    #[serde(default)]
    pub modified_on: Option<String>,
    #[serde(default)]
    pub has_modules: Option<bool>,
    #[serde(default)]
    pub usage_model: Option<String>,
}

/// Version metadata as the API reports it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VersionMetadata {
    #[serde(default)]
    pub author_email: Option<String>,
    #[serde(default)]
    pub created_on: Option<String>,
    #[serde(default)]
    pub modified_on: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
}

/// A Worker version. `annotations` and `resources` are filled by the
/// version detail and upload responses, not by the list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerVersion {
    pub id: String,
    #[serde(default)]
    pub number: Option<f64>,
    #[serde(default)]
    pub metadata: VersionMetadata,
    #[serde(default)]
    pub annotations: Option<Annotations>,
    /// Bindings, script and runtime details, kept as JSON.
    #[serde(default)]
    pub resources: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct VersionList {
    #[serde(default)]
    items: Vec<WorkerVersion>,
}

/// Paging for [`Workers::list_versions`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListVersions {
    pub page: u32,
    pub per_page: u32,
    /// Only versions that can be deployed.
    pub deployable: bool,
}

impl Default for ListVersions {
    fn default() -> Self {
        Self {
            page: 1,
            per_page: 20,
            deployable: false,
        }
    }
}

/// One version's share of a deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentVersion {
    pub version_id: String,
    /// 0.01..=100; the shares of one deployment add up to 100.
    pub percentage: f64,
}

/// The body of `POST .../deployments`: `{strategy:"percentage", versions,
/// annotations?}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CreateDeployment {
    /// Always `"percentage"`, the only strategy the API knows.
    pub strategy: &'static str,
    pub versions: Vec<DeploymentVersion>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Annotations>,
}

impl CreateDeployment {
    /// 100% of traffic to one version.
    pub fn single(version_id: impl Into<String>) -> Self {
        Self::split(vec![(version_id.into(), 100.0)])
    }

    /// A gradual deployment: `(version_id, percentage)` pairs.
    pub fn split(versions: Vec<(String, f64)>) -> Self {
        Self {
            strategy: "percentage",
            versions: versions
                .into_iter()
                .map(|(version_id, percentage)| DeploymentVersion {
                    version_id,
                    percentage,
                })
                .collect(),
            annotations: None,
        }
    }

    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.annotations = Some(Annotations {
            message: Some(message.into()),
            ..Annotations::default()
        });
        self
    }

    /// Rejects splits the API would reject, before spending a request.
    pub fn validate(&self) -> Result<()> {
        if self.versions.is_empty() || self.versions.len() > 2 {
            return Err(Error::InvalidRequest(format!(
                "a deployment has one or two versions, not {}",
                self.versions.len()
            )));
        }
        if let Some(v) = self
            .versions
            .iter()
            .find(|v| !(0.01..=100.0).contains(&v.percentage))
        {
            return Err(Error::InvalidRequest(format!(
                "percentage {} of version {} is outside 0.01..=100",
                v.percentage, v.version_id
            )));
        }
        let total: f64 = self.versions.iter().map(|v| v.percentage).sum();
        if (total - 100.0).abs() > 1e-6 {
            return Err(Error::InvalidRequest(format!(
                "deployment percentages add up to {total}, not 100"
            )));
        }
        Ok(())
    }
}

/// A deployment: which versions serve which share of traffic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    pub id: String,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub strategy: Option<String>,
    #[serde(default, deserialize_with = "crate::envelope::null_as_empty")]
    pub versions: Vec<DeploymentVersion>,
    #[serde(default)]
    pub created_on: Option<String>,
    #[serde(default)]
    pub author_email: Option<String>,
    #[serde(default)]
    pub annotations: Option<Annotations>,
}

#[derive(Debug, Deserialize)]
struct DeploymentList {
    #[serde(default)]
    deployments: Vec<Deployment>,
}

/// Observability settings (Workers Logs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observability {
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_sampling_rate: Option<f64>,
    /// Log settings, passed through as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TailConsumer {
    pub service: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Script-level settings (`.../script-settings`): read in full, patched
/// with only the fields that are set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScriptSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logpush: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observability: Option<Observability>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tail_consumers: Option<Vec<TailConsumer>>,
}

/// A Cron Trigger of a script (`.../schedules`). Triggers belong to the
/// script, not to a version: a new version or a rollback keeps them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    pub cron: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_on: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_on: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ScheduleList {
    #[serde(default)]
    schedules: Vec<Schedule>,
}

/// One element of the `PUT .../schedules` body (a bare JSON array).
#[derive(Debug, Serialize)]
struct ScheduleInput<'a> {
    cron: &'a str,
}

/// A secret's name and type; the API never returns values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretInfo {
    pub name: String,
    #[serde(rename = "type")]
    pub secret_type: String,
}

/// Body of `PUT .../secrets`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PutSecret {
    pub name: String,
    pub text: Sensitive,
    #[serde(rename = "type")]
    pub secret_type: &'static str,
}

impl PutSecret {
    pub fn new(name: impl Into<String>, text: impl Into<Sensitive>) -> Self {
        Self {
            name: name.into(),
            text: text.into(),
            secret_type: "secret_text",
        }
    }
}

/// A Workers custom domain: a hostname served directly by a Worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerDomain {
    pub id: String,
    pub hostname: String,
    pub service: String,
    #[serde(default)]
    pub zone_id: Option<String>,
    #[serde(default)]
    pub zone_name: Option<String>,
    #[serde(default)]
    pub environment: Option<String>,
    #[serde(default)]
    pub cert_id: Option<String>,
}

/// Body of `PUT /accounts/{a}/workers/domains`.
///
/// The zone is computed from `hostname` when neither `zone_id` nor
/// `zone_name` is given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttachDomain {
    pub hostname: String,
    /// The Worker (script) name.
    pub service: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone_name: Option<String>,
}

impl AttachDomain {
    pub fn new(hostname: impl Into<String>, service: impl Into<String>) -> Self {
        Self {
            hostname: hostname.into(),
            service: service.into(),
            zone_id: None,
            zone_name: None,
        }
    }
}

/// Filters for [`Workers::list_domains`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListDomains {
    pub hostname: Option<String>,
    pub service: Option<String>,
    pub zone_id: Option<String>,
    pub zone_name: Option<String>,
}

/// Worker operations in one account; see [`Client::workers`].
#[derive(Debug, Clone)]
pub struct Workers<'c> {
    client: &'c Client,
    account_id: String,
}

impl Client {
    pub fn workers(&self, account_id: &str) -> Workers<'_> {
        Workers {
            client: self,
            account_id: account_id.to_string(),
        }
    }

    pub fn worker_routes(&self, zone_id: &str) -> WorkerRoutes<'_> {
        WorkerRoutes {
            client: self,
            zone_id: zone_id.to_string(),
        }
    }
}

impl Workers<'_> {
    fn scripts_path(&self) -> String {
        format!("/accounts/{}/workers/scripts", seg(&self.account_id))
    }

    fn script_path(&self, script: &str) -> String {
        format!("{}/{}", self.scripts_path(), seg(script))
    }

    fn domains_path(&self) -> String {
        format!("/accounts/{}/workers/domains", seg(&self.account_id))
    }

    pub async fn list_scripts(&self) -> Result<Vec<WorkerScript>> {
        self.client.get(self.scripts_path()).await
    }

    /// Uploads a script and deploys it at once (PUT, so retried).
    pub async fn upload_script(&self, script: &str, upload: &WorkerUpload) -> Result<WorkerScript> {
        let request = Request::put(self.script_path(script)).multipart(upload.to_parts()?);
        self.client.send(request).await
    }

    /// Deletes a script; `force` also removes it when other Workers bind it.
    pub async fn delete_script(&self, script: &str, force: bool) -> Result<()> {
        let request =
            Request::delete(self.script_path(script)).query_opt("force", force.then_some(true));
        self.client.send_delete(request).await
    }

    /// Uploads a new version without deploying it. Not retried after a 5xx
    /// or timeout: a repeat would create a second version.
    pub async fn upload_version(
        &self,
        script: &str,
        upload: &WorkerUpload,
    ) -> Result<WorkerVersion> {
        let request = Request::post(format!("{}/versions", self.script_path(script)))
            .multipart(upload.to_parts()?);
        self.client.send(request).await
    }

    /// One page of versions, newest first.
    pub async fn list_versions(
        &self,
        script: &str,
        paging: &ListVersions,
    ) -> Result<Page<WorkerVersion>> {
        let request = Request::get(format!("{}/versions", self.script_path(script)))
            .query("page", paging.page)
            .query("per_page", paging.per_page)
            .query_opt("deployable", paging.deployable.then_some(true));
        let (list, result_info) = self.client.send_with_info::<VersionList>(request).await?;
        Ok(Page {
            items: list.items,
            result_info,
        })
    }

    pub async fn get_version(&self, script: &str, version_id: &str) -> Result<WorkerVersion> {
        self.client
            .get(format!(
                "{}/versions/{}",
                self.script_path(script),
                seg(version_id)
            ))
            .await
    }

    /// Deployments, newest first; the first is the one serving traffic.
    pub async fn list_deployments(&self, script: &str) -> Result<Vec<Deployment>> {
        let list: DeploymentList = self
            .client
            .get(format!("{}/deployments", self.script_path(script)))
            .await?;
        Ok(list.deployments)
    }

    /// Deploys versions by percentage. Marked idempotent: repeating the
    /// same split leaves the same versions serving the same shares.
    pub async fn create_deployment(
        &self,
        script: &str,
        deployment: &CreateDeployment,
    ) -> Result<Deployment> {
        self.send_deployment(script, deployment, false).await
    }

    /// [`Self::create_deployment`] with `?force=true`, which the API needs
    /// to go back to a version older than a secret change (else 400, code
    /// 10220).
    pub async fn create_deployment_forced(
        &self,
        script: &str,
        deployment: &CreateDeployment,
    ) -> Result<Deployment> {
        self.send_deployment(script, deployment, true).await
    }

    async fn send_deployment(
        &self,
        script: &str,
        deployment: &CreateDeployment,
        force: bool,
    ) -> Result<Deployment> {
        deployment.validate()?;
        let request = Request::post(format!("{}/deployments", self.script_path(script)))
            .query_opt("force", force.then_some(true))
            .json(deployment)?
            .idempotent(true);
        self.client.send(request).await
    }

    /// The script's Cron Triggers.
    pub async fn get_schedules(&self, script: &str) -> Result<Vec<Schedule>> {
        let list: ScheduleList = self
            .client
            .get(format!("{}/schedules", self.script_path(script)))
            .await?;
        Ok(list.schedules)
    }

    /// Replaces the script's Cron Triggers with `crons` (none removes them
    /// all).
    pub async fn put_schedules(&self, script: &str, crons: &[String]) -> Result<Vec<Schedule>> {
        let body: Vec<ScheduleInput<'_>> =
            crons.iter().map(|cron| ScheduleInput { cron }).collect();
        let list: ScheduleList = self
            .client
            .put(format!("{}/schedules", self.script_path(script)), &body)
            .await?;
        Ok(list.schedules)
    }

    pub async fn get_script_settings(&self, script: &str) -> Result<ScriptSettings> {
        self.client
            .get(format!("{}/script-settings", self.script_path(script)))
            .await
    }

    pub async fn patch_script_settings(
        &self,
        script: &str,
        settings: &ScriptSettings,
    ) -> Result<ScriptSettings> {
        self.client
            .patch(
                format!("{}/script-settings", self.script_path(script)),
                settings,
            )
            .await
    }

    pub async fn list_secrets(&self, script: &str) -> Result<Vec<SecretInfo>> {
        self.client
            .get(format!("{}/secrets", self.script_path(script)))
            .await
    }

    /// Sets a secret; creates a new version and deploys it.
    pub async fn put_secret(&self, script: &str, secret: &PutSecret) -> Result<SecretInfo> {
        self.client
            .put(format!("{}/secrets", self.script_path(script)), secret)
            .await
    }

    pub async fn delete_secret(&self, script: &str, name: &str) -> Result<()> {
        self.client
            .delete(format!(
                "{}/secrets/{}",
                self.script_path(script),
                seg(name)
            ))
            .await
    }

    pub async fn list_domains(&self, filter: &ListDomains) -> Result<Vec<WorkerDomain>> {
        let request = Request::get(self.domains_path())
            .query_opt("hostname", filter.hostname.as_deref())
            .query_opt("service", filter.service.as_deref())
            .query_opt("zone_id", filter.zone_id.as_deref())
            .query_opt("zone_name", filter.zone_name.as_deref());
        self.client.send(request).await
    }

    /// Attaches a hostname to a Worker (PUT; re-attaching is a no-op).
    pub async fn attach_domain(&self, domain: &AttachDomain) -> Result<WorkerDomain> {
        self.client.put(self.domains_path(), domain).await
    }

    pub async fn detach_domain(&self, domain_id: &str) -> Result<()> {
        self.client
            .delete(format!("{}/{}", self.domains_path(), seg(domain_id)))
            .await
    }
}

/// A zone route: a URL pattern served by a Worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerRoute {
    pub id: String,
    pub pattern: String,
    #[serde(default)]
    pub script: Option<String>,
}

/// Body of route create and update. The route's `id`, which the published
/// schema lists as required, is output-only (`readOnly`): it is assigned by
/// the API and, on update, named by the path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteInput {
    pub pattern: String,
    /// The Worker; `None` makes the route bypass Workers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
}

impl RouteInput {
    pub fn new(pattern: impl Into<String>, script: impl Into<String>) -> Self {
        Self {
            pattern: pattern.into(),
            script: Some(script.into()),
        }
    }
}

/// Route operations in one zone; see [`Client::worker_routes`].
#[derive(Debug, Clone)]
pub struct WorkerRoutes<'c> {
    client: &'c Client,
    zone_id: String,
}

impl WorkerRoutes<'_> {
    fn routes_path(&self) -> String {
        format!("/zones/{}/workers/routes", seg(&self.zone_id))
    }

    pub async fn list(&self) -> Result<Vec<WorkerRoute>> {
        self.client.get(self.routes_path()).await
    }

    /// Creates a route. Not retried after a 5xx or timeout.
    pub async fn create(&self, route: &RouteInput) -> Result<WorkerRoute> {
        self.client.post(self.routes_path(), route).await
    }

    pub async fn update(&self, route_id: &str, route: &RouteInput) -> Result<WorkerRoute> {
        self.client
            .put(format!("{}/{}", self.routes_path(), seg(route_id)), route)
            .await
    }

    pub async fn delete(&self, route_id: &str) -> Result<()> {
        self.client
            .delete(format!("{}/{}", self.routes_path(), seg(route_id)))
            .await
    }
}
