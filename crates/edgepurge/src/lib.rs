//! edgepurge: bucket change events in, batched, durable CDN purges out.
//!
//! Dependencies point one way: `cli`/`server` → `dispatch` → `purgers`/`store` → core.

pub mod cli;
pub mod clock;
pub mod config;
pub mod dispatch;
pub mod ingest;
pub mod limits;
pub mod purgers;
pub mod secret;
pub mod server;
pub mod service;
pub mod store;
