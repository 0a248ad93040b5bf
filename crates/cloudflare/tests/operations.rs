//! Each typed operation: the method, path, query and body it sends, checked
//! against the operation's request schema in Cloudflare's OpenAPI document,
//! and the decoding of a representative response.

mod common;

use std::collections::BTreeMap;

use cloudflare::access::{AccessAppInput, AccessRule, CreateServiceToken, Decision, PolicyInput};
use cloudflare::dns::{DnsRecordInput, ListDnsRecords};
use cloudflare::pages::{
    CreateProject, DeploymentConfig, DeploymentConfigs, EnvVar, PagesEnvironment, ServiceBinding,
    UpdateProject,
};
use cloudflare::workers::{
    Annotations, AttachDomain, CreateDeployment, ListDomains, ListVersions, ModuleKind, PutSecret,
    RouteInput, ScriptSettings, UploadMetadata, WorkerBinding, WorkerModule, WorkerUpload,
};
use cloudflare::Error;
use common::{openapi, parse_multipart, MockServer, Recorded, Reply};
use serde_json::{json, Value};

const ACCOUNT: &str = "0123456789abcdef0123456789abcdef";
const ZONE: &str = "fedcba9876543210fedcba9876543210";

fn dns_record(id: &str, name: &str) -> Value {
    json!({"id": id, "type": "CNAME", "name": name, "content": "api.example.net", "proxied": true,
           "ttl": 1, "comment": "managed-by: deploy", "tags": [], "proxiable": true,
           "created_on": "2026-01-01T00:00:00Z", "modified_on": "2026-01-01T00:00:00Z", "meta": {},
           "settings": {}})
}

/// Runs `call` against a server answering `reply`, checks every request
/// against the schema, and returns the requests.
async fn exchange<F, Fut>(
    reply: impl Fn(&Recorded, usize) -> Reply + Send + Sync + 'static,
    call: F,
) -> Vec<Recorded>
where
    F: FnOnce(cloudflare::Client) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let server = MockServer::start(reply).await;
    let (client, _) = server.client();
    call(client).await;
    let requests = server.requests();
    for request in &requests {
        openapi::check(request);
    }
    requests
}

#[tokio::test]
async fn zones_find_by_name_and_get() {
    let requests = exchange(
        |r, _| {
            if r.path == "/zones" {
                Reply::page(
                    json!([{"id": ZONE, "name": "example.com", "status": "active", "name_servers": []}]),
                    json!({"page": 1, "per_page": 50, "total_pages": 1}),
                )
            } else {
                Reply::ok(json!({"id": ZONE, "name": "example.com"}))
            }
        },
        |client| async move {
            let zone = client.zones().find_by_name("example.com").await.unwrap().unwrap();
            assert_eq!(zone.id, ZONE);
            let zone = client.zones().get(ZONE).await.unwrap();
            assert_eq!(zone.name, "example.com");
        },
    )
    .await;
    assert_eq!(requests[0].query("name"), Some("example.com"));
    assert_eq!(requests[0].query("per_page"), Some("50"));
    assert_eq!(requests[1].path, format!("/zones/{ZONE}"));
}

#[tokio::test]
async fn zone_lookup_of_an_unknown_name_is_none() {
    exchange(
        |_, _| Reply::page(json!([]), json!({"page": 1, "total_pages": 0})),
        |client| async move {
            assert!(client
                .zones()
                .find_by_name("nope.example")
                .await
                .unwrap()
                .is_none());
        },
    )
    .await;
}

#[tokio::test]
async fn token_verify() {
    let requests = exchange(
        |_, _| Reply::ok(json!({"id": "t1", "status": "active"})),
        |client| async move {
            assert!(client.tokens().verify().await.unwrap().is_active());
            client.tokens().verify_account_token(ACCOUNT).await.unwrap();
        },
    )
    .await;
    assert_eq!(requests[0].path, "/user/tokens/verify");
    assert_eq!(
        requests[1].path,
        format!("/accounts/{ACCOUNT}/tokens/verify")
    );
}

#[tokio::test]
async fn dns_list_with_filters_across_pages() {
    let requests = exchange(
        |r, _| {
            let page: u64 = r.query("page").unwrap().parse().unwrap();
            Reply::page(
                json!([dns_record(&format!("r{page}"), "api.example.com")]),
                json!({"page": page, "per_page": 500, "total_pages": 2}),
            )
        },
        |client| async move {
            let filter = ListDnsRecords {
                name: Some("api.example.com".into()),
                record_type: Some("CNAME".into()),
                comment_startswith: Some("managed-by:".into()),
                ..Default::default()
            };
            let records = client.dns(ZONE).list(&filter).await.unwrap();
            let ids: Vec<_> = records.iter().map(|r| r.id.as_str()).collect();
            assert_eq!(ids, ["r1", "r2"]);
            assert_eq!(records[0].comment.as_deref(), Some("managed-by: deploy"));
            assert!(records[0].proxied);
        },
    )
    .await;
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].path, format!("/zones/{ZONE}/dns_records"));
    assert_eq!(requests[0].query("name"), Some("api.example.com"));
    assert_eq!(requests[0].query("type"), Some("CNAME"));
    assert_eq!(requests[0].query("comment.startswith"), Some("managed-by:"));
}

#[tokio::test]
async fn dns_create_update_patch_delete() {
    let requests = exchange(
        |r, _| {
            if r.method == "DELETE" {
                Reply::ok(json!({"id": "r1"}))
            } else {
                Reply::ok(dns_record("r1", "api.example.com"))
            }
        },
        |client| async move {
            let dns = client.dns(ZONE);
            let input = DnsRecordInput::new("CNAME", "api.example.com", "api.example.net")
                .proxied(true)
                .comment("managed-by: deploy");
            assert_eq!(dns.create(&input).await.unwrap().id, "r1");
            dns.update("r1", &input).await.unwrap();
            dns.patch("r1", &input.clone().ttl(300).proxied(false))
                .await
                .unwrap();
            dns.delete("r1").await.unwrap();
            let a = DnsRecordInput::new("A", "origin.example.com", "192.0.2.1");
            dns.create(&a).await.unwrap();
        },
    )
    .await;
    let methods: Vec<_> = requests.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(methods, ["POST", "PUT", "PATCH", "DELETE", "POST"]);
    assert_eq!(
        requests[0].json(),
        json!({"type": "CNAME", "name": "api.example.com", "content": "api.example.net",
               "ttl": 1, "proxied": true, "comment": "managed-by: deploy"})
    );
    assert_eq!(requests[1].path, format!("/zones/{ZONE}/dns_records/r1"));
    assert_eq!(requests[2].json()["ttl"], 300);
    assert_eq!(requests[3].path, format!("/zones/{ZONE}/dns_records/r1"));
    assert!(requests[3].body.is_empty());
    // Optional fields are omitted, not null.
    assert!(requests[4].json().get("proxied").is_none());
}

#[tokio::test]
async fn dns_record_not_found_is_typed() {
    exchange(
        // Status 400, not 404: `is_not_found` must come from the code alone.
        |_, _| Reply::error(400, 81044, "Record does not exist."),
        |client| async move {
            let error = client.dns(ZONE).get("gone").await.unwrap_err();
            assert!(error.is_not_found());
        },
    )
    .await;
}

fn upload() -> WorkerUpload {
    WorkerUpload {
        metadata: UploadMetadata {
            main_module: "worker.js".into(),
            bindings: vec![
                WorkerBinding::plain_text("ENVIRONMENT", "stg"),
                WorkerBinding::secret_text("API_KEY", "s3cr3t"),
                WorkerBinding::service("AUTH", "auth-worker"),
            ],
            compatibility_date: Some("2026-01-01".into()),
            compatibility_flags: vec!["nodejs_compat".into()],
            keep_bindings: Some(vec!["secret_text".into()]),
            annotations: None,
        },
        modules: vec![
            WorkerModule::new(
                "worker.js",
                ModuleKind::EsModule,
                "import w from './index_bg.wasm';",
            ),
            WorkerModule::new(
                "index_bg.wasm",
                ModuleKind::Wasm,
                vec![0u8, 97, 115, 109, 1, 0, 0, 0],
            ),
        ],
    }
}

fn check_upload_parts(request: &Recorded) -> Value {
    // The form's length is known (shared module bytes are streamed with
    // their length), so it is sent with a Content-Length, not chunked.
    assert_eq!(
        request.header("content-length"),
        Some(request.body.len().to_string().as_str())
    );
    let parts = parse_multipart(request.header("content-type").unwrap(), &request.body);
    let names: Vec<_> = parts.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["metadata", "worker.js", "index_bg.wasm"]);
    assert_eq!(parts[0].content_type.as_deref(), Some("application/json"));
    assert_eq!(
        parts[1].content_type.as_deref(),
        Some("application/javascript+module")
    );
    assert_eq!(parts[1].filename.as_deref(), Some("worker.js"));
    assert_eq!(parts[1].body, b"import w from './index_bg.wasm';");
    assert_eq!(parts[2].content_type.as_deref(), Some("application/wasm"));
    assert_eq!(parts[2].filename.as_deref(), Some("index_bg.wasm"));
    assert_eq!(parts[2].body, [0u8, 97, 115, 109, 1, 0, 0, 0]);
    serde_json::from_slice(&parts[0].body).unwrap()
}

#[tokio::test]
async fn workers_upload_script_as_multipart() {
    let requests = exchange(
        |_, _| Reply::ok(json!({"id": "api", "etag": "e1", "startup_time_ms": 3})),
        |client| async move {
            let script = client
                .workers(ACCOUNT)
                .upload_script("api", &upload())
                .await
                .unwrap();
            assert_eq!(script.etag.as_deref(), Some("e1"));
        },
    )
    .await;
    assert_eq!(requests[0].method, "PUT");
    assert_eq!(
        requests[0].path,
        format!("/accounts/{ACCOUNT}/workers/scripts/api")
    );
    let metadata = check_upload_parts(&requests[0]);
    assert_eq!(
        metadata,
        json!({
            "main_module": "worker.js",
            "bindings": [
                {"type": "plain_text", "name": "ENVIRONMENT", "text": "stg"},
                {"type": "secret_text", "name": "API_KEY", "text": "s3cr3t"},
                {"type": "service", "name": "AUTH", "service": "auth-worker"}
            ],
            "compatibility_date": "2026-01-01",
            "compatibility_flags": ["nodejs_compat"],
            "keep_bindings": ["secret_text"]
        })
    );
}

#[tokio::test]
async fn workers_upload_version_with_annotations() {
    let requests = exchange(
        |_, _| {
            Reply::ok(
                json!({"id": "v-new", "number": 7, "metadata": {"source": "api"}, "resources": {}}),
            )
        },
        |client| async move {
            let mut upload = upload();
            upload.metadata.annotations = Some(Annotations {
                message: Some("deploy abc123".into()),
                tag: Some("abc123".into()),
                triggered_by: None,
            });
            let version = client
                .workers(ACCOUNT)
                .upload_version("api", &upload)
                .await
                .unwrap();
            assert_eq!(version.id, "v-new");
        },
    )
    .await;
    assert_eq!(requests[0].method, "POST");
    assert_eq!(
        requests[0].path,
        format!("/accounts/{ACCOUNT}/workers/scripts/api/versions")
    );
    let metadata = check_upload_parts(&requests[0]);
    assert_eq!(
        metadata["annotations"],
        json!({"workers/message": "deploy abc123", "workers/tag": "abc123"})
    );
}

#[tokio::test]
async fn a_retried_upload_resends_the_same_body() {
    let requests = exchange(
        |_, n| {
            if n == 0 {
                Reply::html(503, "<html>try later</html>")
            } else {
                Reply::ok(json!({"id": "api", "etag": "e1"}))
            }
        },
        |client| async move {
            client
                .workers(ACCOUNT)
                .upload_script("api", &upload())
                .await
                .unwrap();
        },
    )
    .await;
    assert_eq!(requests.len(), 2);
    check_upload_parts(&requests[1]);
    // Same parts, same bytes (only the multipart boundary differs).
    let parts = |r: &Recorded| {
        parse_multipart(r.header("content-type").unwrap(), &r.body)
            .into_iter()
            .map(|p| (p.name, p.filename, p.content_type, p.body))
            .collect::<Vec<_>>()
    };
    assert_eq!(parts(&requests[0]), parts(&requests[1]));
}

#[tokio::test]
async fn upload_rejects_a_main_module_that_is_not_uploaded() {
    let server = MockServer::start(|_, _| Reply::ok(json!(null))).await;
    let (client, _) = server.client();
    let mut bad = upload();
    bad.metadata.main_module = "missing.js".into();
    let error = client
        .workers(ACCOUNT)
        .upload_script("api", &bad)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::InvalidRequest(_)));
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn workers_versions_list_and_get() {
    let requests = exchange(
        |r, _| {
            if r.path.ends_with("/versions") {
                Reply::page(
                    json!({"items": [{"id": "v2", "number": 2, "metadata": {"source": "api"}}, {"id": "v1", "number": 1}]}),
                    json!({"page": 1, "per_page": 20, "total_count": 2}),
                )
            } else {
                Reply::ok(json!({"id": "v2", "number": 2, "annotations": {"workers/tag": "abc"}, "resources": {"bindings": []}}))
            }
        },
        |client| async move {
            let workers = client.workers(ACCOUNT);
            let page = workers.list_versions("api", &ListVersions::default()).await.unwrap();
            assert_eq!(page.items.len(), 2);
            assert_eq!(page.items[0].metadata.source.as_deref(), Some("api"));
            assert_eq!(page.result_info.unwrap().total_count, Some(2));
            let version = workers.get_version("api", "v2").await.unwrap();
            assert_eq!(version.annotations.unwrap().tag.as_deref(), Some("abc"));
        },
    )
    .await;
    assert_eq!(requests[0].query("page"), Some("1"));
    assert_eq!(
        requests[1].path,
        format!("/accounts/{ACCOUNT}/workers/scripts/api/versions/v2")
    );
}

#[tokio::test]
async fn workers_deployments_list_and_gradual_create() {
    let v1 = "6b1a7b4f-0000-4000-8000-000000000001";
    let v2 = "6b1a7b4f-0000-4000-8000-000000000002";
    let requests = exchange(
        move |r, _| {
            let deployment = json!({"id": "d1", "source": "api", "strategy": "percentage",
                "created_on": "2026-01-01T00:00:00Z",
                "versions": [{"version_id": v1, "percentage": 90.0}, {"version_id": v2, "percentage": 10.0}],
                "annotations": {"workers/message": "canary"}});
            if r.method == "GET" {
                Reply::ok(json!({"deployments": [deployment]}))
            } else {
                Reply::ok(deployment)
            }
        },
        |client| async move {
            let workers = client.workers(ACCOUNT);
            let current = workers.list_deployments("api").await.unwrap();
            assert_eq!(current[0].versions[1].percentage, 10.0);
            let split = CreateDeployment::split(vec![(v1.into(), 90.0), (v2.into(), 10.0)]).message("canary");
            let created = workers.create_deployment("api", &split).await.unwrap();
            assert_eq!(created.id, "d1");
            workers.create_deployment("api", &CreateDeployment::single(v2)).await.unwrap();
            workers.create_deployment_forced("api", &CreateDeployment::single(v1)).await.unwrap();
        },
    )
    .await;
    assert_eq!(requests[2].query("force"), None);
    assert_eq!(requests[3].query("force"), Some("true"));
    assert_eq!(
        requests[3].json(),
        json!({"strategy": "percentage", "versions": [{"version_id": v1, "percentage": 100.0}]})
    );
    assert_eq!(
        requests[1].json(),
        json!({"strategy": "percentage",
               "versions": [{"version_id": v1, "percentage": 90.0}, {"version_id": v2, "percentage": 10.0}],
               "annotations": {"workers/message": "canary"}})
    );
    assert_eq!(
        requests[2].json(),
        json!({"strategy": "percentage", "versions": [{"version_id": v2, "percentage": 100.0}]})
    );
}

#[tokio::test]
async fn deployment_split_must_add_up_to_100() {
    let server = MockServer::start(|_, _| Reply::ok(json!(null))).await;
    let (client, _) = server.client();
    let bad = CreateDeployment::split(vec![("a".into(), 50.0), ("b".into(), 40.0)]);
    let error = client
        .workers(ACCOUNT)
        .create_deployment("api", &bad)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::InvalidRequest(_)));
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn workers_script_settings_get_and_patch() {
    let requests = exchange(
        |_, _| Reply::ok(json!({"logpush": false, "observability": {"enabled": true, "head_sampling_rate": 1}, "tags": null, "tail_consumers": null})),
        |client| async move {
            let workers = client.workers(ACCOUNT);
            let settings = workers.get_script_settings("api").await.unwrap();
            assert!(settings.observability.unwrap().enabled);
            let patch = ScriptSettings {
                logpush: Some(true),
                ..Default::default()
            };
            workers.patch_script_settings("api", &patch).await.unwrap();
        },
    )
    .await;
    assert_eq!(requests[1].method, "PATCH");
    assert_eq!(
        requests[1].path,
        format!("/accounts/{ACCOUNT}/workers/scripts/api/script-settings")
    );
    assert_eq!(requests[1].json(), json!({"logpush": true}));
}

#[tokio::test]
async fn workers_secrets_list_put_delete() {
    let requests = exchange(
        |r, _| match r.method.as_str() {
            "GET" => Reply::ok(json!([{"name": "API_KEY", "type": "secret_text"}])),
            "PUT" => Reply::ok(json!({"name": "API_KEY", "type": "secret_text"})),
            _ => Reply::ok(json!({})),
        },
        |client| async move {
            let workers = client.workers(ACCOUNT);
            let secrets = workers.list_secrets("api").await.unwrap();
            assert_eq!(secrets[0].name, "API_KEY");
            workers
                .put_secret("api", &PutSecret::new("API_KEY", "s3cr3t"))
                .await
                .unwrap();
            workers.delete_secret("api", "API_KEY").await.unwrap();
        },
    )
    .await;
    assert_eq!(
        requests[1].json(),
        json!({"name": "API_KEY", "text": "s3cr3t", "type": "secret_text"})
    );
    assert_eq!(requests[2].method, "DELETE");
    assert_eq!(
        requests[2].path,
        format!("/accounts/{ACCOUNT}/workers/scripts/api/secrets/API_KEY")
    );
}

#[tokio::test]
async fn workers_scripts_list_and_delete() {
    let requests = exchange(
        |r, _| {
            if r.method == "GET" {
                Reply::ok(json!([{"id": "api", "etag": "e1", "has_modules": true}]))
            } else {
                Reply::ok(json!(null))
            }
        },
        |client| async move {
            let workers = client.workers(ACCOUNT);
            assert_eq!(
                workers.list_scripts().await.unwrap()[0].id.as_deref(),
                Some("api")
            );
            workers.delete_script("old", true).await.unwrap();
        },
    )
    .await;
    assert_eq!(
        requests[1].path,
        format!("/accounts/{ACCOUNT}/workers/scripts/old")
    );
    assert_eq!(requests[1].query("force"), Some("true"));
}

#[tokio::test]
async fn workers_routes_crud() {
    let requests = exchange(
        |r, _| match r.method.as_str() {
            "GET" => {
                Reply::ok(json!([{"id": "rt1", "pattern": "api.example.com/*", "script": "api"}]))
            }
            "DELETE" => Reply::ok(json!({"id": "rt1"})),
            _ => Reply::ok(json!({"id": "rt1", "pattern": "api.example.com/*", "script": "api"})),
        },
        |client| async move {
            let routes = client.worker_routes(ZONE);
            assert_eq!(routes.list().await.unwrap()[0].pattern, "api.example.com/*");
            let input = RouteInput::new("api.example.com/*", "api");
            routes.create(&input).await.unwrap();
            routes.update("rt1", &input).await.unwrap();
            routes.delete("rt1").await.unwrap();
        },
    )
    .await;
    assert_eq!(
        requests[1].json(),
        json!({"pattern": "api.example.com/*", "script": "api"})
    );
    assert_eq!(
        requests[2].path,
        format!("/zones/{ZONE}/workers/routes/rt1")
    );
    // The route id is named by the path; the body's `id` is output-only.
    assert_eq!(
        requests[2].json(),
        json!({"pattern": "api.example.com/*", "script": "api"})
    );
}

#[tokio::test]
async fn workers_custom_domains_list_attach_detach() {
    let domain = json!({"id": "dom1", "hostname": "api.example.com", "service": "api", "zone_id": ZONE,
                        "zone_name": "example.com", "environment": "production", "cert_id": "c"});
    let requests = exchange(
        move |r, _| match r.method.as_str() {
            "GET" => Reply::ok(json!([domain.clone()])),
            "PUT" => Reply::ok(domain.clone()),
            _ => Reply::ok(json!(null)),
        },
        |client| async move {
            let workers = client.workers(ACCOUNT);
            let filter = ListDomains {
                hostname: Some("api.example.com".into()),
                ..Default::default()
            };
            assert_eq!(workers.list_domains(&filter).await.unwrap()[0].id, "dom1");
            let attach = AttachDomain {
                zone_id: Some(ZONE.into()),
                ..AttachDomain::new("api.example.com", "api")
            };
            assert_eq!(workers.attach_domain(&attach).await.unwrap().service, "api");
            workers
                .attach_domain(&AttachDomain::new("www.example.com", "api"))
                .await
                .unwrap();
            workers.detach_domain("dom1").await.unwrap();
        },
    )
    .await;
    assert_eq!(requests[0].query("hostname"), Some("api.example.com"));
    assert_eq!(
        requests[1].path,
        format!("/accounts/{ACCOUNT}/workers/domains")
    );
    assert_eq!(
        requests[1].json(),
        json!({"hostname": "api.example.com", "service": "api", "zone_id": ZONE})
    );
    assert_eq!(
        requests[2].json(),
        json!({"hostname": "www.example.com", "service": "api"})
    );
    assert_eq!(
        requests[3].path,
        format!("/accounts/{ACCOUNT}/workers/domains/dom1")
    );
}

fn project(name: &str) -> Value {
    json!({"id": "p1", "name": name, "subdomain": format!("{name}.pages.dev"), "domains": [],
           "production_branch": "main",
           "deployment_configs": {"preview": {}, "production": {
               "env_vars": {"API_URL": {"type": "plain_text", "value": "https://api.example.com"},
                            "TOKEN": {"type": "secret_text", "value": ""}},
               "services": {"API": {"service": "api", "environment": "production"}}}},
           "created_on": "2026-01-01T00:00:00Z", "latest_deployment": null, "canonical_deployment": null})
}

#[tokio::test]
async fn pages_projects_crud() {
    let requests = exchange(
        |r, _| match (r.method.as_str(), r.path.as_str()) {
            ("GET", p) if p.ends_with("/projects") => {
                let page: u64 = r.query("page").unwrap().parse().unwrap();
                Reply::page(
                    json!([project(&format!("site{page}"))]),
                    json!({"page": page, "total_pages": 2}),
                )
            }
            ("DELETE", _) => Reply::ok(json!(null)),
            _ => Reply::ok(project("site")),
        },
        |client| async move {
            let pages = client.pages(ACCOUNT);
            let projects = pages.list_projects().await.unwrap();
            assert_eq!(projects.len(), 2);
            let production = projects[0]
                .deployment_configs
                .clone()
                .unwrap()
                .production
                .unwrap();
            assert_eq!(
                production.env_vars.unwrap()["API_URL"],
                Some(EnvVar::plain("https://api.example.com"))
            );
            assert_eq!(
                production.services.unwrap()["API"]
                    .as_ref()
                    .unwrap()
                    .service,
                "api"
            );
            pages.get_project("site").await.unwrap();

            let mut env_vars = BTreeMap::new();
            env_vars.insert(
                "API_URL".to_string(),
                Some(EnvVar::plain("https://api.example.com")),
            );
            env_vars.insert("TOKEN".to_string(), Some(EnvVar::secret("s3cr3t")));
            let mut services = BTreeMap::new();
            services.insert("API".to_string(), Some(ServiceBinding::new("api")));
            let config = DeploymentConfig {
                env_vars: Some(env_vars),
                services: Some(services),
                compatibility_date: Some("2026-01-01".into()),
                ..Default::default()
            };
            let create = CreateProject {
                name: "site".into(),
                production_branch: "main".into(),
                deployment_configs: Some(DeploymentConfigs {
                    preview: Some(config.clone()),
                    production: Some(config),
                }),
            };
            pages.create_project(&create).await.unwrap();

            let mut removal = BTreeMap::new();
            removal.insert("OLD_VAR".to_string(), None);
            let update = UpdateProject {
                deployment_configs: Some(DeploymentConfigs {
                    production: Some(DeploymentConfig {
                        env_vars: Some(removal),
                        ..Default::default()
                    }),
                    preview: None,
                }),
                ..Default::default()
            };
            pages.update_project("site", &update).await.unwrap();
            pages.delete_project("old-site").await.unwrap();
        },
    )
    .await;
    assert_eq!(requests.len(), 6);
    let create = requests[3].json();
    assert_eq!(create["name"], "site");
    assert_eq!(
        create["deployment_configs"]["production"]["env_vars"]["TOKEN"],
        json!({"type": "secret_text", "value": "s3cr3t"})
    );
    assert_eq!(
        create["deployment_configs"]["production"]["services"]["API"],
        json!({"service": "api"})
    );
    assert_eq!(requests[4].method, "PATCH");
    assert_eq!(
        requests[4].json(),
        json!({"deployment_configs": {"production": {"env_vars": {"OLD_VAR": null}}}})
    );
    assert_eq!(
        requests[5].path,
        format!("/accounts/{ACCOUNT}/pages/projects/old-site")
    );
}

#[tokio::test]
async fn pages_project_name_taken_is_already_exists() {
    exchange(
        // Status 400, not 409: `is_already_exists` must come from the code.
        |_, _| Reply::error(400, 8000002, "A project with this name already exists."),
        |client| async move {
            let create = CreateProject {
                name: "site".into(),
                production_branch: "main".into(),
                deployment_configs: None,
            };
            let error = client
                .pages(ACCOUNT)
                .create_project(&create)
                .await
                .unwrap_err();
            assert!(error.is_already_exists());
        },
    )
    .await;
}

#[tokio::test]
async fn pages_domains_list_add_delete() {
    let requests = exchange(
        |r, _| match r.method.as_str() {
            "GET" => {
                Reply::ok(json!([{"id": "d1", "name": "www.example.com", "status": "active"}]))
            }
            "POST" => {
                Reply::ok(json!({"id": "d2", "name": "app.example.com", "status": "pending"}))
            }
            _ => Reply::ok(json!(null)),
        },
        |client| async move {
            let pages = client.pages(ACCOUNT);
            assert_eq!(
                pages.list_domains("site").await.unwrap()[0].name,
                "www.example.com"
            );
            let added = pages.add_domain("site", "app.example.com").await.unwrap();
            assert_eq!(added.status.as_deref(), Some("pending"));
            pages
                .delete_domain("site", "app.example.com")
                .await
                .unwrap();
        },
    )
    .await;
    assert_eq!(requests[1].json(), json!({"name": "app.example.com"}));
    assert_eq!(
        requests[2].path,
        format!("/accounts/{ACCOUNT}/pages/projects/site/domains/app.example.com")
    );
}

#[tokio::test]
async fn pages_deployments_list_get_rollback_and_upload_token() {
    let deployment = json!({"id": "dep1", "short_id": "dep1", "url": "https://dep1.site.pages.dev",
                            "environment": "production", "created_on": "2026-01-01T00:00:00Z", "aliases": null});
    let requests = exchange(
        move |r, _| {
            if r.path.ends_with("/deployments") {
                Reply::page(
                    json!([deployment.clone()]),
                    json!({"page": 1, "per_page": 5, "total_pages": 1}),
                )
            } else if r.path.ends_with("/upload-token") {
                Reply::ok(json!({"jwt": "eyJ.secret.jwt"}))
            } else {
                Reply::ok(deployment.clone())
            }
        },
        |client| async move {
            let pages = client.pages(ACCOUNT);
            let page = pages
                .list_deployments("site", Some(PagesEnvironment::Production), 1, 5)
                .await
                .unwrap();
            assert_eq!(page.items[0].id, "dep1");
            pages.get_deployment("site", "dep1").await.unwrap();
            pages.rollback_deployment("site", "dep1").await.unwrap();
            let token = pages.upload_token("site").await.unwrap();
            assert_eq!(token.jwt.expose(), "eyJ.secret.jwt");
            assert!(!format!("{token:?}").contains("secret"));
        },
    )
    .await;
    assert_eq!(requests[0].query("env"), Some("production"));
    assert_eq!(requests[0].query("per_page"), Some("5"));
    assert_eq!(requests[2].method, "POST");
    assert_eq!(
        requests[2].path,
        format!("/accounts/{ACCOUNT}/pages/projects/site/deployments/dep1/rollback")
    );
}

#[tokio::test]
async fn access_apps_crud() {
    let app = json!({"id": "app1", "aud": "aud1", "name": "API", "domain": "api.example.com",
                     "type": "self_hosted", "session_duration": "24h",
                     "destinations": [{"type": "public", "uri": "api.example.com"}],
                     "policies": [{"id": "pol1", "name": "staff", "precedence": 1, "decision": "allow"}]});
    let requests = exchange(
        move |r, _| match r.method.as_str() {
            "GET" => Reply::page(json!([app.clone()]), json!({"page": 1, "total_pages": 1})),
            "DELETE" => Reply::ok(json!({"id": "app1"})),
            _ => Reply::ok(app.clone()),
        },
        |client| async move {
            let access = client.access(ACCOUNT);
            let apps = access.list_apps().await.unwrap();
            assert_eq!(apps[0].policies[0].id, "pol1");
            let mut input =
                AccessAppInput::self_hosted("API", "api.example.com").policies(&["pol1", "pol2"]);
            input.session_duration = Some("24h".into());
            input.service_auth_401_redirect = Some(true);
            access.create_app(&input).await.unwrap();
            access.update_app("app1", &input).await.unwrap();
            access.delete_app("app1").await.unwrap();
        },
    )
    .await;
    assert_eq!(requests[0].path, format!("/accounts/{ACCOUNT}/access/apps"));
    assert_eq!(
        requests[1].json(),
        json!({"type": "self_hosted", "name": "API", "domain": "api.example.com",
               "destinations": [{"type": "public", "uri": "api.example.com"}],
               "session_duration": "24h",
               "policies": [{"id": "pol1", "precedence": 1}, {"id": "pol2", "precedence": 2}],
               "service_auth_401_redirect": true})
    );
    assert_eq!(requests[2].method, "PUT");
    assert_eq!(
        requests[2].path,
        format!("/accounts/{ACCOUNT}/access/apps/app1")
    );
}

#[tokio::test]
async fn access_reusable_policies_crud() {
    let policy = json!({"id": "pol1", "name": "staff", "decision": "allow", "reusable": true,
                        "include": [{"email_domain": {"domain": "example.com"}}, {"any_valid_service_token": {}},
                                    {"ip": {"ip": "192.0.2.0/24"}}],
                        "exclude": [], "require": []});
    let requests = exchange(
        move |r, _| match r.method.as_str() {
            "GET" => Reply::page(
                json!([policy.clone()]),
                json!({"page": 1, "total_pages": 1}),
            ),
            "DELETE" => Reply::ok(json!({"id": "pol1"})),
            _ => Reply::ok(policy.clone()),
        },
        |client| async move {
            let access = client.access(ACCOUNT);
            let policies = access.list_policies().await.unwrap();
            assert_eq!(
                policies[0].include[0],
                AccessRule::email_domain("example.com")
            );
            assert_eq!(policies[0].include[1], AccessRule::AnyValidServiceToken {});
            assert!(matches!(policies[0].include[2], AccessRule::Other(_)));
            let input = PolicyInput::new(
                "staff",
                Decision::Allow,
                vec![
                    AccessRule::email("ops@example.com"),
                    AccessRule::email_domain("example.com"),
                    AccessRule::service_token("st1"),
                    AccessRule::AnyValidServiceToken {},
                ],
            );
            access.create_policy(&input).await.unwrap();
            let bypass = PolicyInput::new(
                "ci",
                Decision::NonIdentity,
                vec![AccessRule::service_token("st1")],
            );
            access.update_policy("pol1", &bypass).await.unwrap();
            access.delete_policy("pol1").await.unwrap();
        },
    )
    .await;
    assert_eq!(
        requests[1].json(),
        json!({"name": "staff", "decision": "allow", "include": [
            {"email": {"email": "ops@example.com"}},
            {"email_domain": {"domain": "example.com"}},
            {"service_token": {"token_id": "st1"}},
            {"any_valid_service_token": {}}
        ]})
    );
    assert_eq!(requests[2].json()["decision"], "non_identity");
    assert_eq!(
        requests[3].path,
        format!("/accounts/{ACCOUNT}/access/policies/pol1")
    );
}

#[tokio::test]
async fn access_service_tokens_list_create_delete() {
    let requests = exchange(
        |r, _| match r.method.as_str() {
            "GET" => Reply::page(
                json!([{"id": "st1", "name": "ci", "client_id": "cid.access", "duration": "8760h"}]),
                json!({"page": 1, "total_pages": 1}),
            ),
            "POST" => Reply::json(201, json!({"success": true, "errors": [], "messages": [], "result":
                {"id": "st2", "name": "ci", "client_id": "cid2.access", "client_secret": "very-secret", "duration": "8760h"}})),
            _ => Reply::ok(json!({"id": "st1"})),
        },
        |client| async move {
            let access = client.access(ACCOUNT);
            assert_eq!(access.list_service_tokens().await.unwrap()[0].name, "ci");
            let created = access
                .create_service_token(&CreateServiceToken {
                    name: "ci".into(),
                    duration: Some("8760h".into()),
                })
                .await
                .unwrap();
            assert_eq!(created.client_secret.expose(), "very-secret");
            assert!(!format!("{created:?}").contains("very-secret"));
            access.delete_service_token("st1").await.unwrap();
        },
    )
    .await;
    assert_eq!(
        requests[1].json(),
        json!({"name": "ci", "duration": "8760h"})
    );
    assert_eq!(
        requests[2].path,
        format!("/accounts/{ACCOUNT}/access/service_tokens/st1")
    );
}

#[test]
fn schema_check_catches_a_wrong_body() {
    // The check itself must reject what the stand-in would reject.
    let mut headers = axum::http::HeaderMap::new();
    headers.insert("content-type", "application/json".parse().unwrap());
    let request = |query: Vec<(String, String)>, body: Value| Recorded {
        method: "POST".into(),
        path: format!("/zones/{ZONE}/dns_records"),
        query,
        headers: headers.clone(),
        body: serde_json::to_vec(&body).unwrap().into(),
    };
    let good =
        json!({"type": "CNAME", "name": "a.example.com", "content": "b.example.com", "ttl": 1});
    assert_eq!(
        openapi::problems(&request(vec![], good)),
        Vec::<String>::new()
    );

    // A query parameter the operation does not declare.
    let problems = openapi::problems(&request(
        vec![("comment_startswith".into(), "x".into())],
        json!({"type": "CNAME", "name": "a.example.com", "content": "b.example.com", "ttl": 1}),
    ));
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("comment_startswith"), "{problems:?}");

    // No query: only the body can be wrong. It differs from `good` only by
    // the missing (required) `ttl`, so no record type's schema fits.
    let problems = openapi::problems(&request(
        vec![],
        json!({"type": "CNAME", "name": "a.example.com", "content": "b.example.com"}),
    ));
    assert_eq!(
        problems,
        [
            r#"{"content":"b.example.com","name":"a.example.com","type":"CNAME"} is not valid under any of the schemas listed in the 'anyOf' keyword"#
        ],
    );

    // A misspelled field: accepted by the stand-in (and by Cloudflare),
    // flagged by the strict check.
    let problems = openapi::problems(&request(
        vec![],
        json!({"type": "CNAME", "name": "a.example.com", "content": "b.example.com", "ttl": 1,
               "proxyed": true}),
    ));
    assert_eq!(
        problems,
        ["/proxyed: field `proxyed` is not declared by the schema"]
    );

    // An output-only field (a route's `id`, marked readOnly beside its
    // `$ref`), as `WorkerRoutes::update` used to send.
    let route = Recorded {
        method: "PUT".into(),
        path: format!("/zones/{ZONE}/workers/routes/rt1"),
        query: vec![],
        headers: headers.clone(),
        body: serde_json::to_vec(
            &json!({"id": "rt1", "pattern": "a.example.com/*", "script": "api"}),
        )
        .unwrap()
        .into(),
    };
    assert_eq!(
        openapi::problems(&route),
        ["/id: field `id` is output-only (readOnly) but was sent"]
    );
}

#[test]
fn schema_check_catches_a_wrong_upload_metadata() {
    let boundary = "XyZ";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"metadata\"\r\nContent-Type: application/json\r\n\r\n{}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"worker.js\"; filename=\"worker.js\"\r\nContent-Type: application/javascript+module\r\n\r\nexport default {{}}\r\n--{boundary}--\r\n",
        json!({"main_module": "worker.js", "bindings": [{"type": "plain_text", "name": "A"}], "compat_date": "x"})
    );
    let mut headers = axum::http::HeaderMap::new();
    headers.insert(
        "content-type",
        format!("multipart/form-data; boundary={boundary}")
            .parse()
            .unwrap(),
    );
    let request = Recorded {
        method: "PUT".into(),
        path: format!("/accounts/{ACCOUNT}/workers/scripts/api"),
        query: vec![],
        headers,
        body: body.into_bytes().into(),
    };
    let problems = openapi::problems(&request);
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("/compat_date:") && p.contains("not declared")),
        "{problems:?}"
    );
    // The plain_text binding lacks its `text`.
    assert!(
        problems
            .iter()
            .any(|p| p.contains("/bindings/0") && p.contains("text")),
        "{problems:?}"
    );
}
