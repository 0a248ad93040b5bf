//! The compact JWS form of an Access token and its claims, RS256 only.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rsa::{Pkcs1v15Sign, RsaPublicKey};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::{AccessPolicy, Identity, Rejection};

/// Tokens longer than this are refused before any decoding (Access tokens
/// are around 1 KiB; this bounds the work a forged one can cause).
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The JOSE header: only what we check.
#[derive(Debug, Clone, Deserialize)]
pub struct Header {
    pub alg: String,
    #[serde(default)]
    pub kid: String,
    /// Extensions the verifier must understand; we understand none, so any
    /// token that lists one is refused (RFC 7515 §4.1.11).
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

/// The claims of an Access token (application tokens carry `email` for
/// users and `common_name` for service tokens).
#[derive(Debug, Clone, Deserialize)]
pub struct Claims {
    #[serde(default)]
    pub iss: String,
    #[serde(default)]
    pub aud: Audience,
    pub exp: Option<u64>,
    pub nbf: Option<u64>,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub common_name: String,
}

/// `aud` is a string or an array of strings (RFC 7519 §4.1.3); Access
/// sends an array.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
    #[default]
    None,
}

impl Audience {
    fn contains_any<'a>(&self, mut accepted: impl Iterator<Item = &'a String>) -> bool {
        match self {
            Audience::One(aud) => accepted.any(|a| a == aud),
            Audience::Many(auds) => accepted.any(|a| auds.contains(a)),
            Audience::None => false,
        }
    }
}

/// A token split into its parts, header decoded, nothing trusted yet.
pub(crate) struct Compact<'t> {
    pub header: Header,
    /// `header.payload` as sent: what the signature covers.
    pub(crate) signing_input: &'t str,
    payload: &'t str,
    pub(crate) signature: Vec<u8>,
}

impl<'t> Compact<'t> {
    pub fn parse(token: &'t str) -> Result<Self, Rejection> {
        if token.is_empty() {
            return Err(Rejection::Missing);
        }
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Rejection::Malformed("longer than any Access token"));
        }
        let (signing_input, signature) = token
            .rsplit_once('.')
            .ok_or(Rejection::Malformed("not three dot-separated parts"))?;
        let (header, payload) = signing_input
            .split_once('.')
            .ok_or(Rejection::Malformed("not three dot-separated parts"))?;
        if payload.contains('.') {
            return Err(Rejection::Malformed("not three dot-separated parts"));
        }
        let header: Header = serde_json::from_slice(&decode(header, "header")?)
            .map_err(|_| Rejection::Malformed("the header is not a JOSE header"))?;
        if header.alg != "RS256" {
            return Err(Rejection::UnsupportedAlgorithm(shown_alg(header.alg)));
        }
        if header.crit.is_some() {
            return Err(Rejection::Malformed("it lists critical extensions"));
        }
        if header.kid.is_empty() {
            return Err(Rejection::Malformed("the header names no key (kid)"));
        }
        let signature = decode(signature, "signature")?;
        Ok(Compact {
            header,
            signing_input,
            payload,
            signature,
        })
    }

    /// The claims; call only after the signature is verified.
    pub fn claims(&self) -> Result<Claims, Rejection> {
        serde_json::from_slice(&decode(self.payload, "claims")?).map_err(|_| {
            Rejection::Malformed("the claims are not a JSON object of the usual types")
        })
    }
}

impl Claims {
    /// Issuer, time window and audience, in that order.
    pub(crate) fn check(
        &self,
        policy: &AccessPolicy,
        now: u64,
        through_binding: bool,
    ) -> Result<(), Rejection> {
        if self.iss.trim_end_matches('/') != policy.team_domain.trim_end_matches('/') {
            return Err(Rejection::WrongIssuer);
        }
        let exp = self
            .exp
            .ok_or(Rejection::Malformed("it has no expiry (exp)"))?;
        if now > exp.saturating_add(policy.leeway_secs) {
            return Err(Rejection::Expired);
        }
        if let Some(nbf) = self.nbf {
            if now.saturating_add(policy.leeway_secs) < nbf {
                return Err(Rejection::NotYetValid);
            }
        }
        let binding_audiences = policy.binding_audiences.iter().filter(|_| through_binding);
        if !self
            .aud
            .contains_any(policy.audiences.iter().chain(binding_audiences))
        {
            return Err(Rejection::WrongAudience);
        }
        Ok(())
    }

    pub(crate) fn identity(&self, policy: &AccessPolicy) -> Result<Identity, Rejection> {
        if !self.email.is_empty() {
            return Ok(Identity::User {
                email: self.email.clone(),
            });
        }
        if !self.common_name.is_empty() {
            if !policy.service_tokens.contains(&self.common_name) {
                return Err(Rejection::ServiceTokenNotAllowed);
            }
            return Ok(Identity::Service {
                client_id: self.common_name.clone(),
            });
        }
        Err(Rejection::Malformed(
            "it names neither a user nor a service token",
        ))
    }
}

/// Longest `alg` a refusal repeats: the header is the sender's, and a
/// 16 KiB name has no place in a problem document or a log line.
const MAX_SHOWN_ALG_CHARS: usize = 32;

/// `alg` as a refusal names it: cut to [`MAX_SHOWN_ALG_CHARS`], with `…`
/// where it was cut.
fn shown_alg(alg: String) -> String {
    match alg.char_indices().nth(MAX_SHOWN_ALG_CHARS) {
        Some((cut, _)) => format!("{}…", &alg[..cut]),
        None => alg,
    }
}

fn decode(part: &str, what: &'static str) -> Result<Vec<u8>, Rejection> {
    URL_SAFE_NO_PAD.decode(part).map_err(|_| {
        Rejection::Malformed(match what {
            "header" => "the header is not base64url",
            "claims" => "the claims are not base64url",
            _ => "the signature is not base64url",
        })
    })
}

/// Whether `signature` is `message`'s RSASSA-PKCS1-v1_5 signature with
/// SHA-256 under `key`.
pub(crate) fn rs256(key: &RsaPublicKey, message: &[u8], signature: &[u8]) -> bool {
    let digest = Sha256::digest(message);
    key.verify(Pkcs1v15Sign::new::<Sha256>(), &digest, signature)
        .is_ok()
}
