//! Access tokens built from fuzzed header and claims JSON, signed with the
//! team's key (or not): a token is accepted only when it is signed by the
//! team's key, names it with RS256, and its claims, read independently
//! with `serde_json::Value`, have this team as issuer, an accepted
//! audience, a time window around now and the identity returned. Every
//! refusal is a 401 or 403 that does not echo the token. The same holds
//! when the token comes again, later or by the other route, after the
//! verifier remembered it (and skips its signature check).
#![no_main]

use std::sync::OnceLock;

use access::testing::{Certs, SigningKey, AUDIENCES, BINDING_AUD, SERVICE, TEAM};
use access::{Identity, Rejection, Verifier};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

const KID: &str = "key-a";
const NOW: u64 = 1_800_000_000;
const LEEWAY: u64 = access::DEFAULT_LEEWAY_SECS;

/// The team's key, and another that Access does not publish.
fn keys() -> &'static (SigningKey, SigningKey) {
    static KEYS: OnceLock<(SigningKey, SigningKey)> = OnceLock::new();
    KEYS.get_or_init(|| (SigningKey::generate(KID), SigningKey::generate(KID)))
}

/// The team's certs endpoint, serving its one key.
fn certs() -> &'static Certs {
    static CERTS: OnceLock<Certs> = OnceLock::new();
    CERTS.get_or_init(|| Certs::serving(&[&keys().0]))
}

fn verifier() -> &'static Verifier {
    static VERIFIER: OnceLock<Verifier> = OnceLock::new();
    VERIFIER.get_or_init(access::testing::verifier)
}

/// A claim the fuzzer sets: a name the verifier reads, or any other.
#[derive(Arbitrary, Debug)]
enum ClaimName {
    Iss,
    Aud,
    Exp,
    Nbf,
    Email,
    CommonName,
    Other(String),
}

/// A claim's value: raw text taken as JSON when it parses (else as a
/// string), or values near the ones that matter.
#[derive(Arbitrary, Debug)]
enum Claim {
    Raw(String),
    Team { trailing_slashes: u8 },
    Audience(u8),
    Audiences(Vec<u8>),
    SecondsFromNow(i32),
    Service,
}

#[derive(Arbitrary, Debug)]
enum Signature {
    TeamKey,
    OtherKey,
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
struct Input {
    /// The JOSE header's text, or (None) Access's own.
    header: Option<String>,
    /// Start from a user's genuine claims, or from `{}`.
    genuine_claims: bool,
    claims: Vec<(ClaimName, Claim)>,
    /// The claims' text as sent, instead of `claims`.
    raw_claims: Option<String>,
    signature: Signature,
    through_binding: bool,
    /// The same token presented again: seconds after the first time, and
    /// whether through the binding.
    again: Vec<(i16, bool)>,
}

fn claim_value(claim: &Claim) -> Value {
    match claim {
        Claim::Raw(text) => {
            serde_json::from_str(text).unwrap_or_else(|_| Value::from(text.as_str()))
        }
        Claim::Team { trailing_slashes } => Value::from(format!(
            "{TEAM}{}",
            "/".repeat(usize::from(trailing_slashes % 4))
        )),
        Claim::Audience(which) => Value::from(audience(*which)),
        Claim::Audiences(which) => which.iter().map(|&w| audience(w)).collect(),
        Claim::SecondsFromNow(offset) => Value::from(NOW.saturating_add_signed(i64::from(*offset))),
        Claim::Service => Value::from(SERVICE),
    }
}

fn audience(which: u8) -> &'static str {
    [AUDIENCES[0], AUDIENCES[1], BINDING_AUD, "other-aud"][usize::from(which % 4)]
}

fn claims_text(input: &Input) -> String {
    if let Some(raw) = &input.raw_claims {
        return raw.clone();
    }
    let mut claims = if input.genuine_claims {
        access::testing::user_claims(TEAM, AUDIENCES[0], "someone@example.com", NOW)
    } else {
        json!({})
    };
    for (name, claim) in &input.claims {
        let name = match name {
            ClaimName::Iss => "iss",
            ClaimName::Aud => "aud",
            ClaimName::Exp => "exp",
            ClaimName::Nbf => "nbf",
            ClaimName::Email => "email",
            ClaimName::CommonName => "common_name",
            ClaimName::Other(name) => name,
        };
        claims[name] = claim_value(claim);
    }
    claims.to_string()
}

fn token(input: &Input, claims: &str) -> String {
    let header = input
        .header
        .clone()
        .unwrap_or_else(|| json!({"alg": "RS256", "kid": KID, "typ": "JWT"}).to_string());
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let signature = match &input.signature {
        Signature::TeamKey => keys().0.sign_bytes(signing_input.as_bytes()),
        Signature::OtherKey => keys().1.sign_bytes(signing_input.as_bytes()),
        Signature::Raw(bytes) => bytes.clone(),
    };
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// What must hold of a token that was accepted as `identity` at `now`.
fn check_accepted(
    input: &Input,
    claims: &str,
    identity: &Identity,
    now: u64,
    through_binding: bool,
) -> Result<(), String> {
    if !matches!(input.signature, Signature::TeamKey) {
        return Err("accepted without the team's signature".into());
    }
    if let Some(header) = &input.header {
        let header: Value = serde_json::from_str(header).map_err(|e| format!("header: {e}"))?;
        if header["alg"] != "RS256" || header["kid"] != KID {
            return Err(format!("accepted with header {header}"));
        }
    }
    let claims: Value = serde_json::from_str(claims).map_err(|e| format!("claims: {e}"))?;
    let issuer = claims["iss"].as_str().unwrap_or_default();
    if issuer.trim_end_matches('/') != TEAM {
        return Err(format!("accepted from issuer {issuer:?}"));
    }
    let exp = claims["exp"]
        .as_u64()
        .ok_or("accepted without a numeric exp")?;
    if now > exp.saturating_add(LEEWAY) {
        return Err(format!("accepted though it expired at {exp}"));
    }
    if let Some(nbf) = claims["nbf"].as_u64() {
        if now + LEEWAY < nbf {
            return Err(format!("accepted before its nbf {nbf}"));
        }
    } else if !claims["nbf"].is_null() {
        return Err(format!("accepted with nbf {}", claims["nbf"]));
    }
    let accepted = |aud: &str| AUDIENCES.contains(&aud) || (through_binding && aud == BINDING_AUD);
    let audience_ok = match &claims["aud"] {
        Value::String(aud) => accepted(aud),
        Value::Array(auds) => auds.iter().any(|a| a.as_str().is_some_and(accepted)),
        _ => false,
    };
    if !audience_ok {
        return Err(format!("accepted for audience {}", claims["aud"]));
    }
    let expected = match (claims["email"].as_str(), claims["common_name"].as_str()) {
        (Some(email), _) if !email.is_empty() => Identity::User {
            email: email.into(),
        },
        (_, Some(SERVICE)) => Identity::Service {
            client_id: SERVICE.into(),
        },
        _ => return Err(format!("accepted with no allowed identity: {identity:?}")),
    };
    if *identity != expected {
        return Err(format!(
            "accepted as {identity:?}, the claims say {expected:?}"
        ));
    }
    Ok(())
}

fn check_refused(token: &str, rejection: &Rejection) -> Result<(), String> {
    if !matches!(rejection.status(), 401 | 403) {
        return Err(format!(
            "refused with {}: {rejection:?}",
            rejection.status()
        ));
    }
    let shown = rejection.to_string();
    if token.len() >= 16 && shown.contains(token) {
        return Err("the refusal echoes the token".into());
    }
    Ok(())
}

fuzz_target!(|input: Input| {
    let claims = claims_text(&input);
    let token = token(&input, &claims);
    let first = (NOW, input.through_binding);
    let again = input.again.iter().take(4).map(|&(later, through_binding)| {
        (NOW.saturating_add_signed(i64::from(later)), through_binding)
    });
    for (now, through_binding) in std::iter::once(first).chain(again) {
        let verified = fuzz::block_on(verifier().verify(&token, certs(), now, through_binding));
        let checked = match &verified {
            Ok(identity) => check_accepted(&input, &claims, identity, now, through_binding),
            Err(rejection) => check_refused(&token, rejection),
        };
        if let Err(broken) = checked {
            panic!(
                "{broken}\ntoken: {token}\nat {now}, through the binding: {through_binding}\n\
                 verified: {verified:?}"
            );
        }
    }
});
