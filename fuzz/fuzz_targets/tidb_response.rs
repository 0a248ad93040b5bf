//! Arbitrary answers from TiDB Cloud's SQL API (status, session header,
//! and a body that is the API's JSON result shape with fuzzed column types
//! and cells, or raw bytes): the driver answers with a result or an
//! error, never panics; a failure status is always an error; an answer
//! without a session is refused; and a result it accepts keeps every row
//! and column, with a cell that is null exactly when the wire cell is,
//! text columns as sent and integer columns as the numbers they spell.
#![no_main]

use std::sync::Mutex;
use std::time::Duration;

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use outbound::{BoxFuture, Bytes, Fetch, FetchError, Request, Response};
use serde::Deserialize;
use serde_json::json;
use tidb_http::testing::DECODED_TYPE_NAMES;
use tidb_http::{Cell, Client, Config};

/// The answer the gateway gives, whatever it is asked.
struct Answer(Mutex<Option<Response>>);

impl Fetch for Answer {
    fn fetch(&self, _: Request, _: Duration) -> BoxFuture<'_, Result<Response, FetchError>> {
        let response = self
            .0
            .lock()
            .unwrap()
            .take()
            .expect("one request per input");
        Box::pin(async move { Ok(response) })
    }
}

/// Type names the SQL API sends, and anything else.
#[derive(Arbitrary, Debug, Clone)]
enum TypeName {
    Known(u8),
    Other(String),
}

/// Type names the decoder reads as text: the API's text columns among
/// them, and names close to the ones it decodes.
const TEXT_TYPE_NAMES: &[&str] = &["CHAR", "VARCHAR", "TEXT", "ENUM", "SET", "TIME"];

impl TypeName {
    fn text(&self) -> String {
        match self {
            TypeName::Known(i) => {
                // Every name the decoder tells apart, then text ones.
                let i = usize::from(*i) % (DECODED_TYPE_NAMES.len() + TEXT_TYPE_NAMES.len());
                match DECODED_TYPE_NAMES.get(i) {
                    Some(name) => name,
                    None => TEXT_TYPE_NAMES[i - DECODED_TYPE_NAMES.len()],
                }
                .to_string()
            }
            TypeName::Other(name) => name.clone(),
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    status: u16,
    session: bool,
    /// The body as sent, instead of the structured result below; a slice,
    /// whose bytes are the input's own in a row, where a `Vec` would put a
    /// continuation byte before each (arbitrary 1.5).
    raw_body: Option<&'a [u8]>,
    /// Column name (an index into `a`..`e`), type, nullable.
    columns: Vec<(u8, TypeName, bool)>,
    rows: Vec<Vec<Option<String>>>,
    rows_affected: Option<u64>,
    last_insert_id: Option<String>,
}

/// A row shape the API's own queries use: optional scalars by name.
#[derive(Debug, Deserialize)]
#[allow(dead_code)] // read by the deserializer only
struct Typed {
    a: Option<i64>,
    b: Option<String>,
    c: Option<f64>,
    d: Option<bool>,
    e: Option<u32>,
}

const PASSWORD: &str = "pw-7f3a9c";

fn status(code: u16) -> u16 {
    match code % 8 {
        0..=3 => 200,
        4 => 400,
        5 => 500,
        _ => 100 + code % 500,
    }
}

fuzz_target!(|input: Input<'_>| {
    let columns: Vec<(String, String, bool)> = input
        .columns
        .iter()
        .take(6)
        .map(|(name, type_name, nullable)| {
            let name = ["a", "b", "c", "d", "e"][usize::from(*name) % 5].to_owned();
            (name, type_name.text(), *nullable)
        })
        .collect();
    let rows: Vec<Vec<Option<String>>> = input.rows.iter().take(8).cloned().collect();
    let body = match &input.raw_body {
        Some(raw) => raw.to_vec(),
        None => {
            let types: Vec<_> = columns
                .iter()
                .map(|(name, type_name, nullable)| json!({"name": name, "type": type_name, "nullable": nullable}))
                .collect();
            json!({
                "types": types,
                "rows": rows,
                "rowsAffected": input.rows_affected,
                "sLastInsertID": input.last_insert_id,
            })
            .to_string()
            .into_bytes()
        }
    };
    let status = status(input.status);
    let mut response = http::Response::builder().status(status);
    if input.session {
        response = response.header("TiDB-Session", "session-1");
    }
    let body_sent = body.clone();
    let response = response.body(Bytes::from(body)).expect("a response");
    let client = Client::new(
        Config::new("gateway01.example.com", "user", PASSWORD),
        std::sync::Arc::new(Answer(Mutex::new(Some(response)))),
    );
    let result = fuzz::block_on(client.execute("SELECT 1"));
    let result = match result {
        Err(e) => {
            // Only the server's own words may come back, never the
            // credentials (unless the server sent them itself).
            let shown = format!("{e} {e:?}");
            let echoed = String::from_utf8_lossy(&body_sent).contains(PASSWORD);
            assert!(echoed || !shown.contains(PASSWORD), "{shown}");
            return;
        }
        Ok(result) => result,
    };
    assert!(
        (200..300).contains(&status),
        "status {status} gave a result"
    );
    assert!(input.session, "an answer without a session gave a result");
    if input.raw_body.is_some() {
        let _ = result.deserialize::<Typed>();
        return;
    }
    assert_eq!(result.rows().len(), rows.len(), "rows lost or added");
    for (row, wire) in result.rows().iter().zip(&rows) {
        assert_eq!(row.cells().len(), columns.len(), "cells lost or added");
        assert_eq!(
            wire.len(),
            columns.len(),
            "a row of the wrong width was accepted"
        );
        for ((cell, wire), (_, type_name, _)) in row.cells().iter().zip(wire).zip(&columns) {
            match wire {
                None => assert_eq!(cell, &Cell::Null),
                Some(text) => match (type_name.as_str(), cell) {
                    (_, Cell::Null) => panic!("{text:?} decoded as null"),
                    ("CHAR" | "VARCHAR" | "TEXT", Cell::Text(decoded)) => {
                        assert_eq!(decoded, text)
                    }
                    ("CHAR" | "VARCHAR" | "TEXT", other) => {
                        panic!("text {text:?} decoded as {other:?}")
                    }
                    ("INT" | "BIGINT", Cell::Int(n)) => {
                        assert_eq!(text.parse::<i64>().ok(), Some(*n), "{text:?}")
                    }
                    ("INT" | "BIGINT", other) => panic!("{text:?} decoded as {other:?}"),
                    _ => {}
                },
            }
        }
    }
    let _ = result.deserialize::<Typed>();
});
