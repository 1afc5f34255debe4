//! `log`: the purge log (one record per event and rule), or `--requests`: every provider
//! request.

use super::{admin_failure, fmt_time, parse_duration_ms, print_json, CliResult, Ctx};
use crate::clock::now_ms;
use crate::store::{LogQuery, LogRecord, RequestRecord, Status};
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct LogArgs {
    /// Only records of this rule.
    #[arg(long)]
    pub rule: Option<String>,
    /// Only records in this status: queued, sent, succeeded, failed, dead, skipped.
    #[arg(long)]
    pub status: Option<Status>,
    /// Only records newer than this, e.g. 10m, 2h, 1day.
    #[arg(long)]
    pub since: Option<String>,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
    /// Keep printing records as they are added or change status.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// How many records to print (the newest).
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// Show provider requests instead of purge records.
    #[arg(long)]
    pub requests: bool,
}

const FOLLOW_PAGE: usize = 1000;

pub async fn run(ctx: &Ctx, args: LogArgs) -> CliResult {
    let cfg = ctx.config().await?;
    let store = ctx.admin(&cfg, false).await?;
    let since = match &args.since {
        Some(s) => Some(now_ms() - parse_duration_ms(s)?),
        None => None,
    };
    if args.requests {
        for r in store
            .requests(since, None, args.limit)
            .await
            .map_err(admin_failure)?
        {
            print_request(&r, args.json)?;
        }
        return Ok(());
    }
    let query = LogQuery {
        rule: args.rule.clone(),
        status: args.status,
        since,
        after: None,
        before: None,
        ids: None,
        limit: args.limit,
    };
    // Changes after this point are printed by --follow (some may repeat the first page).
    let mut cursor = (store.log_cursor().await.map_err(admin_failure)?, i64::MAX);
    for r in &store.log(query.clone()).await.map_err(admin_failure)? {
        print_record(r, args.json)?;
    }
    if !args.follow {
        return Ok(());
    }
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {},
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
        // Drain every change since the cursor, a page at a time.
        loop {
            let page = store
                .log(LogQuery {
                    after: Some(cursor),
                    limit: FOLLOW_PAGE,
                    ..query.clone()
                })
                .await
                .map_err(admin_failure)?;
            for r in &page {
                cursor = (r.seq, r.id);
                print_record(r, args.json)?;
            }
            if page.len() < FOLLOW_PAGE {
                break;
            }
        }
    }
}

fn print_record(r: &LogRecord, json: bool) -> CliResult {
    if json {
        return print_json(r);
    }
    let target = match r.targets.as_slice() {
        [] => "-".to_owned(),
        [one] => one.clone(),
        [first, rest @ ..] => format!("{first} (+{} more)", rest.len()),
    };
    let line = format!(
        "{}  {:<9}  rule={}  {} {}/{}  -> {}  provider={} attempts={}",
        fmt_time(r.time),
        r.status.as_str(),
        r.rule.as_deref().unwrap_or("-"),
        r.event,
        r.bucket,
        r.key,
        target,
        r.provider.as_deref().unwrap_or("-"),
        r.attempts,
    );
    // When every purge took effect at the provider (its task done, or its answer).
    let completed = r
        .completed_at
        .map(|c| format!(" completed={}", fmt_time(c)))
        .unwrap_or_default();
    let line = format!(
        "{line}{completed}{}{}",
        verified_suffix(r),
        outcome_suffix(&r.request_id, &r.task_id, &r.error)
    );
    // Keys and errors come from senders and providers: never raw to the terminal.
    println!("{}", edgepurge_core::printable(&line));
    Ok(())
}

fn print_request(r: &RequestRecord, json: bool) -> CliResult {
    if json {
        return print_json(r);
    }
    let mut line = format!(
        "{}  {:<9}  lane={} batch={} attempt={} {} x{} took={}ms",
        fmt_time(r.started_at),
        r.outcome,
        r.lane,
        r.batch_id,
        r.attempt,
        r.kind,
        r.targets,
        r.finished_at - r.started_at,
    );
    if let Some(s) = r.http_status {
        line.push_str(&format!(" http={s}"));
    }
    let line = format!(
        "{line}{}",
        outcome_suffix(&r.request_id, &r.task_id, &r.error)
    );
    println!("{}", edgepurge_core::printable(&line));
    Ok(())
}

/// ` verified=fresh (what was seen)` for a record of a rule with `verify = true`.
fn verified_suffix(r: &LogRecord) -> String {
    match (r.verified, &r.verify_note) {
        (None, _) => String::new(),
        (Some(v), Some(note)) => format!(" verified={} ({note})", v.as_str()),
        (Some(v), None) => format!(" verified={}", v.as_str()),
    }
}

/// ` request_id=… task_id=…  error: …` for the parts that are present.
fn outcome_suffix(
    request_id: &Option<String>,
    task_id: &Option<String>,
    error: &Option<String>,
) -> String {
    let mut out = String::new();
    if let Some(id) = request_id {
        out.push_str(&format!(" request_id={id}"));
    }
    if let Some(id) = task_id {
        out.push_str(&format!(" task_id={id}"));
    }
    if let Some(e) = error {
        out.push_str(&format!("  error: {e}"));
    }
    out
}
