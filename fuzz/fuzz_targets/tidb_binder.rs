//! Arbitrary values bound into a statement, positionally or by name: the
//! SQL sent has each value as exactly one literal that MySQL's lexing
//! rules (`tidb_http::testing::check_literals`, written independently of
//! the binder) read back as the value, so nothing in a value can end its
//! literal, start a comment or become a placeholder. A list is its items'
//! literals joined by `, `; a date or datetime is one string literal that
//! MySQL reads as the same day and time to the microsecond. Values SQL has
//! no literal for (NaN, infinities, an empty list at any depth) refuse the
//! statement, which is never sent.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use tidb_http::testing::{calendar_date, check_literals, select_of, unbindable};
use tidb_http::{Date, DateTime, Value};

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
    /// Year, month and day, folded into a calendar date (see [`date`]), or, as
    /// `YYYY-MM-DD` text, one of MySQL's zero dates (zero parts, a day past
    /// its month) that the driver reads from a server and may send back.
    Date(u16, u8, u8, bool),
    /// A date as above and hour, minute, second, microseconds, folded into
    /// their ranges.
    DateTime((u16, u8, u8, bool), u8, u8, u8, u32),
    /// Items joined by `, ` (empty: refused).
    List(Vec<FuzzValue>),
}

/// The date `year`, `month`, `day` stand for: a calendar date, or with
/// `zero` the text MySQL would hold them as with zero parts allowed.
fn date(year: u16, month: u8, day: u8, zero: bool) -> Date {
    if zero {
        let text = format!("{:04}-{:02}-{:02}", year % 10_000, month % 13, day % 32);
        return text.parse().expect("zero parts are a MySQL date");
    }
    calendar_date(1 + year % 9999, 1 + month % 12, 1 + day % 31)
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
            FuzzValue::Date(y, m, d, zero) => Value::Date(date(*y, *m, *d, *zero)),
            FuzzValue::DateTime((y, m, d, zero), hour, minute, second, micros) => Value::DateTime(
                DateTime::new(date(*y, *m, *d, *zero), hour % 24, minute % 60, second % 60)
                    .and_then(|t| t.with_micros(micros % 1_000_000))
                    .expect("folded into range"),
            ),
            FuzzValue::List(items) => Value::List(items.iter().take(8).map(Value::from).collect()),
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
    let statement = select_of(&values, input.named);
    let unprintable = values.iter().any(unbindable);
    match (statement.to_sql(), unprintable) {
        (Ok(sql), false) => {
            if let Err(broken) = check_literals(&sql, "SELECT ", ", ", &values) {
                panic!("{broken}");
            }
        }
        (Err(_), true) => {}
        (Ok(sql), true) => panic!("a value with no literal was sent: {sql:?}"),
        (Err(e), false) => panic!("printable values were refused: {e}"),
    }
});
