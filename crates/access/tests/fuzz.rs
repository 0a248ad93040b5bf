//! Property tests ("fuzzing") of token verification: arbitrary strings
//! and near-tokens are refused with a `Rejection` (never a panic, never an
//! identity); genuine tokens with arbitrary claims are accepted exactly
//! when issuer, time window, audience and identity allow; and changing
//! any single character of a genuine token gets it refused.
//!
//! Run long with `PROPTEST_CASES=20000 cargo test -p access --test fuzz --release`.

use std::sync::{Mutex, OnceLock};

use access::testing::{
    encode_json, user_claims, Certs, SigningKey, AUDIENCES, BINDING_AUD, SERVICE, TEAM,
};
use access::{Identity, Rejection, Verifier};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

const AUD: &str = AUDIENCES[0];
const SECOND_AUD: &str = AUDIENCES[1];
const NOW: u64 = 1_800_000_000;
const LEEWAY: u64 = 60;

/// Key generation is slow in debug builds: one key per test binary.
fn key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::generate("key-a"))
}

/// The team's certs endpoint, serving the one key.
fn certs() -> &'static Certs {
    static CERTS: OnceLock<Certs> = OnceLock::new();
    CERTS.get_or_init(|| Certs::serving(&[key()]))
}

/// One verifier (and so one key cache) for all cases, as in an isolate.
fn verifier() -> &'static Verifier {
    static VERIFIER: OnceLock<Verifier> = OnceLock::new();
    VERIFIER.get_or_init(access::testing::verifier)
}

fn verify(token: &str, now: u64, through_binding: bool) -> Result<Identity, Rejection> {
    static RUNTIME: OnceLock<Mutex<tokio::runtime::Runtime>> = OnceLock::new();
    let runtime = RUNTIME.get_or_init(|| {
        Mutex::new(
            tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap(),
        )
    });
    let runtime = runtime.lock().unwrap_or_else(|e| e.into_inner());
    runtime.block_on(verifier().verify(token, certs(), now, through_binding))
}

/// A rejection must say something safe and specific; the status is the
/// API's mapping.
fn check_rejection(rejection: &Rejection, token: &str) -> Result<(), TestCaseError> {
    prop_assert!(matches!(rejection.status(), 401 | 403), "{rejection:?}");
    let shown = rejection.to_string();
    prop_assert!(!shown.is_empty());
    if token.len() >= 16 {
        prop_assert!(!shown.contains(token), "the message echoes the token");
    }
    Ok(())
}

// ---------------------------------------------------------------------
// Garbage and near-tokens.

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A segment: base64url of arbitrary bytes or JSON, a plausible header,
/// raw text, or padded/standard base64 (which must be refused).
fn segment() -> impl Strategy<Value = String> {
    let kid = prop_oneof![Just("key-a".to_owned()), "[a-z-]{0,8}"];
    let alg = prop_oneof![
        Just("RS256".to_owned()),
        Just("none".to_owned()),
        Just("HS256".to_owned()),
        Just("rs256".to_owned()),
        "[A-Z0-9]{0,6}",
    ];
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300).prop_map(|b| b64(&b)),
        json_value().prop_map(|v| encode_json(&v)),
        (alg, kid, any::<bool>()).prop_map(|(alg, kid, crit)| {
            let mut header = json!({"alg": alg, "kid": kid});
            if crit {
                header["crit"] = json!(["exp"]);
            }
            encode_json(&header)
        }),
        "[A-Za-z0-9_+/=-]{0,64}",
        "\\PC{0,20}",
        Just(String::new()),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("alg".to_owned()),
                    Just("kid".to_owned()),
                    Just("exp".to_owned()),
                    Just("aud".to_owned()),
                    "[a-z]{1,5}",
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn fuzz_arbitrary_strings_are_rejected(token in "\\PC{0,200}|(?s).{0,64}", binding in any::<bool>()) {
        let rejection = verify(&token, NOW, binding).unwrap_err();
        check_rejection(&rejection, &token)?;
    }

    #[test]
    fn fuzz_dot_separated_segments_are_rejected(
        parts in prop::collection::vec(segment(), 1..5),
        signature in prop_oneof![
            segment(),
            // A signature of the right length that is not the right one.
            prop::collection::vec(any::<u8>(), 256).prop_map(|b| b64(&b)),
        ],
        binding in any::<bool>(),
    ) {
        let mut token = parts.join(".");
        token.push('.');
        token.push_str(&signature);
        let rejection = verify(&token, NOW, binding).unwrap_err();
        check_rejection(&rejection, &token)?;
    }
}

// ---------------------------------------------------------------------
// Genuine tokens with arbitrary claims.

#[derive(Debug, Clone)]
struct ClaimsCase {
    iss: Option<String>,
    aud: Option<Value>,
    exp: Option<i64>,
    nbf: Option<i64>,
    email: Option<String>,
    common_name: Option<String>,
}

fn audience() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(AUD.to_owned()),
        Just(SECOND_AUD.to_owned()),
        Just(BINDING_AUD.to_owned()),
        Just(format!("{AUD} ")),
        "[a-f0-9]{0,8}",
    ]
}

fn claims_case() -> impl Strategy<Value = ClaimsCase> {
    (
        prop::option::weighted(
            0.9,
            prop_oneof![
                4 => Just(TEAM.to_owned()),
                1 => Just(format!("{TEAM}/")),
                1 => Just(format!("{TEAM}//")),
                1 => Just("https://other-team.cloudflareaccess.com".to_owned()),
                1 => Just(TEAM.to_uppercase()),
                1 => "\\PC{0,10}",
            ],
        ),
        prop::option::weighted(
            0.9,
            prop_oneof![
                audience().prop_map(Value::from),
                prop::collection::vec(audience(), 0..4).prop_map(Value::from),
            ],
        ),
        prop::option::weighted(0.9, -200i64..200),
        prop::option::weighted(0.5, -200i64..200),
        prop::option::of(prop_oneof![
            "[a-z]{1,8}@example\\.com",
            "\\PC{0,12}",
            Just(String::new()),
        ]),
        prop::option::of(prop_oneof![
            Just(SERVICE.to_owned()),
            Just("other.access".to_owned()),
            Just(String::new()),
        ]),
    )
        .prop_map(|(iss, aud, exp, nbf, email, common_name)| ClaimsCase {
            iss,
            aud,
            exp,
            nbf,
            email,
            common_name,
        })
}

impl ClaimsCase {
    fn to_json(&self) -> Value {
        let mut claims = json!({"iat": NOW, "type": "app", "sub": "x"});
        let mut set = |name: &str, value: Option<Value>| {
            if let Some(value) = value {
                claims[name] = value;
            }
        };
        set("iss", self.iss.clone().map(Value::from));
        set("aud", self.aud.clone());
        set("exp", self.exp.map(|d| Value::from(NOW as i64 + d)));
        set("nbf", self.nbf.map(|d| Value::from(NOW as i64 + d)));
        set("email", self.email.clone().map(Value::from));
        set("common_name", self.common_name.clone().map(Value::from));
        claims
    }

    /// What Access's rules say `elapsed` seconds after `NOW`, checked in
    /// the documented order: issuer, expiry, not-before, audience, then
    /// who it is.
    fn expected(&self, elapsed: i64, through_binding: bool) -> Result<Identity, Rejection> {
        let iss = self.iss.as_deref().unwrap_or("");
        if iss.trim_end_matches('/') != TEAM {
            return Err(Rejection::WrongIssuer);
        }
        let exp = self
            .exp
            .ok_or(Rejection::Malformed("it has no expiry (exp)"))?;
        if exp + (LEEWAY as i64) < elapsed {
            return Err(Rejection::Expired);
        }
        if let Some(nbf) = self.nbf {
            if elapsed + (LEEWAY as i64) < nbf {
                return Err(Rejection::NotYetValid);
            }
        }
        let accepted =
            |a: &str| a == AUD || a == SECOND_AUD || (through_binding && a == BINDING_AUD);
        let audience_ok = match &self.aud {
            Some(Value::String(a)) => accepted(a),
            Some(Value::Array(list)) => list.iter().any(|a| accepted(a.as_str().unwrap())),
            _ => false,
        };
        if !audience_ok {
            return Err(Rejection::WrongAudience);
        }
        match (self.email.as_deref(), self.common_name.as_deref()) {
            (Some(email), _) if !email.is_empty() => Ok(Identity::User {
                email: email.to_owned(),
            }),
            (_, Some(SERVICE)) => Ok(Identity::Service {
                client_id: SERVICE.to_owned(),
            }),
            (_, Some(name)) if !name.is_empty() => Err(Rejection::ServiceTokenNotAllowed),
            _ => Err(Rejection::Malformed(
                "it names neither a user nor a service token",
            )),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Presented again and again, at other times and by other routes, a
    /// token gets what its claims allow then and there: after its first
    /// admission the verifier skips its signature check (it remembers the
    /// tokens it let in), never its claims.
    #[test]
    fn fuzz_genuine_tokens_verify_exactly_when_the_claims_allow(
        case in claims_case(),
        presented in prop::collection::vec((-300i64..300, any::<bool>()), 1..5),
    ) {
        let token = key().sign(&case.to_json());
        for (elapsed, binding) in presented {
            let now = NOW.saturating_add_signed(elapsed);
            prop_assert_eq!(
                verify(&token, now, binding),
                case.expected(elapsed, binding),
                "{} s after NOW, through the binding: {}", elapsed, binding
            );
        }
    }

    /// Any one character changed, anywhere (header, claims, signature, a
    /// dot), and the token is refused: the signature covers the header
    /// and claims as sent, and base64url here has one spelling per value.
    #[test]
    fn fuzz_single_character_mutations_are_rejected(
        email in "[a-z]{1,8}@example\\.com",
        position in any::<prop::sample::Index>(),
        replacement in prop_oneof![
            4 => prop::char::range('\u{21}', '\u{7e}'),
            1 => any::<char>(),
        ],
    ) {
        let token = key().sign(&user_claims(TEAM, AUD, &email, NOW));
        prop_assert!(verify(&token, NOW, false).is_ok());
        let mut chars: Vec<char> = token.chars().collect();
        let at = position.index(chars.len());
        prop_assume!(chars[at] != replacement);
        chars[at] = replacement;
        let mutated: String = chars.into_iter().collect();
        let rejection = verify(&mutated, NOW, false).unwrap_err();
        check_rejection(&rejection, &mutated)?;
    }
}
