//! Signing side of Access, for tests and the local Access stand-in only
//! (feature `testing`): generate a team key, publish it as a JWK, and make
//! real RS256 tokens with it, including deliberately wrong ones.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::{AccessPolicy, CacheSettings, Verifier, DEFAULT_LEEWAY_SECS};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use outbound::{BoxFuture, Bytes, Fetch, FetchError, Request, Response};
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rsa::traits::PublicKeyParts;
use rsa::{Pkcs1v15Sign, RsaPrivateKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The team the tests' tokens come from.
pub const TEAM: &str = "https://example-team.cloudflareaccess.com";
/// The API's audiences in [`policy`].
pub const AUDIENCES: [&str; 2] = [
    "4714c1358e65fe4b408ad6d432a5f878f08194bdb4752441fd56faefa9b2b6f2",
    "second-api-aud",
];
/// The admin site's audience, accepted in [`policy`] only through the
/// service binding.
pub const BINDING_AUD: &str = "admin-site-aud";
/// The one service token [`policy`] lets in.
pub const SERVICE: &str = "ci.access";

/// The policy the tests check tokens against: [`TEAM`], [`AUDIENCES`],
/// [`BINDING_AUD`] through the binding, [`SERVICE`], the default leeway.
pub fn policy() -> AccessPolicy {
    AccessPolicy {
        team_domain: TEAM.into(),
        audiences: AUDIENCES.map(String::from).to_vec(),
        binding_audiences: vec![BINDING_AUD.into()],
        service_tokens: vec![SERVICE.into()],
        leeway_secs: DEFAULT_LEEWAY_SECS,
    }
}

/// A verifier of [`policy`] that keeps keys an hour and asks for them
/// again at most every 30 s.
pub fn verifier() -> Verifier {
    Verifier::new(
        policy(),
        CacheSettings {
            max_age_secs: 3600,
            cooldown_secs: 30,
            fetch_timeout: Duration::from_secs(1),
        },
    )
}

/// An RSA key pair as Access holds it: a `kid` and a 2048-bit key.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    key: RsaPrivateKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh 2048-bit key.
    pub fn generate(kid: impl Into<String>) -> Self {
        let key = RsaPrivateKey::new(&mut rand::thread_rng(), 2048).expect("RSA key generation");
        SigningKey {
            kid: kid.into(),
            key,
        }
    }

    /// The key from PKCS#8 PEM (as [`SigningKey::to_pem`] writes it).
    pub fn from_pem(kid: impl Into<String>, pem: &str) -> Result<Self, String> {
        let key = RsaPrivateKey::from_pkcs8_pem(pem).map_err(|e| e.to_string())?;
        Ok(SigningKey {
            kid: kid.into(),
            key,
        })
    }

    pub fn to_pem(&self) -> String {
        self.key
            .to_pkcs8_pem(LineEnding::LF)
            .expect("PKCS#8 encoding of an RSA key")
            .to_string()
    }

    /// The public half as the certs endpoint lists it.
    pub fn jwk(&self) -> Value {
        json!({
            "kid": self.kid,
            "kty": "RSA",
            "alg": "RS256",
            "use": "sig",
            "e": URL_SAFE_NO_PAD.encode(self.key.e().to_bytes_be()),
            "n": URL_SAFE_NO_PAD.encode(self.key.n().to_bytes_be()),
        })
    }

    /// A token with the usual RS256 header naming this key.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with_header(
            &json!({"alg": "RS256", "kid": self.kid, "typ": "JWT"}),
            claims,
        )
    }

    /// A token with any header, signed RS256 with this key.
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        let signing_input = format!("{}.{}", encode_json(header), encode_json(claims));
        let signature = self.sign_bytes(signing_input.as_bytes());
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    /// The RS256 signature of `signing_input` (`header.claims` as sent),
    /// for tokens whose parts are not JSON values (the fuzz targets').
    pub fn sign_bytes(&self, signing_input: &[u8]) -> Vec<u8> {
        let digest = Sha256::digest(signing_input);
        self.key
            .sign(Pkcs1v15Sign::new::<Sha256>(), &digest)
            .expect("RSA signing")
    }
}

/// Claims as Access puts them in an application token for a user.
pub fn user_claims(team_domain: &str, aud: &str, email: &str, now: u64) -> Value {
    json!({
        "aud": [aud],
        "email": email,
        "exp": now + 600,
        "iat": now,
        "nbf": now,
        "iss": team_domain,
        "type": "app",
        "identity_nonce": "test",
        "sub": "7335d417-61da-459d-899c-0a01c76a2f94",
        "country": "XX",
    })
}

/// Claims as Access puts them in a token for a service token.
pub fn service_claims(team_domain: &str, aud: &str, client_id: &str, now: u64) -> Value {
    json!({
        "aud": [aud],
        "common_name": client_id,
        "exp": now + 600,
        "iat": now,
        "iss": team_domain,
        "type": "app",
        "sub": "",
    })
}

/// base64url of compact JSON, as JWS encodes its parts.
pub fn encode_json(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).expect("JSON"))
}

/// A team's certs endpoint as a [`Fetch`]: serves whatever keys it is
/// given (as a JWKS), or fails as a network error when set down, and
/// records the address of every fetch.
#[derive(Clone, Default)]
pub struct Certs {
    keys: Arc<Mutex<Vec<Value>>>,
    down: Arc<Mutex<bool>>,
    fetched: Arc<Mutex<Vec<String>>>,
}

impl Certs {
    pub fn serving(keys: &[&SigningKey]) -> Self {
        let certs = Certs::default();
        certs.publish(keys);
        certs
    }

    /// Serves `keys` from now on (a rotation).
    pub fn publish(&self, keys: &[&SigningKey]) {
        self.publish_jwks(keys.iter().map(|k| k.jwk()).collect());
    }

    /// Serves these JWKS entries as they are, keys Access would not
    /// publish among them.
    pub fn publish_jwks(&self, entries: Vec<Value>) {
        *self.keys.lock().unwrap() = entries;
    }

    /// Makes every later fetch fail (`true`) or succeed again.
    pub fn set_down(&self, down: bool) {
        *self.down.lock().unwrap() = down;
    }

    pub fn fetches(&self) -> usize {
        self.fetched.lock().unwrap().len()
    }

    /// The address of each fetch, in order.
    pub fn fetched_urls(&self) -> Vec<String> {
        self.fetched.lock().unwrap().clone()
    }
}

impl Fetch for Certs {
    fn fetch(
        &self,
        request: Request,
        _timeout: Duration,
    ) -> BoxFuture<'_, Result<Response, FetchError>> {
        self.fetched.lock().unwrap().push(request.uri().to_string());
        let result = if *self.down.lock().unwrap() {
            Err(FetchError::Network("connection refused".into()))
        } else {
            let body = json!({ "keys": *self.keys.lock().unwrap() }).to_string();
            Ok(http::Response::new(Bytes::from(body)))
        };
        Box::pin(async move { result })
    }
}
