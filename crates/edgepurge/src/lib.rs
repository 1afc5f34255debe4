//! edgepurge: bucket change events in, batched, durable CDN purges out.
//!
//! Layers, outside in (dependencies point one way, down this list):
//!
//! * adapters: [`server`] (HTTP), [`cli`], [`sources`] (function mode);
//! * [`app`]: the application layer: `Ingestor` (one ingest path) and `Admin`;
//! * [`dispatch`]: lanes that decide *when* to call a provider; [`metrics`]: what they and
//!   the ingest path count;
//! * [`purgers`] (one module per provider, owning its config) and [`store`] (the durable
//!   queue and log behind one trait, SQLite backend);
//! * [`queue`]: pure queue policy every store backend calls; [`rules`]: the one rule check;
//! * `edgepurge-core`: events, rules, key → URL (pure).

pub mod app;
pub mod aws;
pub mod cli;
pub mod clock;
pub mod config;
pub mod dispatch;
pub mod limits;
pub mod metrics;
pub mod purgers;
pub mod queue;
pub mod rules;
pub mod secret;
pub mod server;
pub mod service;
pub mod sources;
pub mod store;
pub mod validate;
