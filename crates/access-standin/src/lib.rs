//! A stand-in for the part of a Cloudflare Access team domain
//! (`https://<team>.cloudflareaccess.com`) that the API talks to: the
//! certs endpoint, `GET /cdn-cgi/access/certs`, which publishes the team's
//! RS256 signing keys as a JWKS (`{"keys": [{kid, kty, alg, use, e, n}]}`).
//!
//! What the real endpoint has that this one leaves out: `public_cert` and
//! `public_certs` (the same keys as X.509 PEM certificates; the API reads
//! only `keys`), the login flow and `/cdn-cgi/access/get-identity`. Tokens
//! are not issued here: tests sign their own with the key file the binary
//! writes, or with keys they generate and publish.
//!
//! Test control, not part of Access: `POST /_standin/keys` publishes one
//! more JWK (a key rotation starts), `DELETE /_standin/keys/{kid}` retires
//! one, `GET /_standin/stats` counts certs fetches (to prove caching).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

/// The team's published keys.
#[derive(Default)]
pub struct Team {
    keys: RwLock<Vec<Value>>,
    certs_fetches: AtomicU64,
}

impl Team {
    pub fn new(keys: Vec<Value>) -> Arc<Team> {
        Arc::new(Team {
            keys: RwLock::new(keys),
            certs_fetches: AtomicU64::new(0),
        })
    }
}

pub fn router(team: Arc<Team>) -> Router {
    Router::new()
        .route("/cdn-cgi/access/certs", get(certs))
        .route("/_standin/keys", post(publish))
        .route("/_standin/keys/{kid}", delete(retire))
        .route("/_standin/stats", get(stats))
        .route("/ready", get(|| async { "ready" }))
        .with_state(team)
}

async fn certs(State(team): State<Arc<Team>>) -> Json<Value> {
    team.certs_fetches.fetch_add(1, Ordering::Relaxed);
    Json(json!({ "keys": *team.keys.read().expect("keys lock") }))
}

/// Adds a public JWK; it must carry a `kid`, and an existing key with the
/// same `kid` is replaced.
async fn publish(State(team): State<Arc<Team>>, Json(jwk): Json<Value>) -> StatusCode {
    let Some(kid) = jwk["kid"].as_str().map(str::to_owned) else {
        return StatusCode::UNPROCESSABLE_ENTITY;
    };
    if jwk.get("d").is_some() {
        // A private key: refuse to publish it.
        return StatusCode::UNPROCESSABLE_ENTITY;
    }
    let mut keys = team.keys.write().expect("keys lock");
    keys.retain(|k| k["kid"] != kid.as_str());
    keys.push(jwk);
    StatusCode::NO_CONTENT
}

async fn retire(State(team): State<Arc<Team>>, Path(kid): Path<String>) -> StatusCode {
    let mut keys = team.keys.write().expect("keys lock");
    let before = keys.len();
    keys.retain(|k| k["kid"] != kid.as_str());
    if keys.len() < before {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    }
}

async fn stats(State(team): State<Arc<Team>>) -> Json<Value> {
    Json(json!({ "certs_fetches": team.certs_fetches.load(Ordering::Relaxed) }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn call(router: &Router, request: Request<Body>) -> (StatusCode, Value) {
        let response = router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    fn post_key(jwk: Value) -> Request<Body> {
        Request::post("/_standin/keys")
            .header("content-type", "application/json")
            .body(Body::from(jwk.to_string()))
            .unwrap()
    }

    #[tokio::test]
    async fn keys_are_published_rotated_retired_and_fetches_counted() {
        let router = router(Team::new(vec![json!({"kid": "one", "kty": "RSA"})]));
        let certs = || {
            Request::get("/cdn-cgi/access/certs")
                .body(Body::empty())
                .unwrap()
        };
        let (status, body) = call(&router, certs()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["keys"][0]["kid"], "one");

        let (status, _) = call(&router, post_key(json!({"kid": "two", "kty": "RSA"}))).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (_, body) = call(&router, certs()).await;
        assert_eq!(body["keys"].as_array().unwrap().len(), 2);

        let retire = |kid: &str| {
            Request::delete(format!("/_standin/keys/{kid}"))
                .body(Body::empty())
                .unwrap()
        };
        assert_eq!(call(&router, retire("one")).await.0, StatusCode::NO_CONTENT);
        assert_eq!(call(&router, retire("one")).await.0, StatusCode::NOT_FOUND);
        let (_, body) = call(&router, certs()).await;
        assert_eq!(body["keys"][0]["kid"], "two");

        let stats = Request::get("/_standin/stats").body(Body::empty()).unwrap();
        assert_eq!(call(&router, stats).await.1["certs_fetches"], 3);
    }

    #[tokio::test]
    async fn private_keys_and_keys_without_kid_are_refused() {
        let router = router(Team::new(Vec::new()));
        let (status, _) = call(&router, post_key(json!({"kty": "RSA"}))).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let (status, _) = call(&router, post_key(json!({"kid": "k", "d": "secret"}))).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    }
}
