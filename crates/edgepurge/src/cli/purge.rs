//! `purge`: queue URLs or directories by hand and send them through a provider account.
//!
//! The targets go through the same durable queue as events. This process sends them itself
//! unless a running server holds the provider's lane, in which case the server does; either
//! way this command waits for the outcome (unless `--no-wait`).

use super::{input_error, parse_duration_ms, CliResult, Ctx, Failure};
use crate::clock::{now_ms, Clock};
use crate::dispatch::Dispatcher;
use crate::store::{EventInfo, IngestRecord, LaneJob, LogQuery, Status};
use edgepurge_core::TargetKind;
use std::collections::BTreeMap;
use std::path::PathBuf;
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
}

const CHUNK: usize = 500;

pub async fn run(ctx: &Ctx, args: PurgeArgs) -> CliResult {
    let cfg = ctx.config()?;
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
    let Some(pcfg) = cfg.providers.get(&provider) else {
        return Err(input_error(format!(
            "provider {provider:?} is not in the config"
        )));
    };
    let kind = if args.dir {
        TargetKind::Dir
    } else {
        TargetKind::Url
    };
    let targets = collect_targets(&args, kind)?;
    let lanes = pcfg.lanes();
    let records: Vec<IngestRecord> = targets
        .iter()
        .map(|t| IngestRecord {
            event: EventInfo {
                format: "manual".into(),
                name: "manual".into(),
                bucket: String::new(),
                key: t.clone(),
                id: None,
            },
            rule: None,
            provider: Some(provider.clone()),
            targets: vec![t.clone()],
            jobs: lanes
                .iter()
                .map(|lane| LaneJob {
                    lane: lane.clone(),
                    kind,
                    target: t.clone(),
                })
                .collect(),
            note: None,
        })
        .collect();

    let store = ctx.store(&cfg)?;
    let mut ids = Vec::with_capacity(records.len());
    for chunk in records.chunks(CHUNK) {
        let receipt = store.ingest(chunk.to_vec(), now_ms()).await?;
        ids.extend(receipt.purge_ids);
    }
    if args.no_wait {
        println!(
            "queued {} {}(s) for provider {provider}; a running server sends them",
            ids.len(),
            kind.as_str()
        );
        return Ok(());
    }

    let shutdown = CancellationToken::new();
    let dispatcher = Dispatcher::start(
        store.clone(),
        pcfg.build()
            .map_err(|e| anyhow::anyhow!("provider {provider}: {e}"))?,
        cfg.dispatch.clone(),
        Clock::system(),
        shutdown.clone(),
    );
    let bar = progress(ids.len() as u64);
    let deadline = tokio::time::Instant::now() + Duration::from_millis(timeout_ms as u64);
    let mut open: Vec<i64> = ids.clone();
    let mut done: BTreeMap<i64, crate::store::LogRecord> = BTreeMap::new();
    let mut finished = dispatcher.finished();
    while !open.is_empty() {
        let mut still = Vec::new();
        for chunk in open.chunks(CHUNK) {
            let recs = store
                .log(LogQuery {
                    ids: Some(chunk.to_vec()),
                    limit: chunk.len(),
                    ..Default::default()
                })
                .await?;
            for r in recs {
                if r.status.is_final() {
                    done.insert(r.id, r);
                } else {
                    still.push(r.id);
                }
            }
        }
        open = still;
        bar.set_position(done.len() as u64);
        if open.is_empty() || tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::select! {
            _ = finished.changed() => {},
            _ = tokio::time::sleep(Duration::from_millis(500)) => {},
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    bar.finish_and_clear();
    dispatcher.stop().await;

    let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
    for r in done.values() {
        *by_status.entry(r.status.as_str()).or_default() += 1;
    }
    let mut summary: Vec<String> = by_status.iter().map(|(s, n)| format!("{n} {s}")).collect();
    if !open.is_empty() {
        summary.push(format!("{} still queued", open.len()));
    }
    println!("{}: {}", provider, summary.join(", "));
    let mut tasks: Vec<&str> = done.values().filter_map(|r| r.task_id.as_deref()).collect();
    tasks.sort_unstable();
    tasks.dedup();
    if !tasks.is_empty() {
        println!("task ids: {}", tasks.join(" "));
    }
    for r in done
        .values()
        .filter(|r| r.status != Status::Succeeded)
        .take(20)
    {
        println!(
            "  {} {}: {}",
            r.status.as_str(),
            r.key,
            r.error.as_deref().unwrap_or("")
        );
    }
    let failed = done
        .values()
        .filter(|r| r.status != Status::Succeeded)
        .count();
    if failed > 0 || !open.is_empty() {
        return Err(Failure {
            code: 1,
            error: anyhow::anyhow!(
                "{failed} target(s) failed and {} are still queued; see `edgepurge log` \
                 (queued ones are sent by a running server or the next `edgepurge purge`)",
                open.len()
            ),
        });
    }
    Ok(())
}

fn collect_targets(args: &PurgeArgs, kind: TargetKind) -> Result<Vec<String>, Failure> {
    let mut raw: Vec<(String, String)> = args
        .urls
        .iter()
        .map(|u| (u.clone(), "argument".to_owned()))
        .collect();
    if let Some(path) = &args.file {
        let text = std::fs::read_to_string(path)
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
    let mut out = Vec::with_capacity(raw.len());
    let mut seen = std::collections::HashSet::new();
    for (text, at) in raw {
        let url = url::Url::parse(&text)
            .map_err(|e| input_error(format!("{at}: {text:?} is not a URL ({e})")))?;
        if url.scheme() != "http" && url.scheme() != "https" || url.host_str().is_none() {
            return Err(input_error(format!(
                "{at}: {text:?} must be an http(s) URL with a host"
            )));
        }
        if kind == TargetKind::Dir && !url.path().ends_with('/') {
            return Err(input_error(format!(
                "{at}: {text:?}: a directory purge target must end with /"
            )));
        }
        let s = url.to_string();
        if seen.insert(s.clone()) {
            out.push(s);
        }
    }
    Ok(out)
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
