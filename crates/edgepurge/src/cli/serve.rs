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
    let running = format!("{:?}", cfg.providers);
    let service = Service::start(cfg, listener).await?;
    // Tests and scripts read the bound address from this line.
    println!("listening on {}", service.addr);
    while let Signal::Reload = wait_for_signal().await {
        reload(ctx, &service, &running).await;
    }
    tracing::info!("shutting down: finishing requests in flight");
    service.stop().await?;
    tracing::info!("stopped");
    Ok(())
}

/// SIGHUP: the config file's rules are read again and put in force; a file with problems is
/// refused and the rules in force stay (both said in the log). Provider changes need a
/// restart (their lanes are running), which the log says too.
async fn reload(ctx: &Ctx, service: &Service, running_providers: &str) {
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
    if format!("{:?}", cfg.providers) != running_providers {
        tracing::warn!(
            "SIGHUP: providers changed in the file; they take effect at the next restart \
             (rules are reloaded now)"
        );
    }
    match service.apply_config_rules(&cfg).await {
        Ok(()) => tracing::info!(rules = cfg.rules.len(), "SIGHUP: config rules reloaded"),
        Err(e) => tracing::error!("SIGHUP: cannot store the config's rules: {e:#}"),
    }
}

enum Signal {
    Stop,
    Reload,
}

async fn wait_for_signal() -> Signal {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) {
            (Ok(mut term), Ok(mut hup)) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => Signal::Stop,
                    _ = term.recv() => Signal::Stop,
                    _ = hup.recv() => Signal::Reload,
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
                Signal::Stop
            }
        }
    }
    #[cfg(not(unix))]
    {
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
        cfg.store.path.display(),
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
