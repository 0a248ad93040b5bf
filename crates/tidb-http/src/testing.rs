//! Property-test strategies for what the binder must escape (feature
//! `testing`): the crate's own fuzz tests and the end-to-end round trip
//! through the gateway into MariaDB generate their values here, so both
//! exercise the same inputs.

use proptest::prelude::*;

/// Fragments that matter to SQL lexing and to the binder: quotes,
/// backslashes and the characters MySQL escapes, comment starters,
/// placeholders (`?`, `:name`), `LIKE` wildcards, hex-literal starts,
/// whitespace, line separators, a BOM, characters that some character sets
/// turn into a quote or backslash, and 4-byte characters (utf8mb4).
pub const SQL_SPECIAL: &[&str] = &[
    "'",
    "''",
    "\\",
    "\\'",
    "\"",
    "\0",
    "\u{1a}",
    "\n",
    "\r",
    "\t",
    "\u{8}",
    "%",
    "_",
    "\\%",
    "\\_",
    "?",
    ":a",
    ":b",
    "--",
    "-- ",
    "/*",
    "*/",
    "#",
    ";",
    "`",
    " ",
    "  ",
    "\u{2028}",
    "\u{feff}",
    "\u{a5}",
    "\u{20a9}",
    "\u{ff07}",
    "🐢",
    "\u{10ffff}",
    "0x",
    "x'",
];

/// Arbitrary text (any Unicode scalar value; Rust strings cannot hold lone
/// surrogates) with [`SQL_SPECIAL`] fragments mixed in, up to `max_parts`
/// pieces.
pub fn sql_text(max_parts: usize) -> impl Strategy<Value = String> {
    let special = prop::sample::select(SQL_SPECIAL).prop_map(str::to_owned);
    prop::collection::vec(
        prop_oneof![any::<char>().prop_map(String::from), special],
        0..max_parts,
    )
    .prop_map(|parts| parts.concat())
}

/// Finite doubles of every magnitude, with the ones whose printing is
/// tricky (JavaScript's `String(n)` switches to exponents at 1e21 and
/// 1e-7; negative zero; the extremes) weighted in. NaN and infinities are
/// refused by the driver (its unit tests).
pub fn finite_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        3 => any::<f64>().prop_filter("finite", |f| f.is_finite()),
        1 => prop::sample::select(vec![
            0.1,
            -0.0,
            1e21,
            1e-7,
            5e-324,
            f64::MAX,
            f64::MIN_POSITIVE,
        ]),
    ]
}
