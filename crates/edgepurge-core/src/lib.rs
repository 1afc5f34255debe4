//! The pure core of edgepurge.
//!
//! * [`event`]: the normalized [`event::Event`] and one parser per bucket-notification wire
//!   format, with format auto-detection.
//! * [`key`]: decoding object keys exactly once, as each format requires.
//! * [`urlpath`]: turning a decoded key into the URL path a browser requests (RFC 3986).
//! * [`rule`]: purge rules, their validation, and the mapping `Event × Rule → Vec<Target>`.
//! * [`tags`]: surrogate keys (cache tags) derived from object keys.
//!
//! Nothing here performs I/O, spawns tasks or reads the clock, so all of it is testable as
//! plain functions and fuzzable.

pub mod event;
pub mod key;
pub mod printable;
pub mod rule;
pub mod tags;
pub mod urlpath;

pub use event::{parse_body, Event, Format, ParseError, Parsed};
pub use printable::printable;
pub use rule::{plan, Match, Mode, Rule, RuleError, RuleSpec, Target, TargetKind};
