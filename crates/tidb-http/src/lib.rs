//! A driver for TiDB Cloud Serverless's HTTP SQL API (`POST /v1beta/sql`),
//! faithful to the official JavaScript driver, tidbcloud/serverless-js:
//! the same request (Basic auth, `TiDB-Database`, `TiDB-Session`, a JSON
//! body `{"query": ...}`), parameters bound into the SQL text client-side
//! with its escaping rules ([`bind`](crate::Statement::bind)), every cell
//! decoded from its string by column type, and transactions carried by
//! the `TiDB-Session` header.
//!
//! It is written against [`outbound::Fetch`] only, so the same code runs in
//! the Worker (over the runtime's `fetch()`) and natively (over reqwest)
//! against the local gateway that stands in for TiDB Cloud.
//!
//! ```no_run
//! # async fn demo(fetch: std::sync::Arc<dyn outbound::Fetch>) -> Result<(), tidb_http::Error> {
//! use tidb_http::{Client, Config, Statement};
//!
//! #[derive(serde::Deserialize)]
//! struct User { id: u64, email: String }
//!
//! let config = Config::from_url("mysql://user:password@gateway01.example.com/app").unwrap();
//! let db = Client::new(config, fetch);
//! let users: Vec<User> = db
//!     .query_as(Statement::new("SELECT id, email FROM users WHERE id > ?").bind(10))
//!     .await?;
//!
//! let mut tx = db.begin(None).await?;
//! tx.execute(Statement::new("UPDATE users SET email = :e WHERE id = :id")
//!     .bind_named("e", "a@example.com")
//!     .bind_named("id", 1))
//!     .await?;
//! tx.commit().await?;
//! # Ok(()) }
//! ```
//!
//! Not for: connection pooling or retries (the service pools; a retry of a
//! non-idempotent statement is the caller's decision), and not a SQL
//! builder.

mod bind;
mod client;
mod config;
mod de;
mod decode;
mod error;
mod time;

pub use bind::Value;
pub use client::{
    Client, Ended, StatefulSession, Statement, TraceIds, Tx, ABANDONED_ROLLBACK_TIMEOUT,
    DATABASE_HEADER, ISOLATION_HEADER, SESSION_HEADER, STATEFUL_ACTION_HEADER, TRACE_ID_HEADER,
};
pub use config::{Config, ConfigError, IsolationLevel, Password, DEFAULT_TIMEOUT};
pub use de::DecodeError;
pub use decode::{Cell, Column, QueryResult, Row};
pub use error::{DatabaseError, Error, ErrorCode, ErrorKind};
pub use time::{Date, DateTime, ParseTimeError};

#[cfg(feature = "testing")]
pub mod testing;
