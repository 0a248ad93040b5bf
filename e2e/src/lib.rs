//! Shared helpers for the end-to-end tests: the running stack's manifest
//! and an HTTP client. The tests themselves live in `tests/`, one file per
//! area, and talk to the stack only over the network, as production does.

use std::sync::OnceLock;
use std::time::Duration;

pub use stack_manifest::StackManifest;

/// The stack these tests run against (from `E2E_STACK`, which
/// `cargo xtask test` sets). Panics with instructions when there is none.
pub fn stack() -> &'static StackManifest {
    static STACK: OnceLock<StackManifest> = OnceLock::new();
    STACK.get_or_init(|| StackManifest::from_env().unwrap_or_else(|e| panic!("{e}")))
}

/// An HTTP client with a timeout, so a hung server fails a test instead of
/// hanging the suite.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client")
}

/// A value unique to this test run, to find what a test wrote.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

/// The commit the checkout is at (`git rev-parse HEAD`).
pub fn git_head() -> String {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("git");
    assert!(out.status.success(), "git rev-parse HEAD failed");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Base URL of the API Worker under `wrangler dev`.
pub fn api() -> &'static str {
    &stack()
        .api
        .as_ref()
        .expect("the stack runs the API Worker")
        .url
}

/// Sends `request` and parses the answer as JSON, failing the test on a
/// transport error or a body that is not JSON.
pub async fn json(request: reqwest::RequestBuilder) -> serde_json::Value {
    let response = request.send().await.expect("request sent");
    let status = response.status();
    let text = response.text().await.expect("body read");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {text}"))
}
