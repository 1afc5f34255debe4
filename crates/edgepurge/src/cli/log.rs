//! `log`: the purge log (one record per event and rule), or `--requests`: every provider
//! request.

use super::{admin_failure, input_error, parse_duration_ms, print_json, CliResult, Ctx};
use crate::clock::{local_time, now_ms};
use crate::server::views::{record_view, request_view};
use crate::store::{LogQuery, LogRecord, RequestRecord, Status};
use std::time::Duration;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    edgepurge log --rule site --status dead --since 2h\n  \
    edgepurge log --follow --json\n  \
    edgepurge log --requests --status retry\n\n\
    Times are local (RFC 3339, with the offset) in text and UTC (RFC 3339, milliseconds) in \
    JSON.")]
pub struct LogArgs {
    /// Only records of this rule (an unknown name with no records is an error, exit 2).
    #[arg(long, conflicts_with = "requests")]
    pub rule: Option<String>,
    /// Only records in this status: queued, sent, succeeded, failed, dead, skipped; with
    /// --requests, requests with this outcome: succeeded, retry, split, quota, held, dead.
    #[arg(long)]
    pub status: Option<String>,
    /// Only records newer than this, e.g. 10m, 2h, 1day.
    #[arg(long)]
    pub since: Option<String>,
    /// One JSON object per line, as the admin API's `/v1/log` (or `/v1/requests`) shows it.
    #[arg(long)]
    pub json: bool,
    /// Keep printing records as they are added or change status.
    #[arg(long, short = 'f', conflicts_with = "requests")]
    pub follow: bool,
    /// How many records to print (the newest).
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// Show provider requests (one per attempt of a batch) instead of purge records.
    #[arg(long)]
    pub requests: bool,
}

/// What a provider request's outcome can be (`--requests --status`).
const OUTCOMES: [&str; 6] = ["succeeded", "retry", "split", "quota", "held", "dead"];

const FOLLOW_PAGE: usize = 1000;

pub async fn run(ctx: &Ctx, args: LogArgs) -> CliResult {
    let cfg = ctx.config().await?;
    let store = ctx.admin(&cfg, false).await?;
    let since = match &args.since {
        Some(s) => Some(now_ms() - parse_duration_ms(s)?),
        None => None,
    };
    if args.requests {
        let rows = match args.status.as_deref() {
            None => store.requests(since, None, args.limit).await,
            Some(outcome) if OUTCOMES.contains(&outcome) => {
                store
                    .requests_with_outcome(outcome, since, args.limit)
                    .await
            }
            Some(other) => {
                return Err(input_error(format!(
                    "--status {other:?}: a provider request's outcome is one of {}",
                    OUTCOMES.join(", ")
                )))
            }
        };
        for r in rows.map_err(admin_failure)? {
            print_request(&r, args.json)?;
        }
        return Ok(());
    }
    let status = args
        .status
        .as_deref()
        .map(str::parse::<Status>)
        .transpose()
        .map_err(|e| input_error(format!("--status: {e}")))?;
    let query = LogQuery {
        rule: args.rule.clone(),
        status,
        since,
        after: None,
        before: None,
        ids: None,
        limit: args.limit,
    };
    // Changes after this point are printed by --follow (some may repeat the first page).
    let mut cursor = (store.log_cursor().await.map_err(admin_failure)?, i64::MAX);
    let first = store.log(query.clone()).await.map_err(admin_failure)?;
    if first.is_empty() {
        // A misspelled rule matches nothing, quietly: say so (a deleted rule's records
        // still show).
        if let Some(rule) = &args.rule {
            store.require_rule(rule).await.map_err(admin_failure)?;
        }
    }
    for r in &first {
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
        return print_json(&record_view(r));
    }
    let target = match r.targets.as_slice() {
        [] => "-".to_owned(),
        [one] => one.clone(),
        [first, rest @ ..] => format!("{first} (+{} more)", rest.len()),
    };
    // A purge by hand has no bucket: its "key" is the URL purged.
    let object = if r.bucket.is_empty() {
        r.key.clone()
    } else {
        format!("{}/{}", r.bucket, r.key)
    };
    let line = format!(
        "{}  {:<9}  rule={}  {} {}  -> {}  provider={} attempts={}",
        local_time(r.time),
        r.status.as_str(),
        r.rule.as_deref().unwrap_or("-"),
        r.event,
        object,
        target,
        r.provider.as_deref().unwrap_or("-"),
        r.attempts,
    );
    // When every purge took effect at the provider (its task done, or its answer).
    let completed = r
        .completed_at
        .map(|c| format!(" completed={}", local_time(c)))
        .unwrap_or_default();
    // What the queue did with it (held for min_interval_ms, collapsed into a dir purge).
    let note = r
        .note
        .as_deref()
        .map(|n| format!("  note: {n}"))
        .unwrap_or_default();
    let line = format!(
        "{line}{completed}{}{}{}{note}",
        verified_suffix(r),
        warmed_suffix(r),
        outcome_suffix(&r.request_id, &r.task_id, &r.error)
    );
    // Keys and errors come from senders and providers: never raw to the terminal.
    println!("{}", edgepurge_core::printable(&line));
    Ok(())
}

fn print_request(r: &RequestRecord, json: bool) -> CliResult {
    if json {
        return print_json(&request_view(r));
    }
    let mut line = format!(
        "{}  {:<9}  lane={} batch={} attempt={} {} x{} took={}ms",
        local_time(r.started_at),
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

/// ` warmed=warmed (what was done) warm_task=…` for a record of a rule with `warm = true`.
fn warmed_suffix(r: &LogRecord) -> String {
    let Some(w) = r.warmed else {
        return String::new();
    };
    let mut out = format!(" warmed={}", w.as_str());
    if let Some(note) = &r.warm_note {
        out.push_str(&format!(" ({note})"));
    }
    if let Some(task) = &r.warm_task {
        out.push_str(&format!(" warm_task={task}"));
    }
    out
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
