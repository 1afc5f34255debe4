//! `serve` and `config check`.

use super::{input_error, CliResult, Ctx, Failure};
use crate::service::Service;
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

/// SIGHUP: the config file's rules are read again and put in force. A file with problems,
/// or one whose providers changed (their lanes are running), is refused and the rules in
/// force stay; other sections take effect at the next restart. All of it is said in the log.
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
    let later: Vec<&str> = [
        (
            "[server]",
            format!("{:?}", cfg.server) != format!("{:?}", running.server),
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
        (
            "[admin]",
            format!("{:?}", cfg.admin) != format!("{:?}", running.admin),
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

pub async fn check(ctx: &Ctx) -> CliResult {
    let Some(path) = &ctx.config_path else {
        return Err(input_error(
            "config check needs --config FILE (or EDGEPURGE_CONFIG)",
        ));
    };
    let cfg = ctx.config().await?;
    if let Some(src) = &cfg.store.url {
        // Never the URL itself: it holds the database password.
        src.check_present().map_err(|e| {
            input_error(format!(
                "{}: store: the PostgreSQL URL cannot be read: {e}",
                path.display()
            ))
        })?;
    }
    let missing = cfg.missing_secrets();
    if !missing.is_empty() {
        for m in &missing {
            eprintln!("error: {m}");
        }
        return Err(input_error(format!(
            "{}: {} provider credential(s) missing (listed above)",
            path.display(),
            missing.len()
        )));
    }
    let mut warnings = Vec::new();
    for p in cfg.providers.values() {
        if let Err(e) = p.build() {
            warnings.push(e.to_string());
        }
    }
    warnings.extend(
        ctx.admin(&cfg, false)
            .await?
            .stored_rule_problems()
            .await
            .map_err(super::admin_failure)?,
    );
    // Loose permissions are worth fixing but do not make the config wrong.
    for w in cfg.secret_warnings() {
        eprintln!("warning: {w}");
    }
    println!(
        "{}: ok ({} provider(s), {} rule(s); store {}; listen {})",
        path.display(),
        cfg.providers.len(),
        cfg.rules.len(),
        cfg.store.describe(),
        cfg.server.listen
    );
    if warnings.is_empty() {
        Ok(())
    } else {
        for w in &warnings {
            eprintln!("warning: {w}");
        }
        Err(Failure {
            code: 1,
            error: anyhow::anyhow!(
                "{} problem(s) with stored rules or providers",
                warnings.len()
            ),
        })
    }
}
