//! The built wasm Worker, running in workerd under `wrangler dev`.

use e2e::{api, git_head, http};

#[tokio::test]
async fn healthz_answers_with_the_commit_it_was_built_from() {
    let response = http()
        .get(format!("{}/healthz", api()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    let commit = body["commit"].as_str().unwrap();
    // `-dirty` is appended when the tree had uncommitted changes.
    assert!(
        commit.starts_with(&git_head()),
        "the Worker reports commit {commit}, the checkout is at {}",
        git_head()
    );
}
