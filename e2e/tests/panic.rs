//! A panic in a handler, through the real Worker in workerd. In its own
//! test binary on purpose: a panic aborts the wasm instance, and every
//! request that instance is serving at that moment fails with it (each gets
//! the same 500 problem document), so nothing may run beside it.

use e2e::sentry::event_containing;
use e2e::{api, eventually, http, stack, unique};

fn allowed_origin() -> &'static str {
    &stack().api.as_ref().unwrap().allowed_origins[0]
}

#[tokio::test]
async fn a_panic_is_a_500_problem_and_the_next_request_is_served() {
    for _ in 0..2 {
        let response = http()
            .get(format!("{}/_test/panic", api()))
            .header("origin", allowed_origin())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 500);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        assert_eq!(
            response.headers()["access-control-allow-origin"],
            allowed_origin()
        );
        let id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["type"], "/problems/internal");
        assert_eq!(body["instance"], id.as_str());
        assert!(
            !body.to_string().contains("panic"),
            "no internals in the document: {body}"
        );

        // The isolate recovers: the next request is answered by a fresh
        // instance of the wasm module.
        let healthy = http()
            .get(format!("{}/healthz", api()))
            .send()
            .await
            .unwrap();
        assert_eq!(healthy.status(), 200);
    }
    a_panic_reaches_sentry_without_credentials().await;
}

/// Called by the test above, not beside it (see the module comment).
async fn a_panic_reaches_sentry_without_credentials() {
    let ray = format!("{}-AMS", unique("trap"));
    let response = http()
        .get(format!("{}/_test/panic?token=query-s3cret", api()))
        .header("cf-ray", &ray)
        .header("cookie", "CF_Authorization=cookie-s3cret")
        .header("cf-access-jwt-assertion", "jwt-s3cret")
        .header("user-agent", "e2e-panic")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    assert_eq!(response.headers()["x-request-id"], ray.as_str());
    let event = eventually("the trap report", || event_containing(&ray)).await;
    let text = event.to_string();
    for secret in ["query-s3cret", "cookie-s3cret", "jwt-s3cret"] {
        assert!(!text.contains(secret), "{secret} reached Sentry: {text}");
    }
    assert!(text.contains("WasmTrap"), "{text}");
    assert_eq!(event["data"]["environment"], "dev");
    assert_eq!(
        event["data"]["request"]["headers"]["user-agent"],
        "e2e-panic"
    );
    let healthy = http()
        .get(format!("{}/healthz", api()))
        .send()
        .await
        .unwrap();
    assert_eq!(healthy.status(), 200);
}
