//! Idle MariaDB connections kept per login (user, password, database), so a
//! stateless request does not pay for a handshake. The password is part
//! of the key: a request with a wrong password never gets a connection
//! another request logged in, it logs in itself and MariaDB refuses it.
//!
//! A connection comes back clean: before it is reused it is reset
//! (variables, temporary tables, open transaction) and set up again, so
//! each request starts from a fresh session, as on TiDB Cloud.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::mysql::{Conn, Credentials, Error, Outcome};

/// Session settings every connection starts with, TiDB Cloud's defaults:
/// its `sql_mode`, `utf8mb4_bin`, and UTC.
pub const SESSION_SETUP: &str = "SET NAMES utf8mb4 COLLATE utf8mb4_bin, \
     time_zone = '+00:00', \
     sql_mode = 'ONLY_FULL_GROUP_BY,STRICT_TRANS_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,\
ERROR_FOR_DIVISION_BY_ZERO,NO_AUTO_CREATE_USER,NO_ENGINE_SUBSTITUTION'";

/// Idle connections older than this are closed rather than reused.
const MAX_IDLE_AGE: Duration = Duration::from_secs(300);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Pool {
    addr: String,
    max_idle_per_login: usize,
    query_timeout: Duration,
    idle: Mutex<HashMap<Credentials, Vec<(Conn, Instant)>>>,
}

impl Pool {
    pub fn new(addr: String, max_idle_per_login: usize, query_timeout: Duration) -> Self {
        Pool {
            addr,
            max_idle_per_login,
            query_timeout,
            idle: Mutex::new(HashMap::new()),
        }
    }

    /// An idle connection for `login`, or a new one (logging in, which is
    /// where a wrong password is refused).
    pub async fn checkout(&self, login: &Credentials) -> Result<Conn, Error> {
        let reusable = {
            let mut idle = self.idle.lock().expect("pool lock");
            let mut found = None;
            if let Some(conns) = idle.get_mut(login) {
                while let Some((conn, since)) = conns.pop() {
                    if since.elapsed() < MAX_IDLE_AGE && !conn.closed_by_server() {
                        found = Some(conn);
                        break;
                    }
                }
            }
            found
        };
        if let Some(mut conn) = reusable {
            conn.set_query_timeout(self.query_timeout);
            return Ok(conn);
        }
        let mut conn = Conn::connect(&self.addr, login, CONNECT_TIMEOUT).await?;
        conn.set_query_timeout(self.query_timeout);
        expect_done(conn.query(SESSION_SETUP).await)?;
        Ok(conn)
    }

    /// Takes a connection back: cleans it in the background and keeps it
    /// if that works and there is room; otherwise closes it.
    pub fn release(self: &Arc<Self>, login: Credentials, mut conn: Conn) {
        if !conn.is_usable() {
            return;
        }
        let pool = Arc::clone(self);
        tokio::spawn(async move {
            match clean(&mut conn, &login.database).await {
                Ok(()) => {
                    let mut idle = pool.idle.lock().expect("pool lock");
                    let conns = idle.entry(login).or_default();
                    if conns.len() < pool.max_idle_per_login {
                        conns.push((conn, Instant::now()));
                        return;
                    }
                }
                Err(_) => return,
            }
            conn.quit().await;
        });
    }

    /// Rolls back what `conn` had open and takes it back.
    pub fn rollback_and_release(self: &Arc<Self>, login: Credentials, mut conn: Conn) {
        if !conn.is_usable() {
            return;
        }
        let pool = Arc::clone(self);
        tokio::spawn(async move {
            if expect_done(conn.query("ROLLBACK").await).is_ok() {
                pool.release(login, conn);
            }
        });
    }
}

/// Resets the session and sets it up as new, on the login's database.
async fn clean(conn: &mut Conn, database: &str) -> Result<(), Error> {
    conn.reset().await?;
    expect_done(conn.query(SESSION_SETUP).await)?;
    if database.is_empty() {
        // No database to return to: a `USE` in the session would outlive
        // the reset, so such a connection is not reused.
        match conn.query("SELECT DATABASE()").await? {
            Outcome::Rows { rows, .. } if rows.first().is_some_and(|r| r[0].is_none()) => Ok(()),
            _ => Err(Error::Protocol(
                "the connection has a database selected".into(),
            )),
        }
    } else {
        conn.init_db(database).await
    }
}

pub fn expect_done(outcome: Result<Outcome, Error>) -> Result<(), Error> {
    outcome.map(|_| ())
}
