//! A wrong account or zone against the stand-in, which answers them as
//! Cloudflare does (400/7003, and 400/7000 for a path the API lacks): the
//! reads the deploy tool takes "not found" from (a Worker's deployments, a
//! Pages project, the lock record's renewal) fail as routing errors instead
//! of looking like absent objects.

use cloudflare::dns::{DnsRecordInput, TTL_AUTO};
use cloudflare::{Client, ClientConfig, Error, RetryPolicy};
use cloudflare_standin::{Config, StandIn};
use serde_json::Value;

const TOKEN: &str = "routing-test-token-0123456789";
const ACCOUNT: &str = "0123456789abcdef0123456789abcdef";
const ZONE: &str = "fedcba9876543210fedcba9876543210";
/// Well-formed ids the token cannot reach.
const WRONG_ACCOUNT: &str = "99999999999999999999999999999999";
const WRONG_ZONE: &str = "88888888888888888888888888888888";

async fn standin() -> StandIn {
    StandIn::start(Config::single(TOKEN, ACCOUNT, ZONE, "example.com"))
        .await
        .expect("the stand-in starts")
}

fn client(standin: &StandIn) -> Client {
    Client::new(
        ClientConfig::new(TOKEN)
            .base_url(standin.base_url())
            .retry(RetryPolicy::none()),
    )
    .expect("the client builds")
}

fn assert_unroutable(error: &Error, names: &str) {
    assert!(
        matches!(error, Error::Unroutable { .. }),
        "expected Unroutable, got {error:?}"
    );
    assert!(error.is_unroutable(), "{error}");
    assert!(!error.is_not_found(), "{error}");
    let message = error.to_string();
    assert!(message.contains(names), "{message}");
    assert!(
        message.contains("check the account_id and zone"),
        "{message}"
    );
}

#[tokio::test]
async fn a_wrong_account_or_zone_is_a_routing_error_not_an_absent_object() {
    let standin = standin().await;
    let client = client(&standin);

    // Under the right account, a missing Worker and project are absent.
    let error = client
        .workers(ACCOUNT)
        .list_deployments("api-worker")
        .await
        .unwrap_err();
    assert!(error.is_not_found() && !error.is_unroutable(), "{error}");
    let error = client.pages(ACCOUNT).get_project("web").await.unwrap_err();
    assert!(error.is_not_found() && !error.is_unroutable(), "{error}");

    // Under a wrong one, the same reads are not "absent" (which made `plan`
    // print creations and `deploy` take the lock before failing).
    let error = client
        .workers(WRONG_ACCOUNT)
        .list_deployments("api-worker")
        .await
        .unwrap_err();
    assert_unroutable(&error, WRONG_ACCOUNT);
    assert_eq!(error.codes(), [7003]);
    let error = client
        .pages(WRONG_ACCOUNT)
        .get_project("web")
        .await
        .unwrap_err();
    assert_unroutable(&error, WRONG_ACCOUNT);

    // Renewing the lock record in a wrong zone is not "the lock was taken".
    let input =
        DnsRecordInput::new("TXT", "_deploy-lock.api.example.com", "\"lock\"").ttl(TTL_AUTO);
    let error = client
        .dns(WRONG_ZONE)
        .patch("0123456789abcdef0123456789abcdef", &input)
        .await
        .unwrap_err();
    assert_unroutable(&error, WRONG_ZONE);

    // A path the API does not have: 7000, also no absence.
    let error = client
        .get::<Value>(format!("/accounts/{ACCOUNT}/workers/scriptz"))
        .await
        .unwrap_err();
    assert_unroutable(&error, "/workers/scriptz");
    assert_eq!((error.status(), error.codes()), (Some(400), vec![7000]));

    // Only the made-up path broke the schema; the rest were well-formed
    // requests to places the token cannot reach.
    let violations = standin.violations();
    assert_eq!(violations.len(), 1, "{violations:#?}");
    assert_eq!(violations[0].operation, "unknown operation");
}
