//! Access token verification with real RS256 tokens from generated keys,
//! against a JWKS served by a fake certs endpoint that counts its fetches.

use std::sync::{Arc, Mutex, OnceLock};

use access::testing::{
    encode_json, service_claims, user_claims, verifier, Certs, SigningKey, AUDIENCES, TEAM,
};
use access::{Identity, Rejection, Verifier};
use outbound::BoxFuture;
use serde_json::json;

const AUD: &str = AUDIENCES[0];
const NOW: u64 = 1_800_000_000;

/// Key generation is slow in debug builds: one pair of keys per test binary.
fn keys() -> &'static (SigningKey, SigningKey) {
    static KEYS: OnceLock<(SigningKey, SigningKey)> = OnceLock::new();
    KEYS.get_or_init(|| (SigningKey::generate("key-a"), SigningKey::generate("key-b")))
}

fn user_token(key: &SigningKey) -> String {
    key.sign(&user_claims(TEAM, AUD, "ada@example.com", NOW))
}

async fn verify(v: &Verifier, certs: &Certs, token: &str, now: u64) -> Result<Identity, Rejection> {
    v.verify(token, certs, now, false).await
}

#[tokio::test]
async fn a_valid_user_token_gives_the_email() {
    let (a, _) = keys();
    let certs = Certs::serving(&[a]);
    let v = verifier();
    let identity = verify(&v, &certs, &user_token(a), NOW).await.unwrap();
    assert_eq!(
        identity,
        Identity::User {
            email: "ada@example.com".into()
        }
    );
    assert_eq!(identity.author(), "ada@example.com");
    assert_eq!(
        certs.fetched_urls()[0],
        format!("{TEAM}/cdn-cgi/access/certs")
    );
}

#[tokio::test]
async fn keys_are_fetched_once_and_reused() {
    let (a, _) = keys();
    let certs = Certs::serving(&[a]);
    let v = verifier();
    for i in 0..5 {
        verify(&v, &certs, &user_token(a), NOW + i).await.unwrap();
    }
    assert_eq!(certs.fetches(), 1);
}

#[tokio::test]
async fn alg_none_is_refused() {
    let (a, _) = keys();
    let certs = Certs::serving(&[a]);
    let claims = encode_json(&user_claims(TEAM, AUD, "ada@example.com", NOW));
    let header = encode_json(&json!({"alg": "none", "kid": a.kid}));
    let err = verify(&verifier(), &certs, &format!("{header}.{claims}."), NOW)
        .await
        .unwrap_err();
    assert_eq!(err, Rejection::UnsupportedAlgorithm("none".into()));
    assert_eq!(err.status(), 401);
    assert_eq!(certs.fetches(), 0, "refused before any key is needed");
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_is_refused() {
    // The classic confusion: an HMAC keyed with the public key's bytes.
    let (a, _) = keys();
    let certs = Certs::serving(&[a]);
    let public = a.jwk().to_string();
    let token = a.sign_with_header(&json!({"alg": "HS256", "kid": a.kid}), &json!({}));
    let (input, _) = token.rsplit_once('.').unwrap();
    let forged = format!("{input}.{}", encode_json(&json!(public)));
    let err = verify(&verifier(), &certs, &forged, NOW).await.unwrap_err();
    assert_eq!(err, Rejection::UnsupportedAlgorithm("HS256".into()));
}

#[tokio::test]
async fn a_long_algorithm_name_is_cut_in_the_refusal() {
    let (a, _) = keys();
    let certs = Certs::serving(&[a]);
    let alg = "X".repeat(10_000);
    let claims = user_claims(TEAM, AUD, "ada@example.com", NOW);
    let token = a.sign_with_header(&json!({"alg": alg, "kid": a.kid}), &claims);
    let err = verify(&verifier(), &certs, &token, NOW).await.unwrap_err();
    let shown = format!("{}…", "X".repeat(32));
    assert_eq!(err, Rejection::UnsupportedAlgorithm(shown));
    assert!(err.to_string().len() < 120, "{err}");
    assert_eq!(certs.fetches(), 0, "refused before any key is needed");
}

#[tokio::test]
async fn a_token_signed_by_another_key_under_a_known_kid_is_refused() {
    let (a, b) = keys();
    let certs = Certs::serving(&[a]);
    let impostor = b.sign_with_header(
        &json!({"alg": "RS256", "kid": a.kid}),
        &user_claims(TEAM, AUD, "ada@example.com", NOW),
    );
    let err = verify(&verifier(), &certs, &impostor, NOW)
        .await
        .unwrap_err();
    assert_eq!(err, Rejection::BadSignature);
}

#[tokio::test]
async fn changed_claims_break_the_signature() {
    let (a, _) = keys();
    let certs = Certs::serving(&[a]);
    let token = user_token(a);
    let parts: Vec<&str> = token.split('.').collect();
    let other = encode_json(&user_claims(TEAM, AUD, "mallory@example.com", NOW));
    let tampered = format!("{}.{other}.{}", parts[0], parts[2]);
    let err = verify(&verifier(), &certs, &tampered, NOW)
        .await
        .unwrap_err();
    assert_eq!(err, Rejection::BadSignature);
}

#[tokio::test]
async fn an_unknown_kid_refetches_once_per_cooldown() {
    let (a, b) = keys();
    let certs = Certs::serving(&[a]);
    let v = verifier();
    verify(&v, &certs, &user_token(a), NOW).await.unwrap();
    // Within the cooldown of the first fetch: no refetch at all.
    let err = verify(&v, &certs, &user_token(b), NOW + 1)
        .await
        .unwrap_err();
    assert_eq!(err, Rejection::UnknownKey);
    assert_eq!(certs.fetches(), 1);
    for i in 0..5 {
        let err = verify(&v, &certs, &user_token(b), NOW + 31 + i)
            .await
            .unwrap_err();
        assert_eq!(err, Rejection::UnknownKey);
    }
    assert_eq!(
        certs.fetches(),
        2,
        "one initial fetch, one refetch for the unknown kid"
    );
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_after_the_cooldown() {
    let (a, b) = keys();
    let certs = Certs::serving(&[a]);
    let v = verifier();
    verify(&v, &certs, &user_token(a), NOW).await.unwrap();
    // Access publishes the next key beside the current one, then signs with it.
    certs.publish(&[a, b]);
    let identity = verify(&v, &certs, &user_token(b), NOW + 31).await.unwrap();
    assert_eq!(
        identity,
        Identity::User {
            email: "ada@example.com".into()
        }
    );
    // The old key keeps working while it is still published.
    verify(&v, &certs, &user_token(a), NOW + 32).await.unwrap();
    assert_eq!(certs.fetches(), 2);
}

#[tokio::test]
async fn a_retired_key_stops_working_once_the_set_is_refreshed() {
    let (a, b) = keys();
    let certs = Certs::serving(&[a, b]);
    let v = verifier();
    verify(&v, &certs, &user_token(a), NOW).await.unwrap();
    certs.publish(&[b]);
    let err = verify(&v, &certs, &user_token(a), NOW + 3600)
        .await
        .unwrap_err();
    assert_eq!(err, Rejection::UnknownKey);
}

#[tokio::test]
async fn expiry_and_not_before_allow_one_minute_of_skew() {
    let (a, _) = keys();
    let certs = Certs::serving(&[a]);
    let v = verifier();
    let mut claims = user_claims(TEAM, AUD, "ada@example.com", NOW);
    claims["exp"] = json!(NOW - 30);
    verify(&v, &certs, &a.sign(&claims), NOW).await.unwrap();
    claims["exp"] = json!(NOW - 61);
    let err = verify(&v, &certs, &a.sign(&claims), NOW).await.unwrap_err();
    assert_eq!(err, Rejection::Expired);
    assert_eq!(err.status(), 401);

    let mut claims = user_claims(TEAM, AUD, "ada@example.com", NOW);
    claims["nbf"] = json!(NOW + 30);
    verify(&v, &certs, &a.sign(&claims), NOW).await.unwrap();
    claims["nbf"] = json!(NOW + 61);
    let err = verify(&v, &certs, &a.sign(&claims), NOW).await.unwrap_err();
    assert_eq!(err, Rejection::NotYetValid);

    let mut claims = user_claims(TEAM, AUD, "ada@example.com", NOW);
    claims.as_object_mut().unwrap().remove("exp");
    let err = verify(&v, &certs, &a.sign(&claims), NOW).await.unwrap_err();
    assert!(matches!(err, Rejection::Malformed(_)), "{err:?}");
}

#[tokio::test]
async fn a_token_for_another_application_is_forbidden() {
    let (a, _) = keys();
    let certs = Certs::serving(&[a]);
    let v = verifier();
    let token = a.sign(&user_claims(TEAM, "some-other-app", "ada@example.com", NOW));
    let err = verify(&v, &certs, &token, NOW).await.unwrap_err();
    assert_eq!(err, Rejection::WrongAudience);
    assert_eq!(err.status(), 403);
    // `aud` as a plain string is accepted too.
    let mut claims = user_claims(TEAM, AUD, "ada@example.com", NOW);
    claims["aud"] = json!("second-api-aud");
    verify(&v, &certs, &a.sign(&claims), NOW).await.unwrap();
}

#[tokio::test]
async fn the_admin_sites_tokens_count_only_through_the_binding() {
    let (a, _) = keys();
    let certs = Certs::serving(&[a]);
    let v = verifier();
    let token = a.sign(&user_claims(TEAM, "admin-site-aud", "ada@example.com", NOW));
    let err = v.verify(&token, &certs, NOW, false).await.unwrap_err();
    assert_eq!(err, Rejection::WrongAudience);
    let identity = v.verify(&token, &certs, NOW, true).await.unwrap();
    assert_eq!(
        identity,
        Identity::User {
            email: "ada@example.com".into()
        }
    );
}

#[tokio::test]
async fn a_token_from_another_team_is_refused() {
    let (a, _) = keys();
    let certs = Certs::serving(&[a]);
    let token = a.sign(&user_claims(
        "https://evil.cloudflareaccess.com",
        AUD,
        "ada@example.com",
        NOW,
    ));
    let err = verify(&verifier(), &certs, &token, NOW).await.unwrap_err();
    assert_eq!(err, Rejection::WrongIssuer);
}

#[tokio::test]
async fn service_tokens_are_let_in_only_when_listed() {
    let (a, _) = keys();
    let certs = Certs::serving(&[a]);
    let v = verifier();
    let ok = a.sign(&service_claims(TEAM, AUD, "ci.access", NOW));
    assert_eq!(
        verify(&v, &certs, &ok, NOW).await.unwrap(),
        Identity::Service {
            client_id: "ci.access".into()
        }
    );
    let other = a.sign(&service_claims(TEAM, AUD, "someone-else.access", NOW));
    let err = verify(&v, &certs, &other, NOW).await.unwrap_err();
    assert_eq!(err, Rejection::ServiceTokenNotAllowed);
    assert_eq!(err.status(), 403);
}

#[tokio::test]
async fn without_reachable_keys_the_answer_is_unavailable_not_unauthorised() {
    let (a, _) = keys();
    let certs = Certs::serving(&[a]);
    certs.set_down(true);
    let err = verify(&verifier(), &certs, &user_token(a), NOW)
        .await
        .unwrap_err();
    assert!(matches!(err, Rejection::KeysUnavailable(_)), "{err:?}");
    assert_eq!(err.status(), 503);
}

#[tokio::test]
async fn cached_keys_outlive_a_failing_refresh() {
    let (a, _) = keys();
    let certs = Certs::serving(&[a]);
    let v = verifier();
    verify(&v, &certs, &user_token(a), NOW).await.unwrap();
    certs.set_down(true);
    let later = a.sign(&user_claims(TEAM, AUD, "ada@example.com", NOW + 7200));
    verify(&v, &certs, &later, NOW + 7200).await.unwrap();
    assert_eq!(certs.fetches(), 2, "the refresh was tried");
}

/// A token whose header names a key nobody publishes (only the header is
/// decoded before the keys are asked for).
fn made_up_kid_token(signer: &SigningKey, i: u64) -> String {
    signer.sign_with_header(
        &json!({"alg": "RS256", "kid": format!("made-up-{i}"), "typ": "JWT"}),
        &user_claims(TEAM, AUD, "ada@example.com", NOW),
    )
}

#[tokio::test]
async fn a_down_endpoint_is_tried_once_per_cooldown_even_before_any_success() {
    let (a, b) = keys();
    let certs = Certs::serving(&[a]);
    certs.set_down(true);
    let v = verifier();
    // A cold isolate shown a stream of tokens with made-up kids.
    for i in 0..100 {
        let err = verify(&v, &certs, &made_up_kid_token(b, i), NOW)
            .await
            .unwrap_err();
        assert!(matches!(err, Rejection::KeysUnavailable(_)), "{err:?}");
    }
    let err = verify(&v, &certs, &user_token(a), NOW + 29)
        .await
        .unwrap_err();
    assert!(matches!(err, Rejection::KeysUnavailable(_)), "{err:?}");
    assert_eq!(
        certs.fetches(),
        1,
        "the failed attempt started the cooldown"
    );
    assert_eq!(v.keys().fetches(), 1);

    // The cooldown has passed: one more attempt, which fails again.
    for i in 0..10 {
        verify(&v, &certs, &made_up_kid_token(b, i), NOW + 30)
            .await
            .unwrap_err();
    }
    assert_eq!(certs.fetches(), 2);

    // The endpoint is back: the next attempt after the cooldown succeeds,
    // and made-up kids are then unknown, not a reason to fetch.
    certs.set_down(false);
    let identity = verify(&v, &certs, &user_token(a), NOW + 60).await.unwrap();
    assert_eq!(
        identity,
        Identity::User {
            email: "ada@example.com".into()
        }
    );
    for i in 0..10 {
        let err = verify(&v, &certs, &made_up_kid_token(b, i), NOW + 61)
            .await
            .unwrap_err();
        assert_eq!(err, Rejection::UnknownKey);
    }
    assert_eq!(certs.fetches(), 3);
}

/// The certs endpoint, answering only after `delay`.
struct Slow {
    certs: Certs,
    delay: std::time::Duration,
}

impl outbound::Fetch for Slow {
    fn fetch(
        &self,
        request: outbound::Request,
        timeout: std::time::Duration,
    ) -> BoxFuture<'_, Result<outbound::Response, outbound::FetchError>> {
        Box::pin(async move {
            tokio::time::sleep(self.delay).await;
            self.certs.fetch(request, timeout).await
        })
    }
}

#[tokio::test]
async fn requests_during_a_cold_isolates_first_fetch_are_not_refused() {
    let (a, _) = keys();
    let slow = Slow {
        certs: Certs::serving(&[a]),
        delay: std::time::Duration::from_millis(50),
    };
    let v = verifier();
    // The admin site's first calls after a deploy, all at once: no request
    // can wait for another's fetch, so each fetches for itself.
    let tokens: Vec<String> = (0..5).map(|_| user_token(a)).collect();
    let answers = futures_join_all(tokens.iter().map(|t| v.verify(t, &slow, NOW, false))).await;
    for answer in answers {
        answer.unwrap();
    }
    assert_eq!(slow.certs.fetches(), 5);
    // Once the keys are stored, everyone uses them.
    verify(&v, &slow.certs, &user_token(a), NOW + 1)
        .await
        .unwrap();
    assert_eq!(slow.certs.fetches(), 5);
}

/// Runs `futures` concurrently on this task, in order of their results.
async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let mut pending: Vec<_> = futures.map(|f| Some(Box::pin(f))).collect();
    let mut outputs: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (slot, output) in pending.iter_mut().zip(outputs.iter_mut()) {
            if let Some(future) = slot {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => {
                        *output = Some(value);
                        *slot = None;
                    }
                    std::task::Poll::Pending => done = false,
                }
            }
        }
        if done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    outputs.into_iter().map(Option::unwrap).collect()
}

#[tokio::test]
async fn garbage_is_malformed_and_never_fetches() {
    let (a, _) = keys();
    let certs = Certs::serving(&[a]);
    let v = verifier();
    let crit = a.sign_with_header(
        &json!({"alg": "RS256", "kid": a.kid, "crit": ["exp"]}),
        &user_claims(TEAM, AUD, "ada@example.com", NOW),
    );
    let no_kid = a.sign_with_header(&json!({"alg": "RS256"}), &json!({}));
    let long = "a".repeat(20_000);
    for token in [
        "a",
        "a.b",
        "a.b.c.d",
        "!!!.b.c",
        "e30.e30.e30",
        "eyJhbGciOiJSUzI1NiJ9.%%%.sig",
        crit.as_str(),
        no_kid.as_str(),
        long.as_str(),
    ] {
        let err = verify(&v, &certs, token, NOW).await.unwrap_err();
        assert!(
            matches!(
                err,
                Rejection::Malformed(_) | Rejection::UnsupportedAlgorithm(_)
            ),
            "{token:.40}: {err:?}"
        );
        if token.len() > 8 {
            assert!(
                !err.to_string().contains(token),
                "the message echoes the token"
            );
        }
    }
    assert_eq!(
        verify(&v, &certs, "", NOW).await.unwrap_err(),
        Rejection::Missing
    );
    assert_eq!(certs.fetches(), 0);
}

#[test]
fn the_token_comes_from_the_header_or_else_the_cookie() {
    let mut headers = http::HeaderMap::new();
    assert_eq!(access::token_from_headers(&headers), None);
    headers.insert(
        "cookie",
        "theme=dark; CF_Authorization=from-cookie; x=1"
            .parse()
            .unwrap(),
    );
    assert_eq!(access::token_from_headers(&headers), Some("from-cookie"));
    headers.insert("cf-access-jwt-assertion", "from-header".parse().unwrap());
    assert_eq!(access::token_from_headers(&headers), Some("from-header"));
}

#[test]
fn jwks_entries_that_are_not_rs256_signing_keys_are_skipped() {
    let (a, b) = keys();
    let mut enc = b.jwk();
    enc["use"] = json!("enc");
    let ec = json!({"kid": "ec", "kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"});
    let certs = Certs::default();
    certs.publish_jwks(vec![ec, enc, a.jwk()]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let v = verifier();
    rt.block_on(async {
        verify(&v, &certs, &user_token(a), NOW).await.unwrap();
        let err = verify(&v, &certs, &user_token(b), NOW).await.unwrap_err();
        assert_eq!(err, Rejection::UnknownKey);
    });
}

/// Records every check it is asked for and answers it with `valid`, or,
/// without one, with RustCrypto's real check.
struct Scripted {
    valid: Option<bool>,
    asked: Mutex<Vec<(Vec<u8>, Vec<u8>)>>,
}

impl Scripted {
    fn answering(valid: Option<bool>) -> Arc<Scripted> {
        Arc::new(Scripted {
            valid,
            asked: Mutex::new(Vec::new()),
        })
    }

    fn checks(&self) -> usize {
        self.asked.lock().unwrap().len()
    }
}

impl access::SignatureCheck for Scripted {
    fn rs256<'a>(
        &'a self,
        key: &'a access::RsaPublicKey,
        message: &'a [u8],
        signature: &'a [u8],
    ) -> BoxFuture<'a, bool> {
        use access::PublicKeyParts;
        assert!(key.n().bits() >= 2048);
        self.asked
            .lock()
            .unwrap()
            .push((message.to_vec(), signature.to_vec()));
        match self.valid {
            Some(valid) => Box::pin(std::future::ready(valid)),
            None => access::RustCrypto.rs256(key, message, signature),
        }
    }
}

#[tokio::test]
async fn the_signature_check_given_decides_and_sees_exactly_what_was_signed() {
    let (key, _) = keys();
    let token = key.sign(&user_claims(TEAM, AUD, "ada@example.com", NOW));
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let certs = Certs::serving(&[key]);
    for valid in [true, false] {
        let check = Scripted::answering(Some(valid));
        let verdict = verifier()
            .with_signature_check(check.clone())
            .verify(&token, &certs, NOW, false)
            .await;
        if valid {
            assert_eq!(
                verdict,
                Ok(Identity::User {
                    email: "ada@example.com".into()
                })
            );
        } else {
            assert_eq!(verdict, Err(Rejection::BadSignature));
        }
        let asked = check.asked.lock().unwrap();
        assert_eq!(asked.len(), 1);
        assert_eq!(asked[0].0, signed.as_bytes());
        use base64::Engine;
        let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(signature)
            .unwrap();
        assert_eq!(asked[0].1, decoded);
    }
}

/// The certs endpoint serving `a`'s key, and a verifier counting its
/// signature checks.
fn counted() -> (&'static SigningKey, Certs, Verifier, Arc<Scripted>) {
    let (a, _) = keys();
    let counted = Scripted::answering(None);
    let v = verifier().with_signature_check(counted.clone());
    (a, Certs::serving(&[a]), v, counted)
}

#[tokio::test]
async fn a_token_let_in_once_is_not_checked_again_but_still_expires() {
    let (a, certs, v, counted) = counted();
    let token = user_token(a);
    for i in 0..3 {
        verify(&v, &certs, &token, NOW + i).await.unwrap();
    }
    assert_eq!(counted.checks(), 1);
    // `user_claims` expires 600 s after NOW; the leeway is 60 s.
    verify(&v, &certs, &token, NOW + 660).await.unwrap();
    let err = verify(&v, &certs, &token, NOW + 661).await.unwrap_err();
    assert_eq!(err, Rejection::Expired);
    assert_eq!(counted.checks(), 1);
}

#[tokio::test]
async fn a_token_let_in_once_and_changed_in_any_part_is_checked_and_refused() {
    let (a, certs, v, counted) = counted();
    let token = user_token(a);
    verify(&v, &certs, &token, NOW).await.unwrap();

    let (signed, signature) = token.rsplit_once('.').unwrap();
    // One character in the middle: still base64url, another signature.
    let middle = signature.len() / 2;
    let flipped = if &signature[middle..=middle] == "A" {
        "B"
    } else {
        "A"
    };
    let other_signature = format!(
        "{signed}.{}{flipped}{}",
        &signature[..middle],
        &signature[middle + 1..]
    );
    let err = verify(&v, &certs, &other_signature, NOW).await.unwrap_err();
    assert_eq!(err, Rejection::BadSignature);
    assert_eq!(counted.checks(), 2);

    let header = signed.split('.').next().unwrap();
    let other_claims = encode_json(&user_claims(TEAM, AUD, "eve@example.com", NOW));
    let forged = format!("{header}.{other_claims}.{signature}");
    let err = verify(&v, &certs, &forged, NOW).await.unwrap_err();
    assert_eq!(err, Rejection::BadSignature);
    assert_eq!(counted.checks(), 3);

    verify(&v, &certs, &token, NOW).await.unwrap();
    assert_eq!(counted.checks(), 3, "the genuine one is still remembered");
}

#[tokio::test]
async fn a_refused_signature_is_asked_about_every_time() {
    let (a, _) = keys();
    let certs = Certs::serving(&[a]);
    let check = Scripted::answering(Some(false));
    let v = verifier().with_signature_check(check.clone());
    let token = user_token(a);
    for _ in 0..2 {
        let err = verify(&v, &certs, &token, NOW).await.unwrap_err();
        assert_eq!(err, Rejection::BadSignature);
    }
    assert_eq!(check.checks(), 2);
}

#[tokio::test]
async fn a_token_let_in_under_a_key_since_replaced_under_its_kid_is_checked_again() {
    let (a, certs, v, counted) = counted();
    let (_, b) = keys();
    let token = user_token(a);
    verify(&v, &certs, &token, NOW).await.unwrap();
    // Another key published under the same kid: what a's tokens were
    // checked with is gone.
    let mut replaced = b.jwk();
    replaced["kid"] = a.jwk()["kid"].clone();
    certs.publish_jwks(vec![replaced]);
    let err = verify(&v, &certs, &token, NOW + 3600).await.unwrap_err();
    assert_eq!(err, Rejection::BadSignature);
    assert_eq!(counted.checks(), 2);
    assert_eq!(certs.fetches(), 2, "the set was refreshed after its hour");
}

#[tokio::test]
async fn a_token_let_in_through_the_binding_is_still_refused_outside_it() {
    let (a, certs, v, counted) = counted();
    let token = a.sign(&user_claims(TEAM, "admin-site-aud", "ada@example.com", NOW));
    v.verify(&token, &certs, NOW, true).await.unwrap();
    let err = v.verify(&token, &certs, NOW, false).await.unwrap_err();
    assert_eq!(err, Rejection::WrongAudience);
    assert_eq!(counted.checks(), 1);
}
