//! edgepurge: bucket change events in, batched, durable CDN purges out.
//!
//! Dependencies point one way: `cli`/`server` → `dispatch` → `purgers`/`store` → core.

pub mod clock;
pub mod dispatch;
pub mod purgers;
pub mod secret;
pub mod store;
