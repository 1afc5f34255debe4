//! Sources: what turns the ways buckets deliver events into calls on the application layer.
//! The webhook lives with the HTTP server (`server/webhook.rs`); the rest are here.
//!
//! * [`function`]: edgepurge as a serverless function (Tencent SCF, AWS Lambda) or a one-shot
//!   command (`edgepurge handle`): each body purged directly, or relayed to a server.

pub mod function;
