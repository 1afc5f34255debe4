//! `simulate`: what an event would purge, one JSON line per target, nothing sent or stored.

use super::{input_error, CliResult, Ctx};
use crate::app::Planner;
use std::path::PathBuf;
use tokio::io::AsyncReadExt;

#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// The event body (JSON as a sender posts it); `-` reads standard input.
    #[arg(long)]
    pub event: PathBuf,
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
        explain(&planner, event, &matches);
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

/// Says on standard error why an event purges nothing: rule by rule when none matches, and
/// why a matching rule gives no target (folder marker, dot segment, outside strip_prefix).
fn explain(planner: &Planner, event: &edgepurge_core::Event, matches: &[edgepurge_core::Match]) {
    let what = format!(
        "{} {}/{}",
        edgepurge_core::printable(&event.name),
        edgepurge_core::printable(&event.bucket),
        edgepurge_core::printable(&event.key)
    );
    if planner.rules().is_empty() {
        eprintln!("note: {what}: purges nothing: there are no rules");
        return;
    }
    if matches.is_empty() {
        eprintln!("note: {what}: purges nothing: no rule matches");
        for rule in planner.rules() {
            if let Some(why) = rule.why_not(event) {
                eprintln!(
                    "  rule {:?}: {}",
                    rule.name(),
                    edgepurge_core::printable(&why)
                );
            }
        }
        return;
    }
    // A rule with several accounts has a match per account: explain it once.
    let mut said: Vec<&str> = Vec::new();
    for m in matches.iter().filter(|m| m.targets.is_empty()) {
        if said.contains(&m.rule.as_str()) {
            continue;
        }
        said.push(&m.rule);
        let why = if event.key.ends_with('/') {
            "the key is a folder marker"
        } else if edgepurge_core::rule::has_dot_segment(&event.key) {
            "the key has a '.' or '..' path segment, which no URL addresses"
        } else {
            "the key is outside the rule's strip_prefix, or renders no tag"
        };
        eprintln!(
            "note: {what}: rule {:?} matches but purges nothing: {why}",
            m.rule
        );
    }
}
