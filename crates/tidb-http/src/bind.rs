//! Client-side parameter binding, as serverless-js's `src/format.ts` does
//! it: the SQL API takes one SQL string, so values are escaped into the
//! text before it is sent.
//!
//! The rules, matched exactly (each has a test below):
//! - Positional: every `?` is replaced in order while values remain; extra
//!   `?` stay as they are. A `?` inside a quoted string is replaced too:
//!   serverless-js does not look at quoting, so neither does this.
//! - Named: every `:name` (`name` = ASCII letters, digits, `_`) with a value
//!   is replaced; names without one stay as written. One pass over the
//!   original text: substituted values are never scanned again.
//! - `NULL` is `null`, booleans are `true`/`false`, numbers print as
//!   JavaScript's `String(n)` prints them, strings are single-quoted with
//!   `\0 \b \n \r \t \x1a \\ " '` backslash-escaped, bytes are a `0x..` hex
//!   literal, datetimes are `'YYYY-MM-DDTHH:MM:SS.mmm'`, lists are their
//!   items joined by `, ` (for `IN (?)`).
//!
//! Where this deliberately differs (serverless-js would send broken SQL):
//! NaN and infinities are refused instead of printed as `NaN`/`Infinity`;
//! empty bytes are `x''` instead of the invalid `0x`; JSON values are sent
//! as a quoted JSON document (serverless-js has no JSON type, so callers
//! `JSON.stringify` first, which gives the same text); a datetime with
//! microseconds keeps all six digits (a JS `Date` has only milliseconds);
//! an empty list, at any depth, is refused instead of bound as nothing:
//! `IN ()` is not SQL, and `VALUES (?)` would become `VALUES ()`, a row of
//! defaults.
//!
//! The escaping assumes `NO_BACKSLASH_ESCAPES` is off, as it is on TiDB.

use std::fmt::Write;

use crate::time::{Date, DateTime};

/// A parameter value to bind into a statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Text(String),
    Bytes(Vec<u8>),
    Date(Date),
    DateTime(DateTime),
    /// Sent as the JSON document's text in a string literal, which JSON
    /// columns accept.
    Json(serde_json::Value),
    /// Items joined by `, `, for `IN (?)`.
    List(Vec<Value>),
}

impl Value {
    /// A list value for `IN (?)`.
    pub fn list<T: Into<Value>>(items: impl IntoIterator<Item = T>) -> Self {
        Value::List(items.into_iter().map(Into::into).collect())
    }
}

macro_rules! value_from {
    ($($ty:ty => $variant:ident via $conv:expr),* $(,)?) => {
        $(impl From<$ty> for Value {
            fn from(v: $ty) -> Self {
                Value::$variant($conv(v))
            }
        })*
    };
}

value_from! {
    bool => Bool via |v| v,
    i8 => Int via i64::from,
    i16 => Int via i64::from,
    i32 => Int via i64::from,
    i64 => Int via |v| v,
    u8 => UInt via u64::from,
    u16 => UInt via u64::from,
    u32 => UInt via u64::from,
    u64 => UInt via |v| v,
    f32 => Float via f64::from,
    f64 => Float via |v| v,
    String => Text via |v| v,
    &str => Text via str::to_owned,
    &String => Text via String::clone,
    Vec<u8> => Bytes via |v| v,
    &[u8] => Bytes via <[u8]>::to_vec,
    Date => Date via |v| v,
    DateTime => DateTime via |v| v,
    serde_json::Value => Json via |v| v,
}

impl From<isize> for Value {
    fn from(v: isize) -> Self {
        Value::Int(v as i64)
    }
}

impl From<usize> for Value {
    fn from(v: usize) -> Self {
        Value::UInt(v as u64)
    }
}

impl<const N: usize> From<&[u8; N]> for Value {
    fn from(v: &[u8; N]) -> Self {
        Value::Bytes(v.to_vec())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// The parameters of one statement: serverless-js takes either an array
/// (positional) or an object (named), never both.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Params {
    pub(crate) positional: Vec<Value>,
    pub(crate) named: Vec<(String, Value)>,
}

impl Params {
    pub(crate) fn is_empty(&self) -> bool {
        self.positional.is_empty() && self.named.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.positional.len() + self.named.len()
    }
}

/// Why a statement's parameters could not be bound. Never holds a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BindError {
    Mixed,
    NotFinite,
    EmptyList,
}

impl std::fmt::Display for BindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BindError::Mixed => f.write_str(
                "a statement takes positional (?) or named (:name) parameters, not both",
            ),
            BindError::NotFinite => f.write_str("NaN and infinite floats have no SQL literal"),
            BindError::EmptyList => {
                f.write_str("an empty list binds no value (`IN ()` is not SQL)")
            }
        }
    }
}

/// The SQL text with `params` bound in. Without parameters the text is
/// sent as given (serverless-js formats only when `args` is given).
pub(crate) fn format(sql: &str, params: &Params) -> Result<String, BindError> {
    if !params.positional.is_empty() && !params.named.is_empty() {
        return Err(BindError::Mixed);
    }
    let mut out = String::with_capacity(sql.len() + 16 * params.len());
    if !params.named.is_empty() {
        replace_named(sql, &params.named, &mut out)?;
    } else {
        replace_positional(sql, &params.positional, &mut out)?;
    }
    Ok(out)
}

fn replace_positional(sql: &str, values: &[Value], out: &mut String) -> Result<(), BindError> {
    let mut next = values.iter().peekable();
    for c in sql.chars() {
        match next.next_if(|_| c == '?') {
            Some(value) => sanitize(value, out)?,
            None => out.push(c),
        }
    }
    Ok(())
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn replace_named(sql: &str, values: &[(String, Value)], out: &mut String) -> Result<(), BindError> {
    let bytes = sql.as_bytes();
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b':' {
            i += 1;
            continue;
        }
        let start = i + 1;
        let end = start + bytes[start..].iter().take_while(|&&b| is_word(b)).count();
        if end == start {
            i += 1;
            continue;
        }
        // Like a JS object, the last value given for a name wins.
        if let Some((_, value)) = values.iter().rev().find(|(n, _)| n == &sql[start..end]) {
            out.push_str(&sql[copied..i]);
            sanitize(value, out)?;
            copied = end;
        }
        i = end;
    }
    out.push_str(&sql[copied..]);
    Ok(())
}

fn sanitize(value: &Value, out: &mut String) -> Result<(), BindError> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(n) => write!(out, "{n}").expect("writing to a String"),
        Value::UInt(n) => write!(out, "{n}").expect("writing to a String"),
        Value::Float(f) => out.push_str(&js_number(*f).ok_or(BindError::NotFinite)?),
        Value::Text(s) => quote(s, out),
        Value::Bytes(b) if b.is_empty() => out.push_str("x''"),
        Value::Bytes(b) => {
            out.push_str("0x");
            out.push_str(&hex::encode(b));
        }
        Value::Date(d) => quote(&d.to_string(), out),
        Value::DateTime(t) => {
            // `Date.toISOString()` without its `Z`: milliseconds, or all six
            // digits when there is more precision than a JS Date has.
            let digits = if t.micros().is_multiple_of(1000) {
                3
            } else {
                6
            };
            let mut text = String::with_capacity(26);
            t.write(&mut text, 'T', digits)
                .expect("writing to a String");
            quote(&text, out);
        }
        Value::Json(json) => quote(&json.to_string(), out),
        Value::List(items) if items.is_empty() => return Err(BindError::EmptyList),
        Value::List(items) => {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                sanitize(item, out)?;
            }
        }
    }
    Ok(())
}

fn quote(text: &str, out: &mut String) {
    out.push('\'');
    for c in text.chars() {
        match c {
            '\0' => out.push_str("\\0"),
            '\u{8}' => out.push_str("\\b"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{1a}' => out.push_str("\\Z"),
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\'' => out.push_str("\\'"),
            c => out.push(c),
        }
    }
    out.push('\'');
}

/// `String(n)` for a JavaScript number (ECMAScript Number::toString): the
/// shortest digits that round-trip, the nearest of those (the even one of
/// two equally near), in plain notation for 1e-7 <= |n| < 1e21 and as
/// `de±x` outside it. `None` for NaN and infinities.
pub(crate) fn js_number(n: f64) -> Option<String> {
    // ryu-js is Ryu with ECMAScript's layout and tie-breaking (it is Boa's
    // Number::toString). Rust's own shortest formatting (`{:e}`) does not
    // take the even one of two equally near shortest decimals.
    n.is_finite()
        .then(|| ryu_js::Buffer::new().format_finite(n).to_owned())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn positional(sql: &str, values: Vec<Value>) -> String {
        format(
            sql,
            &Params {
                positional: values,
                named: vec![],
            },
        )
        .unwrap()
    }

    fn named(sql: &str, values: Vec<(&str, Value)>) -> String {
        format(
            sql,
            &Params {
                positional: vec![],
                named: values.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            },
        )
        .unwrap()
    }

    // The cases of serverless-js's __tests__/format.test.ts, one for one.

    #[test]
    fn does_no_replacement_for_missing_object_key() {
        let sql = "select 1 from user where id=:id";
        assert_eq!(named(sql, vec![("other", 1.into())]), sql);
    }

    #[test]
    fn replaces_named_parameters() {
        assert_eq!(
            named(
                "select 1 from user where state in (:state) and deleted_at=:deleted_at",
                vec![
                    ("state", Value::list(["active", "inactive"])),
                    ("deleted_at", true.into()),
                ]
            ),
            "select 1 from user where state in ('active', 'inactive') and deleted_at=true"
        );
    }

    #[test]
    fn replaces_duplicate_named_parameters() {
        assert_eq!(
            named(
                "select 1 from user where id=:id or actor_id=:id",
                vec![("id", 42.into())]
            ),
            "select 1 from user where id=42 or actor_id=42"
        );
    }

    #[test]
    fn does_nothing_with_empty_values_list() {
        let sql = "select 1 from user where id=?";
        assert_eq!(positional(sql, vec![]), sql);
    }

    #[test]
    fn formats_as_many_values_as_given() {
        assert_eq!(
            positional(
                "select 1 from user where id=? and deleted=?",
                vec![42.into()]
            ),
            "select 1 from user where id=42 and deleted=?"
        );
    }

    #[test]
    fn formats_numbers_strings_nulls_booleans() {
        assert_eq!(
            positional("id=? and id2=?", vec![12.into(), 42.into()]),
            "id=12 and id2=42"
        );
        assert_eq!(
            positional("state=?", vec!["active".into()]),
            "state='active'"
        );
        assert_eq!(
            positional(
                "state=?, name=? where id=?",
                vec![Value::Null, None::<i32>.into(), 42.into()]
            ),
            "state=null, name=null where id=42"
        );
        assert_eq!(
            positional("a=? and d=?", vec![true.into(), false.into()]),
            "a=true and d=false"
        );
    }

    #[test]
    fn formats_date_values_like_to_iso_string_without_z() {
        let at = DateTime::new(Date::new(2022, 2, 8).unwrap(), 13, 15, 45).unwrap();
        assert_eq!(
            positional("created_at > ?", vec![at.into()]),
            "created_at > '2022-02-08T13:15:45.000'"
        );
        let precise = at.with_micros(123_456).unwrap();
        assert_eq!(
            positional("?", vec![precise.into()]),
            "'2022-02-08T13:15:45.123456'"
        );
        assert_eq!(
            positional("?", vec![Date::new(2024, 1, 31).unwrap().into()]),
            "'2024-01-31'"
        );
    }

    #[test]
    fn formats_array_values() {
        assert_eq!(
            positional(
                "id > ? and state in (?)",
                vec![42.into(), Value::list(["active", "inactive"])]
            ),
            "id > 42 and state in ('active', 'inactive')"
        );
        assert_eq!(
            positional(
                "in (?)",
                vec![Value::List(vec![1.into(), Value::list([2, 3])])]
            ),
            "in (1, 2, 3)"
        );
    }

    #[test]
    fn escapes_every_character_of_the_table() {
        let cases = [
            ("\"a\"", r#"'\"a\"'"#),
            ("'a'", r"'\'a\''"),
            ("\na\n", r"'\na\n'"),
            ("\ra\r", r"'\ra\r'"),
            ("\ta\t", r"'\ta\t'"),
            ("\\a\\", r"'\\a\\'"),
            ("\0a\0", r"'\0a\0'"),
            ("\u{8}a\u{8}", r"'\ba\b'"),
            ("\u{1a}a\u{1a}", r"'\Za\Z'"),
            ("żółw 🐢 ✓", "'żółw 🐢 ✓'"),
            ("%_", "'%_'"),
        ];
        for (input, expected) in cases {
            assert_eq!(positional("?", vec![input.into()]), expected, "{input:?}");
        }
    }

    #[test]
    fn formats_bigint_values() {
        assert_eq!(
            positional(
                "id=? and id2=? and id3=?",
                vec![1.into(), i64::MAX.into(), u64::MAX.into()]
            ),
            "id=1 and id2=9223372036854775807 and id3=18446744073709551615"
        );
    }

    #[test]
    fn formats_bytes_as_a_hex_literal() {
        assert_eq!(
            positional("?", vec![vec![0x15u8, 0x20, 0xc5].into()]),
            "0x1520c5"
        );
        assert_eq!(positional("?", vec![Vec::<u8>::new().into()]), "x''");
    }

    #[test]
    fn json_is_sent_as_its_text_in_a_string() {
        let doc = serde_json::json!({"a": "it's", "b": [1, null]});
        assert_eq!(
            positional("?", vec![doc.into()]),
            r#"'{\"a\":\"it\'s\",\"b\":[1,null]}'"#
        );
    }

    #[test]
    fn question_marks_in_values_and_quotes_are_handled_like_serverless_js() {
        // Substituted text is not scanned again...
        assert_eq!(
            positional("a=? and b=?", vec!["?".into(), "x".into()]),
            "a='?' and b='x'"
        );
        // ...but a literal ? inside quotes in the SQL is a placeholder too.
        assert_eq!(
            positional("select '?' , ?", vec![1.into(), 2.into()]),
            "select '1' , 2"
        );
        assert_eq!(
            named("a=:x and b=:y", vec![("x", ":y".into()), ("y", 2.into())]),
            "a=':y' and b=2"
        );
    }

    #[test]
    fn named_parameters_are_ascii_words_and_the_last_value_wins() {
        assert_eq!(
            named(
                "t=:id1, u=:id_2, v=::id1, w=:idé",
                vec![("id1", 1.into()), ("id_2", 2.into()), ("id1", 3.into())]
            ),
            "t=3, u=2, v=:3, w=:idé"
        );
    }

    #[test]
    fn mixing_styles_or_binding_nan_is_an_error() {
        let mixed = Params {
            positional: vec![1.into()],
            named: vec![("a".into(), 1.into())],
        };
        assert_eq!(format("?", &mixed), Err(BindError::Mixed));
        let nan = Params {
            positional: vec![f64::NAN.into()],
            named: vec![],
        };
        assert_eq!(format("?", &nan), Err(BindError::NotFinite));
    }

    #[test]
    fn an_empty_list_is_an_error_at_any_depth() {
        for list in [
            Value::List(vec![]),
            Value::List(vec![1.into(), Value::List(vec![])]),
        ] {
            let params = Params {
                positional: vec![list],
                named: vec![],
            };
            assert_eq!(
                format("INSERT INTO t VALUES (?)", &params),
                Err(BindError::EmptyList)
            );
        }
    }

    // The ties are written as the exact doubles they are (clippy sees more
    // digits than the shortest form, which is the point).
    #[allow(clippy::excessive_precision)]
    #[test]
    fn numbers_print_as_javascript_prints_them() {
        let cases = [
            (0.0, "0"),
            (-0.0, "0"),
            (1.0, "1"),
            (-1.5, "-1.5"),
            (0.1, "0.1"),
            (123.456, "123.456"),
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (123e20, "1.23e+22"),
            (1e-6, "0.000001"),
            (1.5e-7, "1.5e-7"),
            (1e-7, "1e-7"),
            (f64::MAX, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (9007199254740993.0, "9007199254740992"),
            // Exactly halfway between the two nearest shortest decimals:
            // ECMAScript takes the even one (Rust's `{:e}` took the other).
            (1071448249871547.25, "1071448249871547.2"),
            (-1071448249871547.25, "-1071448249871547.2"),
            (15418795696846.0625, "15418795696846.062"),
            (111821286205061.125, "111821286205061.12"),
        ];
        for (n, expected) in cases {
            assert_eq!(js_number(n).as_deref(), Some(expected), "{n:e}");
        }
        assert_eq!(positional("?", vec![0.1f32.into()]), "0.10000000149011612");
        assert_eq!(js_number(f64::INFINITY), None);
    }

    /// The digits ECMAScript's Number::toString (step 5) picks for `n`,
    /// worked out exactly and slowly, independently of the formatter:
    /// of the decimals with the fewest significant digits that read back
    /// as `n`, the one nearest `n`, and of two equally near, the one whose
    /// last digit is even. Only for `n = m·2^e` with a normal significand
    /// `m` and -30 <= e <= 16 (2^22 <= n < 2^69 < 1e21, printed without
    /// an exponent), whose exact decimal digits fit in a u128.
    fn ecmascript_digits(n: f64) -> String {
        let bits = n.to_bits();
        let m = u128::from(bits & ((1 << 52) - 1) | (1 << 52));
        let e = ((bits >> 52) & 0x7ff) as i32 - 1075;
        assert!(n > 0.0 && (-30..=16).contains(&e), "{n:e} out of range");
        // n = big / 10^scale exactly; one ulp of n is `ulp` in those units.
        let (big, scale, ulp) = if e >= 0 {
            (m << e, 0, 1u128 << e)
        } else {
            let five = 5u128.pow(e.unsigned_abs());
            (m * five, e.unsigned_abs(), five)
        };
        // A decimal reads back as n when less than half an ulp from it (below
        // an n that is a power of two, less than a quarter: the next double
        // down is half an ulp away), or exactly that far when m is even
        // (reading rounds ties to even). In quarters of a unit:
        let above = 2 * ulp;
        let below = if m == 1 << 52 { ulp } else { 2 * ulp };
        let reads_back = |c: u128| {
            let (gap, limit) = if c >= big {
                (c - big, above)
            } else {
                (big - c, below)
            };
            gap.checked_mul(4)
                .is_some_and(|g| g < limit || (g == limit && m % 2 == 0))
        };
        let width = big.to_string().len() as u32;
        let chosen = (0..=width)
            .rev()
            .find_map(|dropped| {
                let step = 10u128.pow(dropped);
                let floor = big / step * step;
                let candidates = [floor, floor + step]
                    .into_iter()
                    .filter(|&c| c > 0 && reads_back(c));
                candidates.min_by_key(|&c| (c.abs_diff(big), (c / step) % 2))
            })
            .expect("n itself reads back");
        let digits = format!("{chosen:0>w$}", w = scale as usize + 1);
        let (whole, fraction) = digits.split_at(digits.len() - scale as usize);
        match fraction.trim_end_matches('0') {
            "" => whole.to_owned(),
            fraction => format!("{whole}.{fraction}"),
        }
    }

    // The ties are written as the exact doubles they are (clippy sees more
    // digits than the shortest form, which is the point).
    #[allow(clippy::excessive_precision)]
    #[test]
    fn the_reference_picks_what_javascript_prints() {
        // `node -e 'console.log(String(n))'` for each.
        for (n, js) in [
            (1071448249871547.25, "1071448249871547.2"),
            (15418795696846.0625, "15418795696846.062"),
            (111821286205061.125, "111821286205061.12"),
            (4194304.0, "4194304"),
            (9007199254740993.0, "9007199254740992"),
            (2251799813685248.5, "2251799813685248.5"),
            (123456789.125, "123456789.125"),
            (18446744073709550000.0, "18446744073709550000"),
        ] {
            assert_eq!(ecmascript_digits(n), js, "{n:e}");
        }
    }

    /// Doubles of every size [`ecmascript_digits`] takes, and as many
    /// that lie exactly halfway between two shortest decimals (the ties
    /// ECMAScript breaks to even): a whole number of 31 to 52 bits plus a
    /// fraction of one to eight bits (one in twenty is a tie that Rust's
    /// `{:e}` breaks the other way).
    fn reference_range() -> impl Strategy<Value = f64> {
        let any_size = ((1u64 << 52)..(1u64 << 53), 0u32..53, -30i32..=16).prop_map(
            |(significand, zeros, e)| (significand >> zeros << zeros) as f64 * 2f64.powi(e),
        );
        let near_ties = (1u32..=8)
            .prop_flat_map(|bits| {
                (
                    (1u64 << 30)..(1u64 << (53 - bits)),
                    0..(1u64 << (bits - 1)),
                    Just(bits),
                )
            })
            .prop_map(|(whole, half, bits)| {
                whole as f64 + (2 * half + 1) as f64 / (1u64 << bits) as f64
            });
        prop_oneof![any_size, near_ties]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn numbers_print_with_ecmascripts_digits(n in reference_range()) {
            let expected = ecmascript_digits(n);
            prop_assert_eq!(js_number(n), Some(expected.clone()));
            prop_assert_eq!(js_number(-n), Some(format!("-{expected}")));
        }
    }
}
