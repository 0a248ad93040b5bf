//! A client for the Cloudflare API v4 operations our deploy tool
//! (`cargo xtask deploy`) uses to read live state and apply changes: zones,
//! DNS records, the API Worker (module uploads, versions, gradual
//! deployments, secrets, settings, routes and custom domains), Pages
//! projects, Access applications, reusable policies and service tokens, and
//! token verification.
//!
//! # Why hand-written
//!
//! The `cloudflare` crate on crates.io has no Worker script versions or
//! deployments, no Pages and no Access, which are most of what the deploy
//! tool touches. This crate is a thin, typed layer over reqwest and serde
//! whose request structs follow Cloudflare's published OpenAPI document
//! field for field (checked in tests against the subset the stand-in
//! validates with).
//!
//! # What it is not
//!
//! Native only (tokio + reqwest with rustls); it is not meant for the wasm
//! Worker. It covers only the operations listed in the modules below, not
//! the whole API, and does not model every optional field of every
//! resource: responses keep unknown fields out of the typed structs, and
//! request structs carry the fields the deploy tool sets.
//!
//! # Shape
//!
//! * [`Client`] built from a [`ClientConfig`]: bearer auth, the response
//!   [`Envelope`] parsed into `Result<T, Error>`, retries per
//!   [`RetryPolicy`] (see [`retry`] for which failures are retried for which
//!   methods), a sliding-window [`RequestBudget`], and [`CallStats`]
//!   accounting (requests, writes, retries, throttling).
//! * [`Error`] is typed by Cloudflare's codes: [`Error::is_not_found`],
//!   [`Error::is_already_exists`]; a request the API could not route (a
//!   wrong account or zone id) is [`Error::Unroutable`], never "not found".
//! * Resource handles: [`Client::zones`], [`Client::dns`],
//!   [`Client::workers`], [`Client::worker_routes`], [`Client::pages`],
//!   [`Client::access`], [`Client::tokens`].
//!
//! ```no_run
//! # async fn run() -> cloudflare::Result<()> {
//! use cloudflare::{Client, ClientConfig};
//! let client = Client::new(ClientConfig::new("api-token"))?;
//! let zone = client.zones().find_by_name("example.com").await?;
//! let records = client.dns(&zone.unwrap().id).list(&Default::default()).await?;
//! let stats = client.stats();
//! println!("{} records; {} API calls, {} writes", records.len(), stats.requests, stats.writes);
//! # Ok(()) }
//! ```

pub mod access;
pub mod budget;
pub mod client;
pub mod clock;
pub mod dns;
pub mod envelope;
pub mod error;
pub mod pages;
pub mod retry;
pub mod secret;
pub mod tokens;
pub mod workers;
pub mod zones;

pub use budget::{CallStats, RequestBudget};
pub use client::{
    Client, ClientConfig, Method, MultipartPart, Request, WaitNotices, DEFAULT_BASE_URL,
};
pub use clock::{Clock, TokioClock, VirtualClock};
pub use envelope::{Envelope, Page, ResultInfo};
pub use error::{ApiError, Error, Result};
pub use retry::{RetryPolicy, RATE_LIMIT_LOCKOUT};
pub use secret::Sensitive;
