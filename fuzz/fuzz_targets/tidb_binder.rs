//! Arbitrary values bound into a statement, positionally or by name: the
//! SQL sent has each value as exactly one literal that MySQL's lexing
//! rules (`tidb_http::testing::check_literals`, written independently of
//! the binder) read back as the value, so nothing in a value can end its
//! literal, start a comment or become a placeholder; and values SQL has
//! no literal for (NaN, infinities) are refused, never sent.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use tidb_http::testing::check_literals;
use tidb_http::{Statement, Value};

#[derive(Arbitrary, Debug)]
enum FuzzValue {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Text(String),
    Bytes(Vec<u8>),
    /// JSON text, bound as the document it parses to (else as a string).
    Json(String),
}

impl From<&FuzzValue> for Value {
    fn from(value: &FuzzValue) -> Value {
        match value {
            FuzzValue::Null => Value::Null,
            FuzzValue::Bool(b) => Value::Bool(*b),
            FuzzValue::Int(i) => Value::Int(*i),
            FuzzValue::UInt(u) => Value::UInt(*u),
            FuzzValue::Float(f) => Value::Float(*f),
            FuzzValue::Text(s) => Value::Text(s.clone()),
            FuzzValue::Bytes(b) => Value::Bytes(b.clone()),
            FuzzValue::Json(text) => Value::Json(
                serde_json::from_str(text)
                    .unwrap_or_else(|_| serde_json::Value::from(text.as_str())),
            ),
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Input {
    named: bool,
    values: Vec<FuzzValue>,
}

fuzz_target!(|input: Input| {
    let values: Vec<Value> = input.values.iter().take(8).map(Value::from).collect();
    if values.is_empty() {
        return;
    }
    let statement = if input.named {
        let names: Vec<String> = (0..values.len()).map(|i| format!(":p{i}")).collect();
        let mut statement = Statement::new(format!("SELECT {} FROM dual", names.join(", ")));
        for (i, value) in values.iter().enumerate().rev() {
            statement = statement.bind_named(format!("p{i}"), value.clone());
        }
        statement
    } else {
        let placeholders = vec!["?"; values.len()].join(", ");
        let mut statement = Statement::new(format!("SELECT {placeholders} FROM dual"));
        for value in &values {
            statement = statement.bind(value.clone());
        }
        statement
    };
    let unprintable = values
        .iter()
        .any(|v| matches!(v, Value::Float(f) if !f.is_finite()));
    match (statement.to_sql(), unprintable) {
        (Ok(sql), false) => {
            if let Err(broken) = check_literals(&sql, "SELECT ", ", ", &values) {
                panic!("{broken}");
            }
        }
        (Err(_), true) => {}
        (Ok(sql), true) => panic!("a non-finite float was sent: {sql:?}"),
        (Err(e), false) => panic!("printable values were refused: {e}"),
    }
});
