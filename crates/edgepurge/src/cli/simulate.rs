//! `simulate`: what an event would purge, one JSON line per target, nothing sent or stored;
//! when an event purges nothing, why (on standard error, and with `--json` as a JSON line).

use super::{input_error, CliResult, Ctx};
use crate::app::Planner;
use std::path::PathBuf;
use tokio::io::AsyncReadExt;

#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// The event body (JSON as a sender posts it); `-` reads standard input.
    #[arg(long)]
    pub event: PathBuf,
    /// Also print why an event purges nothing as one JSON line on standard output:
    /// `{"event", "bucket", "key", "purges_nothing", "rules": [{"rule", "why"}]}`.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(ctx: &Ctx, args: SimulateArgs) -> CliResult {
    let cfg = ctx.config().await?;
    let body = if args.event.as_os_str() == "-" {
        let mut buf = Vec::new();
        tokio::io::stdin()
            .read_to_end(&mut buf)
            .await
            .map_err(|e| input_error(format!("cannot read standard input: {e}")))?;
        buf
    } else {
        tokio::fs::read(&args.event)
            .await
            .map_err(|e| input_error(format!("cannot read {}: {e}", args.event.display())))?
    };
    let parsed = edgepurge_core::parse_body(&body)
        .map_err(|e| input_error(format!("{}: {e}", args.event.display())))?;
    for notice in &parsed.notices {
        eprintln!("note: {notice}");
    }

    // The config's rules as written now, plus rules added with `edgepurge rule add`.
    let rules = ctx
        .admin(&cfg, false)
        .await?
        .rules_as_configured()
        .await
        .map_err(super::admin_failure)?;
    let (planner, problems) = Planner::new(&rules, &cfg.providers, false);
    for p in problems {
        eprintln!("warning: {p}");
    }
    for event in &parsed.events {
        let matches = edgepurge_core::plan(planner.rules(), event);
        if let Some(why) = explain(&planner, event, &matches) {
            why.print();
            if args.json && why.nothing {
                super::print_json(&why.json(event))?;
            }
        }
        for m in matches {
            for t in m.targets {
                super::print_json(&serde_json::json!({
                    "rule": t.rule,
                    "provider": t.provider,
                    "kind": t.kind.as_str(),
                    "target": t.target,
                }))?;
            }
        }
    }
    Ok(())
}

/// Why an event purges nothing: the reason, and rule by rule why each gives nothing.
struct Nothing {
    /// The event, printable.
    what: String,
    reason: &'static str,
    rules: Vec<(String, String)>,
    /// Nothing at all is purged (else other rules purge something).
    nothing: bool,
}

impl Nothing {
    /// On standard error, for a reader.
    fn print(&self) {
        // Keys and reasons come from senders: never raw to the terminal.
        let verdict = if self.nothing { "purges nothing: " } else { "" };
        eprintln!("note: {}: {verdict}{}", self.what, self.reason);
        for (rule, why) in &self.rules {
            eprintln!(
                "  rule {:?}: {}",
                edgepurge_core::printable(rule),
                edgepurge_core::printable(why)
            );
        }
    }

    fn json(&self, event: &edgepurge_core::Event) -> serde_json::Value {
        let rules: Vec<serde_json::Value> = self
            .rules
            .iter()
            .map(|(rule, why)| serde_json::json!({ "rule": rule, "why": why }))
            .collect();
        serde_json::json!({
            "event": event.name,
            "bucket": event.bucket,
            "key": event.key,
            "purges_nothing": self.reason,
            "rules": rules,
        })
    }
}

/// Why an event purges nothing (`None` when it purges something): rule by rule when none
/// matches, and why a matching rule gives no target (folder marker, dot segment, outside
/// strip_prefix).
fn explain(
    planner: &Planner,
    event: &edgepurge_core::Event,
    matches: &[edgepurge_core::Match],
) -> Option<Nothing> {
    let what = format!(
        "{} {}/{}",
        edgepurge_core::printable(&event.name),
        edgepurge_core::printable(&event.bucket),
        edgepurge_core::printable(&event.key)
    );
    if planner.rules().is_empty() {
        return Some(Nothing {
            what,
            reason: "there are no rules",
            rules: Vec::new(),
            nothing: true,
        });
    }
    if matches.is_empty() {
        return Some(Nothing {
            what,
            reason: "no rule matches",
            rules: planner
                .rules()
                .iter()
                .filter_map(|rule| rule.why_not(event).map(|why| (rule.name().to_owned(), why)))
                .collect(),
            nothing: true,
        });
    }
    // A rule with several accounts has a match per account: explain it once.
    let mut rules: Vec<(String, String)> = Vec::new();
    for m in matches.iter().filter(|m| m.targets.is_empty()) {
        if rules.iter().any(|(r, _)| *r == m.rule) {
            continue;
        }
        let why = if event.key.ends_with('/') {
            "the key is a folder marker"
        } else if edgepurge_core::rule::has_dot_segment(&event.key) {
            "the key has a '.' or '..' path segment, which no URL addresses"
        } else {
            "the key is outside the rule's strip_prefix, or renders no tag"
        };
        rules.push((m.rule.clone(), format!("matches but purges nothing: {why}")));
    }
    if rules.is_empty() {
        return None;
    }
    let nothing = matches.iter().all(|m| m.targets.is_empty());
    Some(Nothing {
        what,
        reason: if nothing {
            "the matching rules give no target"
        } else {
            "some matching rules give no target"
        },
        rules,
        nothing,
    })
}
