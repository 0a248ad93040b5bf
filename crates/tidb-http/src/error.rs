//! The driver's one error type. Every error says which statement failed
//! (its text as written, with `?`/`:name` placeholders, never the bound
//! values) and why: the service's answer (HTTP status, code, message), a
//! transport failure, an unexpected response, or a row that does not fit
//! the type asked for. Nothing here ever holds the password.

use std::fmt;

use outbound::FetchError;

use crate::de::DecodeError;

/// Longest statement text shown by `Display` (the full text stays in
/// [`Error::statement`]).
const SHOWN_STATEMENT_CHARS: usize = 200;

/// A failed statement.
#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    statement: Option<String>,
    kind: ErrorKind,
}

/// Why a statement failed.
#[derive(Debug, Clone, PartialEq)]
pub enum ErrorKind {
    /// The SQL API answered with an error status.
    Database(DatabaseError),
    /// No response came back (timeout, connection failure).
    Transport(FetchError),
    /// A response came back but is not what the SQL API sends (not JSON,
    /// no `TiDB-Session` header).
    Protocol(String),
    /// A cell could not be decoded, or a row does not fit the type asked
    /// for.
    Decode(DecodeError),
    /// The parameters could not be bound into the SQL text.
    Bind(String),
    /// The request could not be built from the config (a header value
    /// that is not visible ASCII).
    Config(String),
    /// `query_one_as` found no row.
    NoRows,
}

/// The SQL API's error answer: `{"code": ..., "message": ...}` with an HTTP
/// status, as serverless-js's `DatabaseError` carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseError {
    pub status: u16,
    /// The `code` field: a MySQL/TiDB error number for SQL errors (such as
    /// 1062), the service's own number for its errors, or text.
    pub code: Option<ErrorCode>,
    pub message: String,
}

/// The `code` of an error body, which may be a JSON number or a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorCode {
    Number(i64),
    Text(String),
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorCode::Number(n) => write!(f, "{n}"),
            ErrorCode::Text(t) => f.write_str(t),
        }
    }
}

impl Error {
    pub(crate) fn new(statement: Option<&str>, kind: ErrorKind) -> Self {
        Error {
            statement: statement.map(str::to_owned),
            kind,
        }
    }

    pub(crate) fn decode(statement: &str, error: DecodeError) -> Self {
        Error::new(Some(statement), ErrorKind::Decode(error))
    }

    /// The failed statement as written (placeholders, not values).
    pub fn statement(&self) -> Option<&str> {
        self.statement.as_deref()
    }

    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The service's error answer, when there was one.
    pub fn database(&self) -> Option<&DatabaseError> {
        match &self.kind {
            ErrorKind::Database(e) => Some(e),
            _ => None,
        }
    }

    /// The MySQL error number (such as 1062 for a duplicate key), when the
    /// service reported one.
    pub fn mysql_errno(&self) -> Option<u16> {
        match self.database()?.code.as_ref()? {
            ErrorCode::Number(n) => u16::try_from(*n).ok(),
            ErrorCode::Text(t) => t.parse().ok(),
        }
    }

    /// A unique or primary key already had the value (MySQL error 1062).
    pub fn is_duplicate_entry(&self) -> bool {
        self.mysql_errno() == Some(1062)
    }

    /// A `COMMIT` that failed here but may have landed at the database:
    /// any that was sent. Without an answer (the connection failed, the
    /// timeout passed) it may have; and an error answer does not say it
    /// did not (the SQL API's own timeout answers while the statement runs
    /// on, and TiDB's catch-all 1105 says nothing either way). What must
    /// follow a commit (a cache invalidation) must follow this too: done
    /// for nothing, it costs little.
    pub fn may_have_committed(&self) -> bool {
        let commit = self
            .statement()
            .is_some_and(|sql| sql.trim().eq_ignore_ascii_case("COMMIT"));
        // Bound and built before anything is sent.
        let sent = !matches!(self.kind, ErrorKind::Bind(_) | ErrorKind::Config(_));
        commit && sent
    }

    /// No response within the statement's timeout.
    pub fn is_timeout(&self) -> bool {
        matches!(self.kind, ErrorKind::Transport(FetchError::Timeout(_)))
    }

    /// The database rolled the whole transaction back and may be asked to
    /// run it again from its start: a deadlock's victim, or one of the
    /// conflicts TiDB documents as safe to retry.
    pub fn is_retryable_transaction(&self) -> bool {
        self.mysql_errno()
            .is_some_and(|n| RETRYABLE_TRANSACTION.contains(&n))
    }

    /// The database cannot serve the statement now but may shortly: it is
    /// out of connections or of its quota, a part of the cluster is slow
    /// or busy, a lock was not granted in time, or the transaction was
    /// rolled back for a conflict ([`Error::is_retryable_transaction`]).
    /// The SQL API's own `429 Too Many Requests` counts too. The request
    /// was sound; the client should try again later, and it is no bug of
    /// ours.
    pub fn is_temporary(&self) -> bool {
        self.is_retryable_transaction()
            || self.database().is_some_and(|db| db.status == 429)
            || self.mysql_errno().is_some_and(|n| BUSY.contains(&n))
    }
}

/// After these the engine has rolled the transaction back, and running it
/// again from the start is safe: MySQL's deadlock (1213); TiDB's commit
/// conflicts and failed commits, each documented with "the application can
/// safely retry the whole transaction" or as a write conflict (8002, 8005,
/// 8022, 8028, 9007; TiDB's error-codes reference).
const RETRYABLE_TRANSACTION: [u16; 6] = [1213, 8002, 8005, 8022, 8028, 9007];

/// Refusals for now, not for the statement: MySQL's too many connections
/// (1040), too many for the user (1203), a user resource limit (1226),
/// lock wait timeout (1205, which rolls back the statement, not the
/// transaction) and lost connection during a query (2013: at a `COMMIT`
/// its outcome is unknown, so a client's retry of a page write may add the
/// same revision twice, which its `If-Match` prevents); TiDB's outdated
/// schema (8027), no start timestamp from PD (8120), resource group quota
/// exceeded (8252, how TiDB Cloud Serverless refuses past its request
/// units), PD or TiKV timeouts, busy, unavailable regions, lock resolution
/// timeouts and too many requests (9001-9005, 9008), and TiFlash timeouts
/// and busy (9012, 9013).
const BUSY: [u16; 16] = [
    1040, 1203, 1205, 1226, 2013, 8027, 8120, 8252, 9001, 9002, 9003, 9004, 9005, 9008, 9012, 9013,
];

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Database(e) => match &e.code {
                Some(code) => write!(f, "HTTP {}, code {code}: {}", e.status, e.message),
                None => write!(f, "HTTP {}: {}", e.status, e.message),
            },
            ErrorKind::Transport(e) => write!(f, "{e}"),
            ErrorKind::Protocol(e) => write!(f, "unexpected response: {e}"),
            ErrorKind::Decode(e) => write!(f, "cannot decode the result: {e}"),
            ErrorKind::Bind(e) => write!(f, "cannot bind the parameters: {e}"),
            ErrorKind::Config(e) => write!(f, "cannot build the request: {e}"),
            ErrorKind::NoRows => f.write_str("the query returned no row"),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.statement {
            Some(sql) => {
                let shown: String = sql.chars().take(SHOWN_STATEMENT_CHARS).collect();
                let more = if shown.len() < sql.len() { "..." } else { "" };
                write!(f, "TiDB statement `{shown}{more}` failed: {}", self.kind)
            }
            None => write!(f, "TiDB request failed: {}", self.kind),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ErrorKind::Transport(e) => Some(e),
            ErrorKind::Decode(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_statement_status_and_code() {
        let err = Error::new(
            Some("INSERT INTO t VALUES (?)"),
            ErrorKind::Database(DatabaseError {
                status: 400,
                code: Some(ErrorCode::Number(1062)),
                message: "Duplicate entry '1' for key 'PRIMARY'".into(),
            }),
        );
        assert_eq!(
            err.to_string(),
            "TiDB statement `INSERT INTO t VALUES (?)` failed: HTTP 400, code 1062: \
             Duplicate entry '1' for key 'PRIMARY'"
        );
        assert_eq!(err.mysql_errno(), Some(1062));
        assert!(err.is_duplicate_entry());
    }

    #[test]
    fn a_commit_that_was_sent_may_have_landed_whatever_the_answer() {
        let commit = |kind| Error::new(Some("COMMIT"), kind);
        let refused = |status, code| {
            ErrorKind::Database(DatabaseError {
                status,
                code,
                message: "m".into(),
            })
        };
        let timeout =
            || ErrorKind::Transport(FetchError::Timeout(std::time::Duration::from_secs(1)));
        assert!(commit(timeout()).may_have_committed());
        assert!(
            commit(ErrorKind::Transport(FetchError::Network("reset".into()))).may_have_committed()
        );
        assert!(commit(ErrorKind::Protocol("not JSON".into())).may_have_committed());
        assert!(
            commit(refused(502, None)).may_have_committed(),
            "a proxy's 5xx"
        );
        assert!(
            commit(refused(500, Some(ErrorCode::Number(1105)))).may_have_committed(),
            "the SQL API's own timeout"
        );
        assert!(!commit(ErrorKind::Config("header".into())).may_have_committed());
        assert!(
            !Error::new(Some("INSERT INTO t VALUES (?)"), timeout()).may_have_committed(),
            "not a commit"
        );
        assert!(!Error::new(None, timeout()).may_have_committed());
    }

    fn database_error(status: u16, code: Option<ErrorCode>) -> Error {
        Error::new(
            Some("SELECT 1"),
            ErrorKind::Database(DatabaseError {
                status,
                code,
                message: "m".into(),
            }),
        )
    }

    #[test]
    fn refusals_for_now_are_told_from_refusals_of_the_statement() {
        let coded = |code: i64| database_error(400, Some(ErrorCode::Number(code)));
        // Rolled back whole, and safe to run again.
        for code in [1213, 8002, 8005, 8022, 8028, 9007] {
            assert!(coded(code).is_retryable_transaction(), "{code}");
            assert!(coded(code).is_temporary(), "{code}");
        }
        // Busy, out of connections or quota: later, not again at once.
        for code in [
            1040, 1203, 1205, 1226, 2013, 8027, 8120, 8252, 9001, 9003, 9005, 9008,
        ] {
            assert!(!coded(code).is_retryable_transaction(), "{code}");
            assert!(coded(code).is_temporary(), "{code}");
        }
        // The statement itself is wrong, or the data refuses it: no retry
        // helps (a duplicate key has its own handling).
        for code in [1062, 1064, 1146, 1406, 8004, 9006] {
            assert!(!coded(code).is_retryable_transaction(), "{code}");
            assert!(!coded(code).is_temporary(), "{code}");
        }
        // A code sent as text counts the same.
        let text = database_error(400, Some(ErrorCode::Text("1040".into())));
        assert!(text.is_temporary());
        // The SQL API's own rate limit, with or without a code.
        assert!(database_error(429, None).is_temporary());
        assert!(database_error(429, Some(ErrorCode::Text("rate limited".into()))).is_temporary());
        assert!(!database_error(400, None).is_temporary());
        assert!(!database_error(403, Some(ErrorCode::Number(1045))).is_temporary());
        // Not the service's answer at all.
        assert!(!Error::new(None, ErrorKind::NoRows).is_temporary());
    }

    #[test]
    fn long_statements_are_shortened_on_display_only() {
        let sql = format!("SELECT '{}'", "é".repeat(500));
        let err = Error::new(Some(&sql), ErrorKind::NoRows);
        assert!(err.to_string().contains("...` failed"));
        assert_eq!(err.statement(), Some(sql.as_str()));
    }

    #[test]
    fn text_codes_and_timeouts_are_recognised() {
        let err = Error::new(
            None,
            ErrorKind::Database(DatabaseError {
                status: 500,
                code: Some(ErrorCode::Text("1105".into())),
                message: "x".into(),
            }),
        );
        assert_eq!(err.mysql_errno(), Some(1105));
        let err = Error::new(
            Some("SELECT 1"),
            ErrorKind::Transport(FetchError::Timeout(std::time::Duration::from_secs(1))),
        );
        assert!(err.is_timeout());
        assert_eq!(err.mysql_errno(), None);
    }
}
