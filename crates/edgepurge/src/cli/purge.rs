//! `purge`: queue URLs or directories by hand and send them through a provider account.
//!
//! The targets go through the same durable queue as events. This process sends them itself
//! unless a running server holds the provider's lane, in which case the server does; either
//! way this command waits for the outcome (unless `--no-wait`).

use super::{input_error, parse_duration_ms, CliResult, Ctx, Failure};
use crate::app::{IngestError, IngestOptions, Pipeline, Planner};
use crate::clock::Clock;
use crate::store::{LogQuery, LogRecord, Status};
use edgepurge_core::TargetKind;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, clap::Args)]
pub struct PurgeArgs {
    /// URLs to purge (with scheme), or directories ending in `/` with --dir.
    pub urls: Vec<String>,
    /// Read more URLs from a file, one per line (`#` comments and blank lines ignored).
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Provider account (needed when the config has several).
    #[arg(long)]
    pub provider: Option<String>,
    /// Purge directories (Tencent PurgePathCache) instead of URLs.
    #[arg(long)]
    pub dir: bool,
    /// Queue and return at once; a running server sends them.
    #[arg(long)]
    pub no_wait: bool,
    /// Give up waiting after this long (the targets stay queued).
    #[arg(long, default_value = "10m")]
    pub timeout: String,
    /// Print one JSON line (`{"provider", "queued"}` with --no-wait; else `{"provider",
    /// "statuses", "task_ids", "not_succeeded": [{"status", "key", "error"}]}`).
    #[arg(long)]
    pub json: bool,
}

const CHUNK: usize = 500;
/// How often records sent by another process (a server holding the lane) are looked up.
const REMOTE_POLL: Duration = Duration::from_millis(500);

pub async fn run(ctx: &Ctx, args: PurgeArgs) -> CliResult {
    let cfg = ctx.config().await?;
    let timeout_ms = parse_duration_ms(&args.timeout)?;
    let provider = match (&args.provider, cfg.providers.len()) {
        (Some(p), _) => p.clone(),
        (None, 1) => cfg.providers.keys().next().cloned().unwrap_or_default(),
        (None, 0) => {
            return Err(input_error(
                "purge needs a provider account: pass --config with a [providers.NAME] section",
            ))
        }
        (None, _) => {
            return Err(input_error(format!(
                "several providers are configured ({}); choose one with --provider",
                cfg.providers.keys().cloned().collect::<Vec<_>>().join(", ")
            )))
        }
    };
    let Some(account) = cfg.providers.get(&provider) else {
        return Err(input_error(format!(
            "provider {provider:?} is not in the config"
        )));
    };
    let kind = if args.dir {
        TargetKind::Dir
    } else {
        TargetKind::Url
    };
    let targets = collect_targets(&args, kind).await?;

    let store = ctx.store(&cfg).await?;
    let clock = Clock::system();
    let shutdown = CancellationToken::new();
    // This process sends them itself unless a running server holds the lanes.
    let purgers = if args.no_wait {
        Vec::new()
    } else {
        account.build()?
    };
    let (planner, _) = Planner::new(&[], &cfg.providers, false);
    let Pipeline {
        ingestor,
        dispatcher,
    } = Pipeline::start(
        Arc::clone(&store),
        purgers,
        planner,
        crate::app::PipelineSettings {
            dispatch: cfg.dispatch.clone(),
            clock,
            poll: REMOTE_POLL,
            limits: crate::app::IngestLimits::default(),
            metrics: Arc::new(crate::metrics::Metrics::new()),
        },
        &shutdown,
    );
    let accepted = ingestor
        .accept_manual(&provider, kind, &targets, &IngestOptions::default())
        .await
        .map_err(|e| match e {
            IngestError::Refused(m) => input_error(m),
            other => Failure::from(other),
        })?;
    let ids = accepted.records;
    if args.no_wait {
        dispatcher.stop().await;
        shutdown.cancel();
        if args.json {
            return super::print_json(&serde_json::json!({
                "provider": provider,
                "kind": kind.as_str(),
                "queued": ids.len(),
            }));
        }
        println!(
            "queued {} {}(s) for provider {provider}; a running server sends them",
            ids.len(),
            kind.as_str()
        );
        return Ok(());
    }
    // Someone is waiting: no linger.
    for lane in account.lanes() {
        dispatcher.expedite(&lane);
    }

    let bar = progress(ids.len() as u64);
    let stop = CancellationToken::new();
    let on_ctrl_c = {
        let stop = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                stop.cancel();
            }
        })
    };
    let waited = ingestor
        .wait(
            &ids,
            Duration::from_millis(timeout_ms.max(0) as u64),
            &stop,
            |done, _| bar.set_position(done as u64),
        )
        .await;
    on_ctrl_c.abort();
    bar.finish_and_clear();
    dispatcher.stop().await;
    shutdown.cancel();

    let mut records: Vec<LogRecord> = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(CHUNK) {
        records.extend(
            store
                .log(LogQuery {
                    ids: Some(chunk.to_vec()),
                    limit: chunk.len(),
                    ..Default::default()
                })
                .await?,
        );
    }
    let mut tasks: Vec<&str> = records
        .iter()
        .filter_map(|r| r.task_id.as_deref())
        .collect();
    tasks.sort_unstable();
    tasks.dedup();
    let not_done: Vec<&LogRecord> = records
        .iter()
        .filter(|r| r.status != Status::Succeeded)
        .collect();
    if args.json {
        let statuses: serde_json::Map<String, serde_json::Value> = waited
            .statuses
            .iter()
            .map(|(s, n)| (s.as_str().to_owned(), serde_json::json!(n)))
            .collect();
        let failed: Vec<serde_json::Value> = not_done
            .iter()
            .map(|r| serde_json::json!({"status": r.status.as_str(), "key": r.key, "error": r.error}))
            .collect();
        super::print_json(&serde_json::json!({
            "provider": provider,
            "statuses": statuses,
            "task_ids": tasks,
            "not_succeeded": failed,
        }))?;
    } else {
        print_outcome(&provider, &waited.statuses, &tasks, &not_done);
    }
    if !not_done.is_empty() {
        let dead = not_done.iter().filter(|r| r.status == Status::Dead).count();
        let open = not_done.len() - dead;
        return Err(Failure {
            code: 1,
            error: anyhow::anyhow!(
                "{dead} target(s) were given up and {open} are not done yet (queued, in flight or \
                 retrying); see `edgepurge log`. Those not done are sent by a running server or \
                 the next `edgepurge purge`; `edgepurge retry` re-queues the given up"
            ),
        });
    }
    Ok(())
}

fn print_outcome(
    provider: &str,
    statuses: &std::collections::BTreeMap<Status, usize>,
    tasks: &[&str],
    not_done: &[&LogRecord],
) {
    let summary: Vec<String> = statuses
        .iter()
        .map(|(s, n)| match s {
            Status::Failed => format!("{n} failed, retrying"),
            s if s.is_final() => format!("{n} {s}"),
            s => format!("{n} still {s}"),
        })
        .collect();
    println!(
        "{}: {}",
        provider,
        if summary.is_empty() {
            "nothing to purge".to_owned()
        } else {
            summary.join(", ")
        }
    );
    if !tasks.is_empty() {
        println!("task ids: {}", tasks.join(" "));
    }
    for r in not_done.iter().take(20) {
        println!(
            "  {} {}: {}",
            r.status.as_str(),
            r.key,
            r.error.as_deref().unwrap_or("")
        );
    }
}

async fn collect_targets(args: &PurgeArgs, kind: TargetKind) -> Result<Vec<String>, Failure> {
    let mut raw: Vec<(String, String)> = args
        .urls
        .iter()
        .map(|u| (u.clone(), "argument".to_owned()))
        .collect();
    if let Some(path) = &args.file {
        let text = tokio::fs::read_to_string(path)
            .await
            .map_err(|e| input_error(format!("cannot read {}: {e}", path.display())))?;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if !line.is_empty() && !line.starts_with('#') {
                raw.push((line.to_owned(), format!("{}:{}", path.display(), i + 1)));
            }
        }
    }
    if raw.is_empty() {
        return Err(input_error("nothing to purge: give URLs or --file"));
    }
    crate::app::check_targets(raw, kind).map_err(input_error)
}

fn progress(len: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(len),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{spinner} {bar:40} {pos}/{len} purged ({elapsed})")
    {
        bar.set_style(style);
    }
    bar
}
