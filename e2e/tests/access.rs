//! Cloudflare Access on the admin routes, through the real Worker in
//! workerd: real RS256 tokens signed by the test with the stack's team key
//! (or keys it generates), published by the Access stand-in's certs
//! endpoint, which the Worker fetches and caches.

use e2e::access::{
    certs_fetches, encode_json, publish, service_claims, team_key, user_claims, user_token,
    SigningKey,
};
use e2e::{api, http, now, stack, unique};
use serde_json::{json, Value};

async fn whoami(token: Option<&str>, binding_token: Option<&str>) -> (u16, Value) {
    let mut request = http().get(format!("{}/v1/admin/whoami", api()));
    if let Some(token) = token {
        request = request.header("cf-access-jwt-assertion", token);
    }
    if let Some(secret) = binding_token {
        request = request.header("x-api-binding-token", secret);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    if status >= 400 {
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
    }
    (status, response.json().await.unwrap())
}

fn team() -> &'static stack_manifest::Access {
    &stack().access
}

#[tokio::test]
async fn a_valid_user_token_identifies_the_author() {
    let email = format!("{}@example.com", unique("ada-"));
    let (status, body) = whoami(Some(&user_token(&email)), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["kind"], "user");
    assert_eq!(body["email"], email.as_str());
    assert_eq!(body["author"], email.as_str());

    // The same token in the CF_Authorization cookie.
    let response = http()
        .get(format!("{}/v1/admin/whoami", api()))
        .header("cookie", format!("CF_Authorization={}", user_token(&email)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn the_allowed_service_token_is_accepted_and_others_are_not() {
    let allowed = service_claims(
        &team().team_domain,
        &team().aud,
        &team().service_token_client_id,
        now(),
    );
    let (status, body) = whoami(Some(&team_key().sign(&allowed)), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["kind"], "service");
    assert_eq!(body["client_id"], team().service_token_client_id.as_str());

    let other = service_claims(
        &team().team_domain,
        &team().aud,
        "someone-else.access",
        now(),
    );
    let (status, body) = whoami(Some(&team_key().sign(&other)), None).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["type"], "/problems/forbidden");
}

#[tokio::test]
async fn forged_expired_and_misaddressed_tokens_are_refused() {
    let key = team_key();
    let claims = || user_claims(&team().team_domain, &team().aud, "ada@example.com", now());
    let valid = key.sign(&claims());
    let (input, _) = valid.rsplit_once('.').unwrap();
    let parts: Vec<&str> = valid.split('.').collect();

    let alg_none = format!(
        "{}.{}.",
        encode_json(&json!({"alg": "none", "kid": key.kid})),
        parts[1]
    );
    // HS256 "signed" with the public key, the classic confusion attack.
    let hs256 = format!(
        "{}.{}.{}",
        encode_json(&json!({"alg": "HS256", "kid": key.kid})),
        parts[1],
        encode_json(&key.jwk())
    );
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        encode_json(&user_claims(
            &team().team_domain,
            &team().aud,
            "mallory@example.com",
            now()
        )),
        parts[2]
    );
    let impostor = SigningKey::generate(key.kid.clone()).sign(&claims());
    let mut expired = claims();
    expired["exp"] = json!(now() - 120);
    let mut early = claims();
    early["nbf"] = json!(now() + 600);
    let mut other_team = claims();
    other_team["iss"] = json!("https://evil.cloudflareaccess.com");
    let mut other_app = claims();
    other_app["aud"] = json!(["some-other-application"]);

    // Let in first, so that the Worker remembers its signature as checked:
    // tokens made from its parts must still be checked, and refused.
    let (status, body) = whoami(Some(&valid), None).await;
    assert_eq!(status, 200, "{body}");

    let cases: Vec<(&str, String, u16)> = vec![
        ("no token", String::new(), 401),
        ("garbage", "not.a.jwt".into(), 401),
        ("alg none", alg_none, 401),
        ("HS256 confusion", hs256, 401),
        ("changed claims", tampered, 401),
        ("signed by another key", impostor, 401),
        ("expired", key.sign(&expired), 401),
        ("not yet valid", key.sign(&early), 401),
        ("another team", key.sign(&other_team), 401),
        ("another application", key.sign(&other_app), 403),
        ("truncated signature", input.to_owned() + ".AAAA", 401),
    ];
    for (name, token, expected) in cases {
        let token = (!token.is_empty()).then_some(token);
        let (status, body) = whoami(token.as_deref(), None).await;
        assert_eq!(status, expected, "{name}: {body}");
        let kind = if expected == 401 {
            "/problems/unauthorized"
        } else {
            "/problems/forbidden"
        };
        assert_eq!(body["type"], kind, "{name}");
        assert!(body["instance"].is_string(), "{name}");
    }
}

#[tokio::test]
async fn the_admin_sites_token_counts_only_through_the_binding() {
    let site_token = team_key().sign(&user_claims(
        &team().team_domain,
        &team().binding_aud,
        "ada@example.com",
        now(),
    ));
    let (status, _) = whoami(Some(&site_token), None).await;
    assert_eq!(status, 403, "replayed straight at the API");
    let secret = &stack().api.as_ref().unwrap().binding_secret;
    let (status, body) = whoami(Some(&site_token), Some(secret)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["via"], "binding");
    let (status, body) = whoami(Some(&site_token), Some("a-guessed-secret")).await;
    assert_eq!(status, 403);
    assert!(!body.to_string().contains("a-guessed-secret"));
}

/// Longer than the local stack's JWKS cooldown (2 s) in whole seconds.
const COOLDOWN_PASSED: std::time::Duration = std::time::Duration::from_millis(3100);

/// Caching, unknown keys and rotation depend on the Worker's one cache and
/// the stand-in's fetch counter, so they run in order in one test.
#[tokio::test]
async fn keys_are_cached_unknown_kids_refetch_and_rotation_is_picked_up() {
    let (status, _) = whoami(Some(&user_token("ada@example.com")), None).await;
    assert_eq!(status, 200);

    // Cached: more requests, no more fetches.
    let before = certs_fetches().await;
    for _ in 0..5 {
        let (status, _) = whoami(Some(&user_token("ada@example.com")), None).await;
        assert_eq!(status, 200);
    }
    assert_eq!(certs_fetches().await, before);

    // A key the team never published: refused; the Worker looks once more,
    // then not again within the cooldown (2 s locally, counted in whole
    // seconds: waiting 3.1 s is always past it).
    std::thread::sleep(COOLDOWN_PASSED);
    let stranger = SigningKey::generate(unique("stranger-"));
    let stranger_token = stranger.sign(&user_claims(
        &team().team_domain,
        &team().aud,
        "eve@example.com",
        now(),
    ));
    let before = certs_fetches().await;
    for _ in 0..3 {
        let (status, body) = whoami(Some(&stranger_token), None).await;
        assert_eq!(status, 401, "{body}");
    }
    assert_eq!(
        certs_fetches().await,
        before + 1,
        "one refetch, not one per request"
    );

    // Rotation: Access publishes the next key, then signs with it.
    let next = SigningKey::generate(unique("next-"));
    publish(&next).await;
    std::thread::sleep(COOLDOWN_PASSED);
    let next_token = next.sign(&user_claims(
        &team().team_domain,
        &team().aud,
        "ada@example.com",
        now(),
    ));
    let (status, body) = whoami(Some(&next_token), None).await;
    assert_eq!(status, 200, "{body}");
    // The current key keeps working beside it.
    let (status, _) = whoami(Some(&user_token("ada@example.com")), None).await;
    assert_eq!(status, 200);
}
