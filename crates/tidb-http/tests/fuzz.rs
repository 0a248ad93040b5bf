//! Property tests ("fuzzing") of client-side parameter binding: for
//! arbitrary values, the SQL the driver sends has each bound value as
//! exactly one literal, which a MySQL lexer (`tidb_http::testing`'s,
//! written from MySQL's documented string, hex and number rules,
//! independently of the driver, and shared with the coverage-guided
//! target in `fuzz/`) reads back as the original value. Nothing in a value
//! can end its literal early, start a comment, or be taken as another
//! placeholder.
//!
//! The round trip through the gateway into MariaDB is `e2e/tests/fuzz_binder.rs`.
//! Run long with `PROPTEST_CASES=100000 cargo test -p tidb-http --test fuzz --release`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use outbound::{BoxFuture, Bytes, Fetch, FetchError, Request, Response};
use proptest::prelude::*;
use tidb_http::testing::{check_literals, literal, Lit};
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn fuzz_one_positional_value_is_one_literal(value in value()) {
        let sql = sent_sql(Statement::new("SELECT ? FROM dual").bind(value.clone()));
        prop_assert_eq!(check_literals(&sql, "SELECT ", ", ", &[value]), Ok(()));
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
        prop_assert_eq!(check_literals(&sent_sql(statement), "SELECT ", ", ", &values), Ok(()));
    }

    #[test]
    fn fuzz_named_values_are_one_literal_each(values in prop::collection::vec(value(), 1..6)) {
        let names: Vec<String> = (0..values.len()).map(|i| format!(":p{i}")).collect();
        let mut statement = Statement::new(format!("SELECT {} FROM dual", names.join(", ")));
        // Bound in reverse: order of binding does not matter for names.
        for (i, v) in values.iter().enumerate().rev() {
            statement = statement.bind_named(format!("p{i}"), v.clone());
        }
        prop_assert_eq!(check_literals(&sent_sql(statement), "SELECT ", ", ", &values), Ok(()));
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

/// A double that serde_json (without `float_roundtrip`) does not read back
/// from its own digits is still sent as its document's text (found by the
/// `tidb_binder` fuzz target, whose reader had compared documents read
/// back with serde_json).
#[test]
fn a_json_double_is_sent_as_its_documents_text() {
    let document: serde_json::Value =
        serde_json::from_str("77777777777777777777777777777777777777777").unwrap();
    let value = Value::Json(document.clone());
    let sql = sent_sql(Statement::new("SELECT ? FROM dual").bind(value.clone()));
    assert_eq!(sql, format!("SELECT '{document}' FROM dual"));
    assert_eq!(check_literals(&sql, "SELECT ", ", ", &[value]), Ok(()));
    // One step away is another value.
    let next = f64::from_bits(document.as_f64().unwrap().to_bits() + 1);
    let other = Value::Json(serde_json::json!(next));
    assert!(check_literals(&sql, "SELECT ", ", ", &[other]).is_err());
}
