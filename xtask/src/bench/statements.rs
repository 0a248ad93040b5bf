//! `--trace-statements`: the TiDB gateway's record of every statement
//! (`StatementRecord`, one JSON line each) matched to the loads that sent
//! them, to see where a transaction's time goes. Between two statements of
//! a transaction the gateway waits on the Worker: the time from one answer
//! to the next statement is the Worker's turnaround (its code, its isolate
//! busy with other requests, the loopback). The rest is the gateway and
//! the database, and for a locking read the wait for the lock. A page
//! write's row stays locked from its `SELECT ... FOR UPDATE`'s answer to
//! its `COMMIT`'s: with every connection writing one page, that hold is
//! what the case's requests a second are bound by (BENCHMARKS.md,
//! seventeenth and eighteenth passes). Each hold is split into the
//! Worker's turnarounds inside it and the gateway's statements, since two
//! Workers with the same turnarounds per write can still differ in how
//! many of them fall inside the hold (twenty-eighth pass).

use std::collections::BTreeMap;
use std::io::BufRead as _;
use std::path::Path;

use anyhow::Context as _;
use serde::Serialize;
use stack_manifest::StatementRecord;

use super::{median, Target};

/// The statement that takes the row locks a hold is timed from.
const LOCKING_READ: &str = "SELECT FOR UPDATE";

/// One load of a case on a target: what it sent is what the gateway
/// received between `from_us` and `to_us`.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub case: &'static str,
    pub target: Target,
    pub from_us: u64,
    pub to_us: u64,
}

/// One kind of statement of one case on one target, over its loads.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StatementFigures {
    pub case: &'static str,
    pub target: Target,
    /// `BEGIN`, `SELECT FOR UPDATE`, `COMMIT`, ...
    pub statement: String,
    pub count: usize,
    /// Median time at the gateway, from the whole request to the answer
    /// ready (for a locking read, with its wait for the lock).
    pub served_us: f64,
    /// Median time from the answer to the statement before it in its
    /// transaction to its arrival: the Worker's turnaround. None for a
    /// statement that opens a transaction or runs on its own.
    pub before_us: Option<f64>,
}

/// How long one case's transactions on one target held the row their
/// locking read took.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LockFigures {
    pub case: &'static str,
    pub target: Target,
    /// Transactions with a locking read that ended (`COMMIT`, `ROLLBACK`)
    /// within the load.
    pub transactions: usize,
    /// Median from the locking read's answer to the end's answer.
    pub held_us: f64,
    /// Median of each hold's time in the Worker: the sum of the
    /// turnarounds of the statements after the locking read. A hold is
    /// that and its time at the gateway, exactly; the two medians need
    /// not add up to `held_us`, the median of the sums. Where a Worker's
    /// turnarounds fall (inside the hold or before the lock) is what
    /// decides a busy page's rate when its CPU per write is level
    /// (BENCHMARKS.md, twenty-eighth pass).
    pub in_worker_us: f64,
    /// Median of each hold's time at the gateway: the sum of the served
    /// times of the statements after the locking read.
    pub at_gateway_us: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Summary {
    pub statements: Vec<StatementFigures>,
    pub locks: Vec<LockFigures>,
}

/// Reads the gateway's trace and summarises the records received during
/// one of `windows`; the rest (warm-ups, checks) are left out.
pub fn read(path: &Path, windows: &[Window]) -> anyhow::Result<Summary> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot read the statement trace {}", path.display()))?;
    let windows = sorted(windows);
    let mut records = Vec::new();
    for line in std::io::BufReader::new(file).lines() {
        let line = line?;
        // The gateway may be writing its last line as this reads. Records
        // of the warm-ups, most of the file, are not kept.
        match serde_json::from_str::<StatementRecord>(&line) {
            Ok(record) if window_of(&windows, record.received_us).is_some() => records.push(record),
            _ => {}
        }
    }
    Ok(summarise(records, &windows))
}

fn sorted(windows: &[Window]) -> Vec<Window> {
    let mut windows = windows.to_vec();
    windows.sort_by_key(|w| w.from_us);
    windows
}

/// The window (of `windows`, sorted and apart) that `at` falls in.
fn window_of(windows: &[Window], at: u64) -> Option<&Window> {
    let after = windows.partition_point(|w| w.from_us <= at);
    windows[..after].last().filter(|w| at < w.to_us)
}

/// One transaction's hold of its row, in its two parts. The statements
/// after the locking read follow one another, so the hold (the locking
/// read's answer to the last statement's) is exactly their turnarounds
/// and their times served.
#[derive(Default)]
struct Hold {
    /// The Worker's turnarounds before those statements.
    in_worker: u64,
    /// Their times at the gateway.
    at_gateway: u64,
}

impl Hold {
    fn held(&self) -> u64 {
        self.in_worker + self.at_gateway
    }
}

/// A statement's time at the gateway, from its request to its answer.
fn served(record: &StatementRecord) -> u64 {
    record.answered_us.saturating_sub(record.received_us)
}

/// Matches each record to the window it was received in and reduces each
/// window's case and target to medians.
pub fn summarise(mut records: Vec<StatementRecord>, windows: &[Window]) -> Summary {
    let windows = sorted(windows);
    records.sort_by_key(|r| r.received_us);
    // Per case and target, the statements of each session in order, and
    // those on their own; keyed by first appearance for a stable order.
    let mut order: Vec<(&'static str, Target)> = Vec::new();
    let mut sessions: BTreeMap<(usize, String), Vec<&StatementRecord>> = BTreeMap::new();
    let mut alone: BTreeMap<usize, Vec<&StatementRecord>> = BTreeMap::new();
    for record in &records {
        let Some(window) = window_of(&windows, record.received_us) else {
            continue;
        };
        let key = (window.case, window.target);
        let index = match order.iter().position(|k| *k == key) {
            Some(index) => index,
            None => {
                order.push(key);
                order.len() - 1
            }
        };
        match &record.session {
            Some(session) => sessions
                .entry((index, session.clone()))
                .or_default()
                .push(record),
            None => alone.entry(index).or_default().push(record),
        }
    }

    struct Samples {
        served: Vec<f64>,
        before: Vec<f64>,
        /// The sum of the statement's places in their transactions, for
        /// listing the kinds in the order a transaction sends them.
        places: f64,
    }
    // Per case and target: samples per statement kind, and lock holds.
    let mut samples: Vec<Vec<(String, Samples)>> = order.iter().map(|_| Vec::new()).collect();
    let mut holds: Vec<Vec<Hold>> = order.iter().map(|_| Vec::new()).collect();
    let mut add = |index: usize, record: &StatementRecord, place: f64, before: Option<u64>| {
        let kinds = &mut samples[index];
        let at = match kinds.iter().position(|(k, _)| *k == record.statement) {
            Some(at) => at,
            None => {
                kinds.push((
                    record.statement.clone(),
                    Samples {
                        served: Vec::new(),
                        before: Vec::new(),
                        places: 0.0,
                    },
                ));
                kinds.len() - 1
            }
        };
        let entry = &mut kinds[at].1;
        entry.places += place;
        entry.served.push(served(record) as f64);
        if let Some(before) = before {
            entry.before.push(before as f64);
        }
    };
    for ((index, _), statements) in &sessions {
        // A session's statements form transactions, each ended by its
        // COMMIT or ROLLBACK (a stateful session's may run on).
        let mut locked: Option<Hold> = None;
        let mut previous: Option<&StatementRecord> = None;
        let mut place = 0.0;
        for record in statements {
            let before = previous.map(|p| record.received_us.saturating_sub(p.answered_us));
            add(*index, record, place, before);
            place += 1.0;
            if let Some(hold) = locked.as_mut() {
                hold.in_worker += before.unwrap_or(0);
                hold.at_gateway += served(record);
            } else if record.statement == LOCKING_READ {
                locked = Some(Hold::default());
            }
            if matches!(record.statement.as_str(), "COMMIT" | "ROLLBACK") {
                if let Some(hold) = locked.take() {
                    holds[*index].push(hold);
                }
                previous = None;
                place = 0.0;
            } else {
                previous = Some(record);
            }
        }
    }
    // Statements on their own after those of transactions.
    const ALONE: f64 = 1e6;
    for (index, statements) in &alone {
        for record in statements {
            add(*index, record, ALONE, None);
        }
    }

    let mut summary = Summary::default();
    for (index, (case, target)) in order.into_iter().enumerate() {
        let mut kinds = std::mem::take(&mut samples[index]);
        let mean_place = |s: &Samples| s.places / s.served.len() as f64;
        kinds.sort_by(|a, b| mean_place(&a.1).total_cmp(&mean_place(&b.1)));
        for (statement, s) in kinds {
            summary.statements.push(StatementFigures {
                case,
                target,
                statement,
                count: s.served.len(),
                served_us: median(s.served),
                before_us: (!s.before.is_empty()).then(|| median(s.before)),
            });
        }
        let held = std::mem::take(&mut holds[index]);
        if !held.is_empty() {
            let of = |part: fn(&Hold) -> u64| median(held.iter().map(|h| part(h) as f64).collect());
            summary.locks.push(LockFigures {
                case,
                target,
                transactions: held.len(),
                held_us: of(Hold::held),
                in_worker_us: of(|h| h.in_worker),
                at_gateway_us: of(|h| h.at_gateway),
            });
        }
    }
    summary
}

/// The two tables, as `cargo xtask bench` prints them.
pub fn render(summary: &Summary) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    out.push_str(
        "\n  statements at the TiDB gateway (--trace-statements; us, medians): served is the \
         gateway's time, before the wait from the answer to the statement before it in its \
         transaction (the Worker's turnaround)\n",
    );
    let _ = writeln!(
        out,
        "  {:<34} {:<10} {:<18} {:>8} {:>9} {:>9}",
        "case", "target", "statement", "count", "served", "before"
    );
    for s in &summary.statements {
        let before = s
            .before_us
            .map_or_else(|| "-".to_owned(), |b| format!("{b:.0}"));
        let _ = writeln!(
            out,
            "  {:<34} {:<10} {:<18} {:>8} {:>9.0} {:>9}",
            s.case,
            s.target.name(),
            s.statement,
            s.count,
            s.served_us,
            before
        );
    }
    if !summary.locks.is_empty() {
        out.push_str(
            "\n  row locks held (us, medians): from the locking read's answer to the \
             transaction's end; of each hold, the Worker's turnarounds and the gateway's \
             statements after the locking read (medians of each part)\n",
        );
        let _ = writeln!(
            out,
            "  {:<34} {:<10} {:>12} {:>9} {:>10} {:>10}",
            "case", "target", "transactions", "held", "in Worker", "at gateway"
        );
        for l in &summary.locks {
            let _ = writeln!(
                out,
                "  {:<34} {:<10} {:>12} {:>9.0} {:>10.0} {:>10.0}",
                l.case,
                l.target.name(),
                l.transactions,
                l.held_us,
                l.in_worker_us,
                l.at_gateway_us
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(
        received_us: u64,
        answered_us: u64,
        session: Option<&str>,
        statement: &str,
    ) -> StatementRecord {
        StatementRecord {
            received_us,
            answered_us,
            session: session.map(str::to_owned),
            statement: statement.to_owned(),
        }
    }

    fn window(case: &'static str, target: Target, from_us: u64, to_us: u64) -> Window {
        Window {
            case,
            target,
            from_us,
            to_us,
        }
    }

    #[test]
    fn turnarounds_and_lock_holds_come_from_each_transactions_own_statements() {
        // Two page writes on the api interleaved, then one on the
        // reference; a read on its own; records outside every load.
        let records = vec![
            record(5, 6, Some("w"), "BEGIN"),
            record(100, 110, Some("a"), "BEGIN"),
            record(105, 112, Some("b"), "BEGIN"),
            record(130, 200, Some("a"), "SELECT FOR UPDATE"),
            record(140, 400, Some("b"), "SELECT FOR UPDATE"),
            record(250, 260, Some("a"), "UPDATE"),
            record(300, 320, Some("a"), "COMMIT"),
            record(500, 510, Some("b"), "UPDATE"),
            record(530, 550, Some("b"), "ROLLBACK"),
            record(600, 604, None, "SELECT"),
            record(800, 801, None, "SELECT"),
            record(1000, 1010, Some("c"), "BEGIN"),
            record(1020, 1030, Some("c"), "SELECT FOR UPDATE"),
            record(1100, 1120, Some("c"), "COMMIT"),
            record(5000, 5001, None, "SELECT"),
        ];
        // In any order.
        let windows = [
            window("pages-put", Target::Reference, 900, 1200),
            window("pages-put", Target::Api, 50, 700),
        ];
        let summary = summarise(records, &windows);
        let api: Vec<(&str, usize, f64, Option<f64>)> = summary
            .statements
            .iter()
            .filter(|s| s.target == Target::Api)
            .map(|s| (s.statement.as_str(), s.count, s.served_us, s.before_us))
            .collect();
        // Medians of two are their mean; `before` of a SELECT FOR UPDATE
        // is from its own BEGIN's answer (130-110, 140-112).
        assert_eq!(
            api,
            [
                ("BEGIN", 2, 8.5, None),
                ("SELECT FOR UPDATE", 2, 165.0, Some(24.0)),
                ("UPDATE", 2, 10.0, Some(75.0)),
                ("COMMIT", 1, 20.0, Some(40.0)),
                ("ROLLBACK", 1, 20.0, Some(20.0)),
                ("SELECT", 1, 4.0, None),
            ]
        );
        assert_eq!(
            summary.locks,
            [
                // a: 320 - 200 = (250 - 200) + (300 - 260) in the Worker
                // and 10 + 20 at the gateway; b: 550 - 400 = (500 - 400)
                // + (530 - 510) and 10 + 20.
                LockFigures {
                    case: "pages-put",
                    target: Target::Api,
                    transactions: 2,
                    held_us: 135.0,
                    in_worker_us: 105.0,
                    at_gateway_us: 30.0,
                },
                // c: 1120 - 1030 = (1100 - 1030) + 20.
                LockFigures {
                    case: "pages-put",
                    target: Target::Reference,
                    transactions: 1,
                    held_us: 90.0,
                    in_worker_us: 70.0,
                    at_gateway_us: 20.0,
                },
            ]
        );
        let reference_select = summary
            .statements
            .iter()
            .find(|s| s.target == Target::Reference && s.statement == LOCKING_READ)
            .unwrap();
        assert_eq!(reference_select.before_us, Some(10.0));
        assert!(
            !summary
                .statements
                .iter()
                .any(|s| s.target == Target::Reference && s.statement == "SELECT"),
            "a statement between two loads belongs to neither"
        );
        let text = render(&summary);
        assert!(text.contains("SELECT FOR UPDATE"), "{text}");
        assert!(text.contains("in Worker"), "{text}");
    }

    #[test]
    fn a_session_reused_after_its_end_starts_a_new_transaction() {
        // A stateful session: statements after a COMMIT are not timed from
        // it, and a hold needs a locking read of its own.
        let records = vec![
            record(10, 20, Some("s"), "SELECT FOR UPDATE"),
            record(30, 40, Some("s"), "COMMIT"),
            record(100, 110, Some("s"), "UPDATE"),
            record(130, 150, Some("s"), "COMMIT"),
        ];
        let summary = summarise(records, &[window("x", Target::Api, 0, 1000)]);
        let update = summary
            .statements
            .iter()
            .find(|s| s.statement == "UPDATE")
            .unwrap();
        assert_eq!(update.before_us, None);
        let commit = summary
            .statements
            .iter()
            .find(|s| s.statement == "COMMIT")
            .unwrap();
        assert_eq!((commit.count, commit.before_us), (2, Some(15.0)));
        assert_eq!(summary.locks.len(), 1);
        let hold = &summary.locks[0];
        // 40 - 20: the COMMIT's turnaround (30 - 20) and its time served.
        assert_eq!(
            (hold.held_us, hold.in_worker_us, hold.at_gateway_us),
            (20.0, 10.0, 10.0)
        );
    }
}
