//! The real `wrangler pages deploy` against the stand-in (skipped, with a
//! `SKIPPED:` line on stderr, when the repository's node_modules has no
//! wrangler; failed instead when `CI=true`).
mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;
use reqwest::StatusCode;
use serde_json::json;

fn wrangler() -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../node_modules/.bin/wrangler");
    path.exists().then_some(path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrangler_pages_deploy_uploads_assets_and_creates_a_deployment() {
    let Some(wrangler) = wrangler() else {
        // CI always installs node_modules, so a missing wrangler there is a
        // broken setup, not a reason to pass.
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "node_modules/.bin/wrangler is absent with CI=true (run npm ci at the repository root)"
        );
        eprintln!(
            "SKIPPED: wrangler_pages_deploy_uploads_assets_and_creates_a_deployment: node_modules/.bin/wrangler is absent (run npm ci at the repository root)"
        );
        return;
    };
    let api = start().await;
    let (status, _) = api
        .post(
            &format!("/accounts/{ACCOUNT}/pages/projects"),
            json!({"name": "web-rc", "production_branch": "main"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let site = std::env::temp_dir().join(format!("standin-wrangler-site-{}", std::process::id()));
    std::fs::create_dir_all(site.join("assets")).unwrap();
    std::fs::write(site.join("index.html"), "<h1>rc</h1>\n").unwrap();
    std::fs::write(site.join("assets/app.css"), "body { margin: 0 }\n").unwrap();
    // Sent as their own parts of the deployment, typed as wrangler types
    // them (see ENCODING_QUIRKS in openapi.rs), not as assets.
    std::fs::write(site.join("_headers"), "/*\n  X-Frame-Options: DENY\n").unwrap();
    std::fs::write(site.join("_redirects"), "/old /new 301\n").unwrap();
    let home = site.with_extension("home");
    std::fs::create_dir_all(&home).unwrap();

    let base_url = api.standin.base_url();
    let (site_dir, home_dir) = (site.clone(), home.clone());
    let output = tokio::task::spawn_blocking(move || {
        Command::new(wrangler)
            .args(["pages", "deploy"])
            .arg(&site)
            .args([
                "--project-name",
                "web-rc",
                "--branch",
                "main",
                "--commit-dirty=true",
            ])
            .current_dir(&home)
            .env("CLOUDFLARE_API_BASE_URL", base_url)
            .env("CLOUDFLARE_API_TOKEN", TOKEN)
            .env("CLOUDFLARE_ACCOUNT_ID", ACCOUNT)
            .env("WRANGLER_SEND_METRICS", "false")
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", &home)
            .env("CI", "true")
            .output()
            .expect("wrangler runs")
    })
    .await
    .unwrap();
    let _ = std::fs::remove_dir_all(&site_dir);
    let _ = std::fs::remove_dir_all(&home_dir);
    let log = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "wrangler failed:\n{log}");
    assert!(log.contains("Deployment complete"), "{log}");

    let project = api.standin.pages_project("web-rc").unwrap();
    let deployment_id = project["canonical_deployment"]["id"].as_str().unwrap();
    let manifest = api.standin.pages_manifest("web-rc", deployment_id).unwrap();
    let mut files: Vec<&String> = manifest.as_object().unwrap().keys().collect();
    files.sort();
    assert_eq!(files, ["/assets/app.css", "/index.html"]);
    let operations: Vec<String> = api
        .standin
        .requests()
        .into_iter()
        .filter_map(|r| r.operation)
        .collect();
    assert!(
        operations.contains(&"wrangler check-missing".to_owned()),
        "{operations:?}"
    );
    assert!(operations.contains(&"pages-deployment-create-deployment".to_owned()));
    api.assert_clean();
}
