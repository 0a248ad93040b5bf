//! What the binder must escape and how to check it (feature `testing`):
//! property-test strategies that the crate's own fuzz tests and the
//! end-to-end round trip through the gateway into MariaDB generate their
//! values from, and a MySQL literal reader (written from MySQL's
//! documented string, hex and number rules, independently of the binder)
//! that those tests and the coverage-guided target in `fuzz/` check the
//! sent SQL with.

use std::ops::RangeInclusive;

use proptest::prelude::*;

use crate::{Date, DateTime, Statement, Value};

/// Every column type name the decoder reads as something other than text
/// (its own table, `decode::DECODINGS`): what a fuzzer of result sets must
/// name, so a type the decoder learns is fuzzed from the commit that adds
/// it.
pub const DECODED_TYPE_NAMES: [&str; crate::decode::DECODINGS.len()] = {
    let mut names = [""; crate::decode::DECODINGS.len()];
    let mut i = 0;
    while i < names.len() {
        names[i] = crate::decode::DECODINGS[i].0;
        i += 1;
    }
    names
};

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

/// JSON documents of null, booleans, integers and [`sql_text`] strings (up
/// to `max_parts` pieces), nested in arrays and objects. No doubles:
/// serde_json, which reads a document back, does not always land on the
/// double whose digits it printed (see [`denotes`]).
pub fn json_document(max_parts: usize) -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        sql_text(max_parts).prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(2, 12, 4, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map(sql_text(max_parts), inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Day `day` (1 to 31) of `month` (1 to 12) in `year` (1 to 9999), or the
/// month's last day where `day` is past it.
pub fn calendar_date(year: u16, month: u8, day: u8) -> Date {
    (1..=day)
        .rev()
        .find_map(|day| Date::new(year, month, day))
        .expect("a year, month and day in range")
}

/// Calendar dates with years in `years` (within 1..=9999), every day of
/// every month among them.
pub fn date(years: RangeInclusive<u16>) -> impl Strategy<Value = Date> {
    (years, 1..=12u8, 1..=31u8).prop_map(|(year, month, day)| calendar_date(year, month, day))
}

/// Datetimes on [`date`]s: every time of day, without a fraction, with
/// whole milliseconds (sent with three digits) or with microseconds (six).
pub fn datetime(years: RangeInclusive<u16>) -> impl Strategy<Value = DateTime> {
    let micros = prop_oneof![
        Just(0u32),
        (0..1000u32).prop_map(|ms| ms * 1000),
        0..1_000_000u32,
    ];
    (date(years), 0..24u8, 0..60u8, 0..60u8, micros).prop_map(
        |(date, hour, minute, second, micros)| {
            DateTime::new(date, hour, minute, second)
                .and_then(|t| t.with_micros(micros))
                .expect("a valid time of day")
        },
    )
}

/// Year, month, day, hour, minute, second and microseconds.
pub type Calendar = (u32, u32, u32, u32, u32, u32, u32);

/// `date` at `hour`:`minute`:`second`.`micros`, as a [`Calendar`].
fn calendar(date: Date, hour: u8, minute: u8, second: u8, micros: u32) -> Calendar {
    let (y, mo, d) = (date.year(), date.month(), date.day());
    (
        y.into(),
        mo.into(),
        d.into(),
        hour.into(),
        minute.into(),
        second.into(),
        micros,
    )
}

/// A date, or a date and time of day, as MySQL reads one from a string
/// (`YYYY-MM-DD`, then optionally a space or `T` and `hh:mm:ss` with up to
/// six fractional digits), as (year, month, day, hour, minute, second,
/// microseconds); `None` for anything else. Written from MySQL's manual
/// ("Date and Time Literals"), not from this crate's parser or printer.
pub fn calendar_text(text: &str) -> Option<Calendar> {
    fn digits(text: &str, at: usize, n: usize) -> Option<u32> {
        let part = text.get(at..at + n)?;
        part.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| part.parse().ok())?
    }
    let b = text.as_bytes();
    let dash = |at: usize| b.get(at) == Some(&b'-');
    if text.len() < 10 || !dash(4) || !dash(7) {
        return None;
    }
    let (year, month, day) = (
        digits(text, 0, 4)?,
        digits(text, 5, 2)?,
        digits(text, 8, 2)?,
    );
    if text.len() == 10 {
        return Some((year, month, day, 0, 0, 0, 0));
    }
    let colon = |at: usize| b.get(at) == Some(&b':');
    if !matches!(b[10], b' ' | b'T') || text.len() < 19 || !colon(13) || !colon(16) {
        return None;
    }
    let (hour, minute, second) = (
        digits(text, 11, 2)?,
        digits(text, 14, 2)?,
        digits(text, 17, 2)?,
    );
    let micros = match &text[19..] {
        "" => 0,
        fraction => {
            let fraction = fraction.strip_prefix('.')?;
            if !(1..=6).contains(&fraction.len()) {
                return None;
            }
            digits(fraction, 0, fraction.len())? * 10u32.pow(6 - fraction.len() as u32)
        }
    };
    Some((year, month, day, hour, minute, second, micros))
}

/// A value as MySQL reads its literal back.
#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    Null,
    Bool(bool),
    /// A number literal's text (compared by what it denotes, below).
    Number(String),
    Text(String),
    Bytes(Vec<u8>),
}

/// Reads one literal at the start of `sql`; returns it and the rest.
/// Strings follow MySQL's rules with `NO_BACKSLASH_ESCAPES` off: `\0 \b
/// \n \r \t \Z \\ \' \"` are escapes, `\%` and `\_` keep their backslash,
/// any other `\c` is `c`, and `''` inside `'...'` is one quote.
pub fn literal(sql: &str) -> Result<(Lit, &str), String> {
    let lower = sql.to_ascii_lowercase();
    for (word, lit) in [
        ("null", Lit::Null),
        ("true", Lit::Bool(true)),
        ("false", Lit::Bool(false)),
    ] {
        if lower.starts_with(word)
            && !sql[word.len()..].starts_with(|c: char| c.is_alphanumeric() || c == '_')
        {
            return Ok((lit, &sql[word.len()..]));
        }
    }
    if let Some(rest) = sql.strip_prefix("0x") {
        let digits = rest.len()
            - rest
                .trim_start_matches(|c: char| c.is_ascii_hexdigit())
                .len();
        let hex = &rest[..digits];
        if hex.is_empty() || hex.len() % 2 != 0 {
            return Err(format!("a 0x literal of {} digits", hex.len()));
        }
        let bytes = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        return Ok((Lit::Bytes(bytes), &rest[digits..]));
    }
    if let Some(rest) = sql.strip_prefix("x''").or_else(|| sql.strip_prefix("X''")) {
        return Ok((Lit::Bytes(Vec::new()), rest));
    }
    if let Some(body) = sql.strip_prefix('\'') {
        let mut text = String::new();
        let mut chars = body.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    let (_, escaped) = chars.next().ok_or("a backslash at the end")?;
                    match escaped {
                        '0' => text.push('\0'),
                        'b' => text.push('\u{8}'),
                        'n' => text.push('\n'),
                        'r' => text.push('\r'),
                        't' => text.push('\t'),
                        'Z' => text.push('\u{1a}'),
                        '%' | '_' => {
                            text.push('\\');
                            text.push(escaped);
                        }
                        other => text.push(other),
                    }
                }
                '\'' if body[i + 1..].starts_with('\'') => {
                    chars.next();
                    text.push('\'');
                }
                '\'' => return Ok((Lit::Text(text), &body[i + 1..])),
                c => text.push(c),
            }
        }
        return Err("an unterminated string".into());
    }
    // -?digits[.digits][e[+-]digits]
    let bytes = sql.as_bytes();
    let mut end = usize::from(bytes.first() == Some(&b'-'));
    let digits = |from: usize| {
        bytes[from..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    let int = digits(end);
    if int == 0 {
        return Err(format!("no literal at {sql:?}"));
    }
    end += int;
    if bytes.get(end) == Some(&b'.') {
        let frac = digits(end + 1);
        if frac == 0 {
            return Err("a number ending in `.`".into());
        }
        end += 1 + frac;
    }
    if matches!(bytes.get(end), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(bytes.get(end + 1), Some(b'+' | b'-')));
        let exp = digits(end + 1 + sign);
        if exp == 0 {
            return Err("an exponent without digits".into());
        }
        end += 1 + sign + exp;
    }
    Ok((Lit::Number(sql[..end].to_owned()), &sql[end..]))
}

/// Does literal `lit` denote `value`?
pub fn denotes(lit: &Lit, value: &Value) -> bool {
    match (lit, value) {
        (Lit::Null, Value::Null) => true,
        (Lit::Bool(a), Value::Bool(b)) => a == b,
        (Lit::Number(n), Value::Int(i)) => n.parse::<i64>() == Ok(*i),
        (Lit::Number(n), Value::UInt(u)) => n.parse::<u64>() == Ok(*u),
        // Exact: the shortest digits that round-trip (-0 prints as 0).
        (Lit::Number(n), Value::Float(f)) => n.parse::<f64>() == Ok(*f),
        (Lit::Text(t), Value::Text(s)) => t == s,
        // The document's own JSON text, exactly: reading the text back
        // would test serde_json's number parsing, which (without its
        // `float_roundtrip` feature) can land a step or more away from the
        // double whose digits it printed (the fuzz target `tidb_binder`
        // found `7.777777777777778e+40` doing so).
        (Lit::Text(t), Value::Json(j)) => serde_json::to_string(j).is_ok_and(|text| text == *t),
        (Lit::Bytes(a), Value::Bytes(b)) => a == b,
        (Lit::Text(t), Value::Date(d)) => {
            t.len() == 10 && calendar_text(t) == Some(calendar(*d, 0, 0, 0, 0))
        }
        (Lit::Text(t), Value::DateTime(v)) => {
            let at = calendar(v.date(), v.hour(), v.minute(), v.second(), v.micros());
            t.len() > 10 && calendar_text(t) == Some(at)
        }
        _ => false,
    }
}

/// `SELECT` of `values` `FROM dual`, bound by position (`?, ?`) or by name
/// (`:p0, :p1`, bound last to first: the order of binding does not matter
/// for names): the statement [`check_literals`] reads with prefix
/// `SELECT ` and separator `, `.
pub fn select_of(values: &[Value], named: bool) -> Statement {
    if named {
        let names: Vec<String> = (0..values.len()).map(|i| format!(":p{i}")).collect();
        let statement = Statement::new(format!("SELECT {} FROM dual", names.join(", ")));
        values
            .iter()
            .enumerate()
            .rev()
            .fold(statement, |statement, (i, value)| {
                statement.bind_named(format!("p{i}"), value.clone())
            })
    } else {
        let placeholders = vec!["?"; values.len()].join(", ");
        let statement = Statement::new(format!("SELECT {placeholders} FROM dual"));
        values.iter().cloned().fold(statement, Statement::bind)
    }
}

/// Walks `sql` = `prefix` lit (`sep` lit)* ` FROM dual`, checking each
/// literal against its value in order: `Err` says where the SQL stops
/// being the values as literals. A list is its items' literals joined by
/// `, ` (nested lists flattened, as `IN (?)` takes them).
pub fn check_literals(sql: &str, prefix: &str, sep: &str, values: &[Value]) -> Result<(), String> {
    let mut rest = sql
        .strip_prefix(prefix)
        .ok_or_else(|| format!("prefix lost: {sql:?}"))?;
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            rest = rest
                .strip_prefix(sep)
                .ok_or_else(|| format!("separator {i} lost: {sql:?}"))?;
        }
        rest = check_literal(rest, value).map_err(|e| format!("{e} in {sql:?}"))?;
    }
    if rest != " FROM dual" {
        return Err(format!("trailing text {rest:?} in {sql:?}"));
    }
    Ok(())
}

/// Reads `value`'s literal (a list's, item by item) at the start of `sql`;
/// returns the rest.
fn check_literal<'a>(sql: &'a str, value: &Value) -> Result<&'a str, String> {
    if let Value::List(items) = value {
        let mut rest = sql;
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                rest = rest
                    .strip_prefix(", ")
                    .ok_or_else(|| format!("list item {i} not after `, `"))?;
            }
            rest = check_literal(rest, item)?;
        }
        return Ok(rest);
    }
    let (lit, rest) = literal(sql)?;
    if !denotes(&lit, value) {
        return Err(format!("{value:?} was sent as {lit:?}"));
    }
    Ok(rest)
}

/// Whether binding `value` is refused: NaN and infinities have no SQL
/// literal, and an empty list binds nothing (at any depth).
pub fn unbindable(value: &Value) -> bool {
    match value {
        Value::Float(f) => !f.is_finite(),
        Value::List(items) => items.is_empty() || items.iter().any(unbindable),
        _ => false,
    }
}
