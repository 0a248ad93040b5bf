//! `--trace-statements FILE`: one [`StatementRecord`] per statement, a JSON
//! line each, saying when it came and when its answer was ready. The gaps
//! between a transaction's statements are the client's (its Worker's
//! turnaround), the rest the database's; `cargo xtask bench
//! --trace-statements` reads them to compare two Workers' transactions
//! statement by statement (BENCHMARKS.md, eighteenth pass). Only what no
//! log may hold is left out: the statement's text and values, and the
//! session token, which a client could replay.

use std::fs::File;
use std::io::{self, LineWriter, Write as _};
use std::path::Path;
use std::sync::Mutex;

use sha1::{Digest as _, Sha1};
use stack_manifest::StatementRecord;

use crate::session;

/// Where the records go: a file, a line written through per statement so
/// a reader sees every statement answered so far.
#[derive(Debug)]
pub struct StatementTrace {
    out: Mutex<LineWriter<File>>,
}

impl StatementTrace {
    /// Creates (or empties) `path`.
    pub fn create(path: &Path) -> io::Result<StatementTrace> {
        Ok(StatementTrace {
            out: Mutex::new(LineWriter::new(File::create(path)?)),
        })
    }

    /// Records one statement: its [`kind`], its request's session header
    /// and the session its answer carried.
    pub(crate) fn record(
        &self,
        received_us: u64,
        statement: String,
        session_in: &str,
        session_out: &str,
    ) {
        let session = [session_in, session_out]
            .into_iter()
            .find(|token| session::is_held(token))
            .map(session_id);
        let record = StatementRecord {
            received_us,
            answered_us: StatementRecord::clock_us(),
            session,
            statement,
        };
        let mut line = serde_json::to_vec(&record).expect("a record serializes");
        line.push(b'\n');
        // A trace that cannot be written (a full disk) must not fail the
        // statement it describes.
        let _ = self
            .out
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .write_all(&line);
    }
}

/// The statement's first keyword in capitals, or `SELECT FOR UPDATE` for a
/// `SELECT` that ends in a `FOR UPDATE` clause (the read that takes row
/// locks; with `NOWAIT`, `WAIT n` or `SKIP LOCKED` after it); empty for a
/// query without a word.
pub(crate) fn kind(query: &str) -> String {
    let words: Vec<&str> = query
        .split(|c: char| !c.is_ascii_alphabetic())
        .filter(|w| !w.is_empty())
        .collect();
    let Some(first) = words.first() else {
        return String::new();
    };
    let first = first.to_ascii_uppercase();
    let ends_with = |tail: &[&str]| {
        words.len() > tail.len()
            && words[words.len() - tail.len()..]
                .iter()
                .zip(tail)
                .all(|(w, t)| w.eq_ignore_ascii_case(t))
    };
    let locks = first == "SELECT"
        && [
            &["FOR", "UPDATE"][..],
            &["FOR", "UPDATE", "NOWAIT"],
            &["FOR", "UPDATE", "WAIT"],
            &["FOR", "UPDATE", "SKIP", "LOCKED"],
        ]
        .into_iter()
        .any(ends_with);
    if locks {
        "SELECT FOR UPDATE".to_owned()
    } else {
        first
    }
}

/// The [`kind`] of the query in a request body, or empty if the body is
/// not the API's JSON: for requests refused before their body was read.
pub(crate) fn kind_of_body(body: &[u8]) -> String {
    serde_json::from_slice::<crate::SqlRequest>(body)
        .map_or_else(|_| String::new(), |b| kind(&b.query))
}

/// A session named without its token: the first 8 bytes of its SHA-1.
fn session_id(token: &str) -> String {
    hex::encode(&Sha1::digest(token.as_bytes())[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_is_named_by_its_first_keyword_and_a_locking_read_as_such() {
        assert_eq!(kind("  begin"), "BEGIN");
        assert_eq!(kind("UPDATE pages SET title = 'for update'"), "UPDATE");
        assert_eq!(
            kind("SELECT id FROM pages WHERE slug = ?\n  for\tUPDATE"),
            "SELECT FOR UPDATE"
        );
        assert_eq!(kind("SELECT `for`, `update` FROM t"), "SELECT");
        assert_eq!(kind("select 1 for update wait 5;"), "SELECT FOR UPDATE");
        assert_eq!(kind("SELECT 1 FOR UPDATE SKIP LOCKED"), "SELECT FOR UPDATE");
        assert_eq!(kind("SELECT 1 LOCK IN SHARE MODE"), "SELECT");
        assert_eq!(kind("SELECT 1"), "SELECT");
        assert_eq!(kind("/* */ 42"), "");
    }

    #[test]
    fn records_name_the_held_session_by_a_hash_and_never_the_statement_text() {
        let dir = std::env::temp_dir().join(format!("gateway-trace-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("statements.jsonl");
        let trace = StatementTrace::create(&path).unwrap();
        let held = "h0123456789abcdef0123456789abcdef";
        let record = |at, query, session_in, session_out| {
            trace.record(at, kind(query), session_in, session_out)
        };
        // Opening: no session in, the held one out.
        record(10, "BEGIN", "", held);
        // In the transaction, with a value in the text.
        record(
            20,
            "SELECT secret FROM t WHERE v = 'hunter2' FOR UPDATE",
            held,
            held,
        );
        // Ending it: the answer carries a stateless token.
        record(30, "COMMIT", held, "s42");
        // On its own.
        record(40, "SELECT 1", "s42", "s43");
        record(50, "", "", "s44");
        drop(trace);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(!text.contains("hunter2") && !text.contains("secret"));
        assert!(!text.contains(held), "the token itself is never written");
        let records: Vec<StatementRecord> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let kinds: Vec<&str> = records.iter().map(|r| r.statement.as_str()).collect();
        assert_eq!(
            kinds,
            ["BEGIN", "SELECT FOR UPDATE", "COMMIT", "SELECT", ""]
        );
        let id = Some(session_id(held));
        assert_eq!(id.as_ref().unwrap().len(), 16);
        for record in &records[..3] {
            assert_eq!(record.session, id, "{record:?}");
        }
        assert_eq!(records[3].session, None);
        assert_eq!(records[4].session, None);
        assert_eq!(
            records.iter().map(|r| r.received_us).collect::<Vec<_>>(),
            [10, 20, 30, 40, 50]
        );
        assert!(records.iter().all(|r| r.answered_us >= r.received_us));
    }
}
