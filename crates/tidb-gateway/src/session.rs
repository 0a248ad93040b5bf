//! Sessions that hold a MariaDB connection between requests: a transaction
//! (from the statement that opened it to the one that ended it) or a
//! stateful session (`TiDB-Stateful-Action: open` to `close`). Each has an
//! opaque token the client sends back in `TiDB-Session`.
//!
//! Tokens of held sessions start with `h`; every other answer carries a
//! fresh `s` token that holds nothing (serverless-js sends back whatever it
//! got last, and the service must treat that as a new session). A held
//! token that is unknown (ended, timed out) is an error, not a fresh start,
//! so a client never silently continues outside its transaction.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::mysql::{Conn, Credentials};

const HELD: char = 'h';
const STATELESS: char = 's';

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Ends when a statement leaves no transaction open.
    Transaction,
    /// Ends on `TiDB-Stateful-Action: close`.
    Stateful,
}

pub struct Session {
    pub login: Credentials,
    pub kind: Kind,
    /// `None` once the session ended while a request was waiting for it.
    pub conn: tokio::sync::Mutex<Option<Conn>>,
    last_used: Mutex<Instant>,
}

impl Session {
    pub fn touch(&self) {
        *self.last_used.lock().expect("session lock") = Instant::now();
    }

    fn idle_for(&self) -> Duration {
        self.last_used.lock().expect("session lock").elapsed()
    }
}

#[derive(Default)]
pub struct Sessions {
    held: Mutex<HashMap<String, Arc<Session>>>,
}

/// A token that holds nothing.
pub fn stateless_token() -> String {
    format!("{STATELESS}{}", uuid::Uuid::new_v4().simple())
}

/// The token names a held session (which may have ended).
pub fn is_held(token: &str) -> bool {
    token.starts_with(HELD)
}

impl Sessions {
    /// Holds `conn` under a new token.
    pub fn open(&self, login: Credentials, kind: Kind, conn: Conn) -> String {
        let token = format!("{HELD}{}", uuid::Uuid::new_v4().simple());
        let session = Arc::new(Session {
            login,
            kind,
            conn: tokio::sync::Mutex::new(Some(conn)),
            last_used: Mutex::new(Instant::now()),
        });
        self.held
            .lock()
            .expect("sessions lock")
            .insert(token.clone(), session);
        token
    }

    pub fn get(&self, token: &str) -> Option<Arc<Session>> {
        self.held.lock().expect("sessions lock").get(token).cloned()
    }

    pub fn remove(&self, token: &str) {
        self.held.lock().expect("sessions lock").remove(token);
    }

    /// Ends every session idle for `timeout` or longer and not in use,
    /// returning their connections (still in their transactions).
    pub fn take_expired(&self, timeout: Duration) -> Vec<(Credentials, Conn)> {
        let mut held = self.held.lock().expect("sessions lock");
        let mut expired = Vec::new();
        held.retain(|_, session| {
            if session.idle_for() < timeout {
                return true;
            }
            // In use by a request right now: not idle, whatever the clock says.
            let Ok(mut conn) = session.conn.try_lock() else {
                return true;
            };
            if let Some(conn) = conn.take() {
                expired.push((session.login.clone(), conn));
            }
            false
        });
        expired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_tell_held_from_stateless_and_are_unique() {
        let a = stateless_token();
        assert!(!is_held(&a));
        assert!(!is_held(""));
        assert_ne!(a, stateless_token());
        assert_eq!(a.len(), 33);
        assert!(is_held("h0123"));
    }
}
