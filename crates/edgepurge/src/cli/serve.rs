//! `serve` and `config check`.

use super::{input_error, CliResult, Ctx};
use crate::service::Service;
use crate::validate::Problem;
use anyhow::Context;
use std::net::SocketAddr;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Listen address, overriding [server] listen.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Start even when a provider's credentials are missing (its purges then fail and are
    /// retried, and its lane says why, until they are there).
    #[arg(long)]
    pub allow_missing_secrets: bool,
}

pub async fn serve(ctx: &Ctx, args: ServeArgs) -> CliResult {
    let mut cfg = ctx.config().await?;
    if let Some(listen) = args.listen {
        cfg.server.listen = listen;
    }
    let missing = cfg.missing_secrets();
    if !missing.is_empty() {
        if args.allow_missing_secrets {
            for m in &missing {
                tracing::warn!("{m}: starting anyway (--allow-missing-secrets)");
            }
        } else {
            for m in &missing {
                eprintln!("error: {m}");
            }
            return Err(input_error(
                "provider credentials are missing (listed above): set them, or start with \
                 --allow-missing-secrets",
            ));
        }
    }
    let listener = tokio::net::TcpListener::bind(cfg.server.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (in use? pass --listen or set [server] listen)",
                cfg.server.listen
            )
        })?;
    let running = cfg.clone();
    // Created once: a signal that arrives while a reload runs is not lost.
    let mut signals = Signals::new();
    let service = Service::start(cfg, listener).await?;
    // Tests and scripts read the bound address from this line.
    println!("listening on {}", service.addr);
    while let Signal::Reload = signals.next().await {
        reload(ctx, &service, &running).await;
    }
    tracing::info!("shutting down: finishing requests in flight");
    service.stop().await?;
    tracing::info!("stopped");
    Ok(())
}

/// SIGHUP: the config file's rules and the webhook and admin tokens are read again and put
/// in force. A file with problems, one whose providers changed (their lanes are running), or
/// a token that cannot be read is refused whole, and the rules and tokens in force stay;
/// other sections take effect at the next restart. All of it is said in the log.
async fn reload(ctx: &Ctx, service: &Service, running: &crate::config::Config) {
    let cfg = match ctx.config().await {
        Ok(cfg) => cfg,
        Err(e) => {
            tracing::error!(
                "SIGHUP: the config file was refused; the rules in force stay: {:#}",
                e.error
            );
            return;
        }
    };
    if format!("{:?}", cfg.providers) != format!("{:?}", running.providers) {
        tracing::error!(
            "SIGHUP: providers changed in the file; restart to apply them (nothing was \
             reloaded: a rule for a provider that is not running would match events and purge \
             nothing)"
        );
        return;
    }
    // Tokens are read again below: a changed token source is not a "restart" change.
    let without_token = |server: &crate::config::ServerConfig| {
        let mut s = server.clone();
        s.webhook_token = None;
        format!("{s:?}")
    };
    let later: Vec<&str> = [
        (
            "[server]",
            without_token(&cfg.server) != without_token(&running.server),
        ),
        (
            "[store]",
            format!("{:?}", cfg.store) != format!("{:?}", running.store),
        ),
        (
            "[dispatch]",
            format!("{:?}", cfg.dispatch) != format!("{:?}", running.dispatch),
        ),
        (
            "[log]",
            format!("{:?}", cfg.log) != format!("{:?}", running.log),
        ),
    ]
    .into_iter()
    .filter_map(|(name, changed)| changed.then_some(name))
    .collect();
    if !later.is_empty() {
        tracing::warn!(
            "SIGHUP: {} changed in the file and take effect at the next restart",
            later.join(", ")
        );
    }
    match service.reload_tokens(&cfg).await {
        Ok(changed) => {
            for token in changed {
                tracing::warn!(
                    "SIGHUP: {token} replaced; callers with the old one are refused from now on"
                );
            }
        }
        Err(e) => {
            tracing::error!(
                "SIGHUP: refused, nothing reloaded (the rules and tokens in force stay): {e:#}"
            );
            return;
        }
    }
    match service.apply_config_rules(&cfg).await {
        Ok(in_force) => tracing::info!(rules_in_force = in_force, "SIGHUP: config rules reloaded"),
        Err(e) => tracing::error!("SIGHUP: cannot store the config's rules: {e:#}"),
    }
}

enum Signal {
    Stop,
    Reload,
}

/// SIGTERM, SIGINT (stop) and SIGHUP (reload), listened to for the whole run.
struct Signals {
    #[cfg(unix)]
    streams: Option<(
        tokio::signal::unix::Signal,
        tokio::signal::unix::Signal,
        tokio::signal::unix::Signal,
    )>,
}

impl Signals {
    fn new() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let streams = match (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
                signal(SignalKind::hangup()),
            ) {
                (Ok(t), Ok(i), Ok(h)) => Some((t, i, h)),
                _ => None,
            };
            Signals { streams }
        }
        #[cfg(not(unix))]
        {
            Signals {}
        }
    }

    async fn next(&mut self) -> Signal {
        #[cfg(unix)]
        if let Some((term, int, hup)) = &mut self.streams {
            return tokio::select! {
                _ = term.recv() => Signal::Stop,
                _ = int.recv() => Signal::Stop,
                _ = hup.recv() => Signal::Reload,
            };
        }
        let _ = tokio::signal::ctrl_c().await;
        Signal::Stop
    }
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// One JSON object: `{"config", "ok", "problems": [{"at", "message"}], "warnings",
    /// "summary"}` (exit status as without it).
    #[arg(long)]
    pub json: bool,
}

/// `config check`: every problem found, each with its place (the file's problems, secrets
/// that cannot be read, providers that cannot be built, rules added with `rule add` that
/// this config breaks), and `ok` only when there is none. Any problem: exit 2.
pub async fn check(ctx: &Ctx, args: CheckArgs) -> CliResult {
    let Some(path) = &ctx.config_path else {
        return Err(input_error(
            "config check needs --config FILE (or EDGEPURGE_CONFIG)",
        ));
    };
    let file = path.display().to_string();
    let place = |at: &str| format!("{file}: {at}");
    let mut problems: Vec<Problem> = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    let mut summary = None;
    match ctx.config_checked().await {
        Err(e) => problems.extend(e.problems),
        Ok(cfg) => {
            // Never the PostgreSQL URL itself: it holds the database password.
            let url_missing = match &cfg.store.url {
                Some(src) => src.check_present().err().map(|e| Problem {
                    at: place("store"),
                    message: format!("the PostgreSQL URL cannot be read: {e}"),
                }),
                None => None,
            };
            let tokens = [
                ("server.webhook_token", cfg.server.webhook_token.as_ref()),
                ("admin.token", cfg.admin.token.as_ref()),
            ];
            for (at, src) in tokens {
                if let Some(Err(e)) = src.map(|s| s.check_present()) {
                    problems.push(Problem {
                        at: place(at),
                        message: e,
                    });
                }
            }
            problems.extend(cfg.missing_secrets().into_iter().map(|p| Problem {
                at: place(&p.at),
                message: p.message,
            }));
            for (name, p) in &cfg.providers {
                if let Err(e) = p.build() {
                    problems.push(Problem {
                        at: place(&format!("providers.{name}")),
                        message: e.to_string(),
                    });
                }
            }
            match url_missing {
                Some(p) => problems.push(p),
                // The rules added with `rule add` must still pass against this config.
                None => {
                    let admin = ctx.admin(&cfg, false).await?;
                    let stored = admin
                        .stored_rule_problems()
                        .await
                        .map_err(super::admin_failure)?;
                    // Work queued for an account this config no longer has is not wrong,
                    // but nothing will send it.
                    let unserved = admin.unserved_lanes().await.map_err(super::admin_failure)?;
                    warnings.extend(unserved.iter().map(|d| {
                        format!(
                            "{}: lane {:?} holds {} pending job(s), {} waiting and {} in-flight \
                             batch(es) that no provider account of this config serves (removed \
                             or renamed?): add the account back under its old name, or run \
                             `edgepurge discard --lane {}`",
                            cfg.store.describe(),
                            d.lane,
                            d.pending,
                            d.waiting_batches,
                            d.inflight_batches,
                            d.lane
                        )
                    }));
                    let fanout = admin
                        .unserved_fanout()
                        .await
                        .map_err(super::admin_failure)?;
                    warnings.extend(fanout.iter().map(|f| {
                        format!(
                            "{}: {} target(s) wait to be fanned out to the nodes of provider \
                             account {:?}, which this config does not have (removed or \
                             renamed?): they wait until it is back under that name",
                            cfg.store.describe(),
                            f.targets,
                            f.account
                        )
                    }));
                    problems.extend(stored.into_iter().map(|message| Problem {
                        at: format!(
                            "{} (rules added with `edgepurge rule add`)",
                            cfg.store.describe()
                        ),
                        message,
                    }));
                }
            }
            // Loose permissions are worth fixing but do not make the config wrong.
            warnings.extend(cfg.secret_warnings());
            summary = Some(serde_json::json!({
                "providers": cfg.providers.len(),
                "rules": cfg.rules.len(),
                "store": cfg.store.describe(),
                "listen": cfg.server.listen.to_string(),
            }));
        }
    }
    let failed = || {
        input_error(format!(
            "{file}: {} problem(s){}",
            problems.len(),
            if args.json { "" } else { " (listed above)" }
        ))
    };
    if args.json {
        super::print_json(&serde_json::json!({
            "config": file,
            "ok": problems.is_empty(),
            "problems": problems,
            "warnings": warnings,
            "summary": summary,
        }))?;
        return if problems.is_empty() {
            Ok(())
        } else {
            Err(failed())
        };
    }
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("error: {p}");
        }
        return Err(failed());
    }
    if let Some(s) = summary {
        println!(
            "{file}: ok ({} provider(s), {} rule(s); store {}; listen {})",
            s["providers"],
            s["rules"],
            s["store"].as_str().unwrap_or(""),
            s["listen"].as_str().unwrap_or("")
        );
    }
    Ok(())
}
