//! Property tests ("fuzzing") of client-side parameter binding: for
//! arbitrary values, the SQL the driver sends has each bound value as
//! exactly one literal, which a MySQL lexer (written here from MySQL's
//! documented string, hex and number rules, independently of the driver)
//! reads back as the original value. Nothing in a value can end its
//! literal early, start a comment, or be taken as another placeholder.
//!
//! The round trip through the gateway into MariaDB is `e2e/tests/fuzz_binder.rs`.
//! Run long with `PROPTEST_CASES=100000 cargo test -p tidb-http --test fuzz --release`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use outbound::{BoxFuture, Bytes, Fetch, FetchError, Request, Response};
use proptest::prelude::*;
use tidb_http::{Client, Config, Statement, Value};

/// Records the SQL of each request and answers like an `INSERT` does.
#[derive(Default)]
struct Capture {
    sql: Mutex<Vec<String>>,
}

impl Fetch for Capture {
    fn fetch(
        &self,
        request: Request,
        _timeout: Duration,
    ) -> BoxFuture<'_, Result<Response, FetchError>> {
        let body: serde_json::Value = serde_json::from_slice(request.body()).unwrap();
        self.sql
            .lock()
            .unwrap()
            .push(body["query"].as_str().unwrap().to_owned());
        let response = http::Response::builder()
            .header("TiDB-Session", "s")
            .body(Bytes::from_static(br#"{"rowsAffected":0}"#))
            .unwrap();
        Box::pin(async move { Ok(response) })
    }
}

/// The SQL text the driver sends for `statement`.
fn sent_sql(statement: Statement) -> String {
    let capture = Arc::new(Capture::default());
    let client = Client::new(
        Config::new("gateway01.example.com", "u", "p"),
        capture.clone(),
    );
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(client.execute(statement))
        .unwrap();
    let mut sql = capture.sql.lock().unwrap();
    assert_eq!(sql.len(), 1);
    sql.pop().unwrap()
}

/// A value as MySQL reads its literal back.
#[derive(Debug, Clone, PartialEq)]
enum Lit {
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
fn literal(sql: &str) -> Result<(Lit, &str), String> {
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
fn denotes(lit: &Lit, value: &Value) -> bool {
    match (lit, value) {
        (Lit::Null, Value::Null) => true,
        (Lit::Bool(a), Value::Bool(b)) => a == b,
        (Lit::Number(n), Value::Int(i)) => n.parse::<i64>() == Ok(*i),
        (Lit::Number(n), Value::UInt(u)) => n.parse::<u64>() == Ok(*u),
        // Exact: the shortest digits that round-trip (-0 prints as 0).
        (Lit::Number(n), Value::Float(f)) => n.parse::<f64>() == Ok(*f),
        (Lit::Text(t), Value::Text(s)) => t == s,
        (Lit::Text(t), Value::Json(j)) => {
            serde_json::from_str::<serde_json::Value>(t).ok().as_ref() == Some(j)
        }
        (Lit::Bytes(a), Value::Bytes(b)) => a == b,
        _ => false,
    }
}

fn text() -> impl Strategy<Value = String> {
    tidb_http::testing::sql_text(24)
}

fn json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        text().prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map(text(), inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        2 => any::<i64>().prop_map(Value::Int),
        1 => any::<u64>().prop_map(Value::UInt),
        3 => tidb_http::testing::finite_f64().prop_map(Value::Float),
        6 => text().prop_map(Value::Text),
        2 => prop::collection::vec(any::<u8>(), 0..32).prop_map(Value::Bytes),
        1 => json().prop_map(Value::Json),
    ]
}

/// Walks `sql` = `prefix` lit (`sep` lit)* `suffix`, checking each literal
/// against its value in order.
fn check_literals(
    sql: &str,
    prefix: &str,
    sep: &str,
    values: &[Value],
) -> Result<(), TestCaseError> {
    let mut rest = sql
        .strip_prefix(prefix)
        .ok_or_else(|| TestCaseError::fail(format!("prefix lost: {sql:?}")))?;
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            rest = rest
                .strip_prefix(sep)
                .ok_or_else(|| TestCaseError::fail(format!("separator {i} lost: {sql:?}")))?;
        }
        let (lit, after) =
            literal(rest).map_err(|e| TestCaseError::fail(format!("{e} in {sql:?}")))?;
        prop_assert!(
            denotes(&lit, value),
            "{value:?} was sent as {lit:?}: {sql:?}"
        );
        rest = after;
    }
    prop_assert_eq!(rest, " FROM dual", "trailing text in {:?}", sql);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn fuzz_one_positional_value_is_one_literal(value in value()) {
        let sql = sent_sql(Statement::new("SELECT ? FROM dual").bind(value.clone()));
        check_literals(&sql, "SELECT ", ", ", &[value])?;
    }

    /// Several values: placeholders and `:names` inside earlier values are
    /// never replaced (values are not scanned again).
    #[test]
    fn fuzz_positional_values_are_one_literal_each(values in prop::collection::vec(value(), 1..6)) {
        let placeholders = vec!["?"; values.len()].join(", ");
        let mut statement = Statement::new(format!("SELECT {placeholders} FROM dual"));
        for v in &values {
            statement = statement.bind(v.clone());
        }
        check_literals(&sent_sql(statement), "SELECT ", ", ", &values)?;
    }

    #[test]
    fn fuzz_named_values_are_one_literal_each(values in prop::collection::vec(value(), 1..6)) {
        let names: Vec<String> = (0..values.len()).map(|i| format!(":p{i}")).collect();
        let mut statement = Statement::new(format!("SELECT {} FROM dual", names.join(", ")));
        // Bound in reverse: order of binding does not matter for names.
        for (i, v) in values.iter().enumerate().rev() {
            statement = statement.bind_named(format!("p{i}"), v.clone());
        }
        check_literals(&sent_sql(statement), "SELECT ", ", ", &values)?;
    }
}

/// The lexer above is what the properties trust: it must tell a good
/// literal from a broken one.
#[test]
fn the_test_lexer_reads_mysql_literals() {
    assert_eq!(
        literal(r"'it\'s ''ok'' \Z\%' x").unwrap(),
        (Lit::Text("it's 'ok' \u{1a}\\%".into()), " x")
    );
    assert_eq!(literal("0x00ff,").unwrap(), (Lit::Bytes(vec![0, 255]), ","));
    assert_eq!(
        literal("-1.5e+3 ").unwrap(),
        (Lit::Number("-1.5e+3".into()), " ")
    );
    assert_eq!(literal("nullx").unwrap_err(), "no literal at \"nullx\"");
    assert!(literal(r"'abc\'").is_err());
    assert!(literal("0x1").is_err());
    // A quote left unescaped ends the literal early: the rest is SQL.
    assert_eq!(literal("'a'b'").unwrap(), (Lit::Text("a".into()), "b'"));
}
