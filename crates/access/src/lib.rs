//! Cloudflare Access for the API's admin routes: who is calling, proven by
//! the JWT that Access puts in front of every request it lets through
//! (`Cf-Access-Jwt-Assertion`, or the `CF_Authorization` cookie).
//!
//! A token is accepted only if it is RS256-signed by a key in the team's
//! JWKS (`<team domain>/cdn-cgi/access/certs`, cached per isolate, see
//! [`KeyCache`]), was issued by that team domain for one of our Access
//! applications (`aud`), and is inside its validity window (`exp`/`nbf`
//! with a small leeway). A token let in once skips the signature check
//! and its decoding on its next requests in the isolate (`checked`); its
//! claims are checked every time. Users are identified by their email; Access
//! service tokens (health checks, CI) by their client id, and only those
//! listed in the configuration are let in.
//!
//! Why by hand rather than a JWT crate: the well-known ones
//! (`jsonwebtoken`, `jwt-simple`) link every algorithm they support (EdDSA,
//! ECDSA, HMAC) and a random number generator into the wasm; Access only
//! ever signs with RS256, and accepting exactly that one algorithm is also
//! the simplest defence against `alg` confusion. The cryptography itself is
//! RustCrypto's `rsa` (PKCS#1 v1.5 verification with SHA-256), or whatever
//! [`SignatureCheck`] the caller gives (the Worker: WebCrypto); this crate
//! only parses the compact JWS and checks the claims.
//!
//! Not for: authorisation beyond "is an allowed Access identity"; the HTTP
//! mapping (status codes, problem documents) is the API's.

mod checked;
mod jwks;
mod jwt;

use std::fmt;

use std::sync::Arc;

pub use jwks::{CacheSettings, KeyCache};
pub use jwt::{Claims, Header};
pub use rsa::{traits::PublicKeyParts, RsaPublicKey};

/// Checks an RS256 signature (RSASSA-PKCS1-v1_5 with SHA-256) of
/// `message` under `key`. [`RustCrypto`] does it in Rust, everywhere; the
/// Worker hands it to the runtime's WebCrypto instead, because RSA in wasm
/// took about 4 ms of CPU per check (a third of an admin write's samples in
/// a profile), native code a fraction of that.
pub trait SignatureCheck: Send + Sync {
    fn rs256<'a>(
        &'a self,
        key: &'a RsaPublicKey,
        message: &'a [u8],
        signature: &'a [u8],
    ) -> outbound::BoxFuture<'a, bool>;
}

/// RS256 with RustCrypto's `rsa`.
pub struct RustCrypto;

impl SignatureCheck for RustCrypto {
    fn rs256<'a>(
        &'a self,
        key: &'a RsaPublicKey,
        message: &'a [u8],
        signature: &'a [u8],
    ) -> outbound::BoxFuture<'a, bool> {
        let valid = jwt::rs256(key, message, signature);
        Box::pin(std::future::ready(valid))
    }
}

/// The token Access attaches to requests it lets through.
pub const JWT_HEADER: &str = "cf-access-jwt-assertion";
/// The cookie browsers carry the same token in.
pub const JWT_COOKIE: &str = "CF_Authorization";
/// How far `exp` and `nbf` may be off, for clock skew between Access and
/// the Worker.
pub const DEFAULT_LEEWAY_SECS: u64 = 60;

/// Who a request comes from, as Access vouched for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// A person who logged in through Access.
    User { email: String },
    /// An Access service token (no person), by its client id.
    Service { client_id: String },
}

impl Identity {
    /// How this identity is recorded as the author of a change.
    pub fn author(&self) -> String {
        match self {
            Identity::User { email } => email.clone(),
            Identity::Service { client_id } => format!("service-token:{client_id}"),
        }
    }
}

/// What the API accepts: the team, its applications, its service tokens.
#[derive(Debug, Clone)]
pub struct AccessPolicy {
    /// `https://<team>.cloudflareaccess.com`: the issuer, and where the
    /// keys are published.
    pub team_domain: String,
    /// AUD tags of the Access applications whose tokens are accepted from
    /// anywhere (the API's own hostname).
    pub audiences: Vec<String>,
    /// AUD tags accepted only on requests proven to come through the Pages
    /// shim's service binding (the admin site's application): a token
    /// issued for the admin site must not be replayable against the API's
    /// public hostname.
    pub binding_audiences: Vec<String>,
    /// Client ids of the service tokens allowed in.
    pub service_tokens: Vec<String>,
    pub leeway_secs: u64,
}

impl AccessPolicy {
    /// The JWKS address of the team.
    pub fn certs_url(&self) -> String {
        format!(
            "{}/cdn-cgi/access/certs",
            self.team_domain.trim_end_matches('/')
        )
    }
}

/// Why a request was not let in. The `Display` text is safe to show the
/// caller: it never contains the token or key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// No token in the header or the cookie.
    Missing,
    /// Not a compact JWS, or its header or claims are not what Access sends.
    Malformed(&'static str),
    /// Any `alg` but RS256 (`none`, `HS256`, ...).
    UnsupportedAlgorithm(String),
    /// The token names a key the team does not publish.
    UnknownKey,
    /// The signature does not match the header and claims.
    BadSignature,
    Expired,
    NotYetValid,
    /// Issued by another team (or not by Access).
    WrongIssuer,
    /// A genuine token, but for another Access application.
    WrongAudience,
    /// A genuine service token that is not on the allowlist.
    ServiceTokenNotAllowed,
    /// The team's keys could not be fetched and none are cached.
    KeysUnavailable(String),
}

impl Rejection {
    /// 401 when the caller has not proven who they are, 403 when they have
    /// but are not let in, 503 when we cannot check.
    pub fn status(&self) -> u16 {
        match self {
            Rejection::WrongAudience | Rejection::ServiceTokenNotAllowed => 403,
            Rejection::KeysUnavailable(_) => 503,
            _ => 401,
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::Missing => write!(
                f,
                "This route needs a Cloudflare Access token (Cf-Access-Jwt-Assertion header or CF_Authorization cookie)."
            ),
            Rejection::Malformed(what) => write!(f, "The Access token is malformed: {what}."),
            Rejection::UnsupportedAlgorithm(alg) => {
                write!(f, "The Access token is signed with {alg:?}; only RS256 is accepted.")
            }
            Rejection::UnknownKey => {
                write!(f, "The Access token is signed with a key the team does not publish.")
            }
            Rejection::BadSignature => write!(f, "The Access token's signature is not valid."),
            Rejection::Expired => write!(f, "The Access token has expired."),
            Rejection::NotYetValid => write!(f, "The Access token is not valid yet."),
            Rejection::WrongIssuer => {
                write!(f, "The Access token was not issued by this team's Access.")
            }
            Rejection::WrongAudience => {
                write!(f, "The Access token is for another Access application.")
            }
            Rejection::ServiceTokenNotAllowed => {
                write!(f, "This Access service token is not allowed here.")
            }
            Rejection::KeysUnavailable(why) => {
                write!(f, "The Access signing keys cannot be fetched: {why}.")
            }
        }
    }
}

impl std::error::Error for Rejection {}

/// The token of a request: the header if present, else the cookie.
pub fn token_from_headers(headers: &http::HeaderMap) -> Option<&str> {
    if let Some(value) = headers.get(JWT_HEADER) {
        return value.to_str().ok().map(str::trim);
    }
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|cookies| cookies.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == JWT_COOKIE)
        .map(|(_, value)| value.trim())
}

/// Checks tokens against an [`AccessPolicy`], with the team's keys, and
/// the tokens already let in (see `checked`), cached for the life of the
/// isolate.
pub struct Verifier {
    policy: AccessPolicy,
    keys: KeyCache,
    signatures: Arc<dyn SignatureCheck>,
    checked: checked::CheckedTokens,
}

impl Verifier {
    /// A verifier that checks signatures with [`RustCrypto`].
    pub fn new(policy: AccessPolicy, settings: CacheSettings) -> Self {
        let keys = KeyCache::new(policy.certs_url(), settings);
        Verifier {
            policy,
            keys,
            signatures: Arc::new(RustCrypto),
            checked: checked::CheckedTokens::default(),
        }
    }

    /// Checks signatures with `check` instead (the Worker's WebCrypto).
    pub fn with_signature_check(mut self, check: Arc<dyn SignatureCheck>) -> Self {
        self.signatures = check;
        self
    }

    pub fn policy(&self) -> &AccessPolicy {
        &self.policy
    }

    pub fn keys(&self) -> &KeyCache {
        &self.keys
    }

    /// Verifies `token` at `now` (seconds since the Unix epoch), fetching
    /// the team's keys through `fetch` when the cache needs them.
    /// `through_binding` says whether the request is proven to come through
    /// the service binding, which also admits the binding audiences.
    pub async fn verify(
        &self,
        token: &str,
        fetch: &dyn outbound::Fetch,
        now: u64,
        through_binding: bool,
    ) -> Result<Identity, Rejection> {
        if let Some(before) = self.checked.get(token) {
            // Let in before: its signature holds if its kid still names the
            // key it was checked under. Its claims are checked anew.
            if self.keys.key(&before.kid, fetch, now).await? == before.key {
                before.claims.check(&self.policy, now, through_binding)?;
                return before.claims.identity(&self.policy);
            }
        }
        let compact = jwt::Compact::parse(token)?;
        let key = self.keys.key(&compact.header.kid, fetch, now).await?;
        if !self
            .signatures
            .rs256(&key, compact.signing_input.as_bytes(), &compact.signature)
            .await
        {
            return Err(Rejection::BadSignature);
        }
        let claims = compact.claims()?;
        claims.check(&self.policy, now, through_binding)?;
        let identity = claims.identity(&self.policy)?;
        // `check` refused a token without `exp`: every token let in has one.
        if let Some(exp) = claims.exp {
            let useless_after = exp.saturating_add(self.policy.leeway_secs);
            let checked = checked::Checked {
                kid: compact.header.kid.into(),
                key,
                claims,
                useless_after,
            };
            self.checked.keep(token, checked, now);
        }
        Ok(identity)
    }
}

#[cfg(feature = "testing")]
pub mod testing;
