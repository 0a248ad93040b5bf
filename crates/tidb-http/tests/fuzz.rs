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
use tidb_http::testing::{check_literals, literal, select_of, Lit};
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

/// What the driver does with `statement`: the SQL text it sent, or its
/// error when it sent nothing.
fn send(statement: Statement) -> Result<String, tidb_http::Error> {
    let capture = Arc::new(Capture::default());
    let client = Client::new(
        Config::new("gateway01.example.com", "u", "p"),
        capture.clone(),
    );
    let outcome = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(client.execute(statement));
    let mut sql = capture.sql.lock().unwrap();
    match outcome {
        Ok(_) => {
            assert_eq!(sql.len(), 1);
            Ok(sql.pop().unwrap())
        }
        Err(e) => {
            assert_eq!(
                *sql,
                Vec::<String>::new(),
                "a refused statement is not sent"
            );
            Err(e)
        }
    }
}

/// The SQL text the driver sends for `statement`, which it must send.
fn sent_sql(statement: Statement) -> String {
    send(statement).unwrap()
}

fn text() -> impl Strategy<Value = String> {
    tidb_http::testing::sql_text(24)
}

/// A value that is not a list.
fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        2 => any::<i64>().prop_map(Value::Int),
        1 => any::<u64>().prop_map(Value::UInt),
        3 => tidb_http::testing::finite_f64().prop_map(Value::Float),
        6 => text().prop_map(Value::Text),
        2 => prop::collection::vec(any::<u8>(), 0..32).prop_map(Value::Bytes),
        1 => tidb_http::testing::json_document(24).prop_map(Value::Json),
        1 => tidb_http::testing::date(1..=9999).prop_map(Value::Date),
        2 => tidb_http::testing::datetime(1..=9999).prop_map(Value::DateTime),
    ]
}

/// Any value the driver binds: a scalar, or a non-empty list of values
/// (lists nested, as `IN (?)` flattens them).
fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(2, 16, 4, |inner| {
        prop::collection::vec(inner, 1..5).prop_map(Value::List)
    })
}

/// A value the driver must refuse: NaN, an infinity, or an empty list,
/// alone or anywhere inside a list.
fn refused_value() -> impl Strategy<Value = Value> {
    let refused = prop_oneof![
        Just(Value::Float(f64::NAN)),
        Just(Value::Float(f64::INFINITY)),
        Just(Value::Float(f64::NEG_INFINITY)),
        Just(Value::List(vec![])),
    ];
    (
        refused,
        prop::collection::vec(value(), 0..3),
        any::<prop::sample::Index>(),
        any::<bool>(),
    )
        .prop_map(|(refused, mut others, at, nested)| {
            if !nested {
                return refused;
            }
            let at = at.index(others.len() + 1);
            others.insert(at, refused);
            Value::List(others)
        })
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
        let sql = sent_sql(select_of(&values, false));
        prop_assert_eq!(check_literals(&sql, "SELECT ", ", ", &values), Ok(()));
    }

    #[test]
    fn fuzz_named_values_are_one_literal_each(values in prop::collection::vec(value(), 1..6)) {
        let sql = sent_sql(select_of(&values, true));
        prop_assert_eq!(check_literals(&sql, "SELECT ", ", ", &values), Ok(()));
    }

    /// A statement with a value SQL has no literal for is refused as a
    /// whole, wherever the value is among the others, and nothing is sent.
    #[test]
    fn fuzz_an_unbindable_value_refuses_the_statement(
        mut values in prop::collection::vec(value(), 0..4),
        refused in refused_value(),
        at in any::<prop::sample::Index>(),
        named in any::<bool>(),
    ) {
        prop_assert!(tidb_http::testing::unbindable(&refused));
        values.insert(at.index(values.len() + 1), refused);
        let refusal = send(select_of(&values, named)).unwrap_err().to_string();
        prop_assert!(
            refusal.contains("no SQL literal") || refusal.contains("empty list"),
            "{}", refusal
        );
    }
}

/// The calendar reader is what the date properties trust: it reads MySQL's
/// forms and nothing near them.
#[test]
fn the_test_reader_reads_mysql_dates_and_times() {
    use tidb_http::testing::calendar_text;
    assert_eq!(calendar_text("2024-02-29"), Some((2024, 2, 29, 0, 0, 0, 0)));
    assert_eq!(
        calendar_text("0999-12-31T23:59:58.5"),
        Some((999, 12, 31, 23, 59, 58, 500_000))
    );
    assert_eq!(
        calendar_text("2024-01-02 03:04:05.000006"),
        Some((2024, 1, 2, 3, 4, 5, 6))
    );
    for broken in [
        "2024-1-02",
        "2024-01-02x",
        "2024-01-02 03:04",
        "2024-01-02 03:04:05.",
        "2024-01-02 03:04:05.1234567",
        "2024-01-02 03:04:05Z",
        "2024/01/02",
    ] {
        assert_eq!(calendar_text(broken), None, "{broken}");
    }
}

/// A datetime is sent as one quoted literal with its fraction: three digits
/// for whole milliseconds, six for more, and a reader that compares the
/// parts tells a second off from the value.
#[test]
fn a_datetime_is_one_literal_to_the_microsecond() {
    let day = tidb_http::Date::new(2024, 2, 29).unwrap();
    let at = tidb_http::DateTime::new(day, 23, 59, 59).unwrap();
    for (micros, text) in [
        (0, "'2024-02-29T23:59:59.000'"),
        (7_000, "'2024-02-29T23:59:59.007'"),
        (7, "'2024-02-29T23:59:59.000007'"),
    ] {
        let value = Value::DateTime(at.with_micros(micros).unwrap());
        let sql = sent_sql(Statement::new("SELECT ? FROM dual").bind(value.clone()));
        assert_eq!(sql, format!("SELECT {text} FROM dual"));
        assert_eq!(check_literals(&sql, "SELECT ", ", ", &[value]), Ok(()));
    }
    let sql = sent_sql(Statement::new("SELECT ? FROM dual").bind(at));
    let second_before = tidb_http::DateTime::new(day, 23, 59, 58).unwrap();
    assert!(check_literals(&sql, "SELECT ", ", ", &[second_before.into()]).is_err());
    assert!(check_literals(&sql, "SELECT ", ", ", &[day.into()]).is_err());
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

/// The date strategy reaches every day of the month (it once folded days
/// 2 to 27 onto the 1st).
#[test]
fn the_date_strategy_reaches_every_day_of_the_month() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let strategy = tidb_http::testing::date(1..=9999);
    let mut runner = TestRunner::deterministic();
    let days: std::collections::BTreeSet<u8> = (0..2000)
        .map(|_| strategy.new_tree(&mut runner).unwrap().current().day())
        .collect();
    assert_eq!(days, (1..=31).collect());
}
