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
}

pub async fn serve(ctx: &Ctx, args: ServeArgs) -> CliResult {
    let mut cfg = ctx.config().await?;
    if let Some(listen) = args.listen {
        cfg.server.listen = listen;
    }
    let listener = tokio::net::TcpListener::bind(cfg.server.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (in use? pass --listen or set [server] listen)",
                cfg.server.listen
            )
        })?;
    let service = Service::start(cfg, listener).await?;
    // Tests and scripts read the bound address from this line.
    println!("listening on {}", service.addr);
    wait_for_signal().await;
    tracing::info!("shutting down: finishing requests in flight");
    service.stop().await?;
    tracing::info!("stopped");
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

pub async fn check(ctx: &Ctx) -> CliResult {
    let Some(path) = &ctx.config_path else {
        return Err(input_error(
            "config check needs --config FILE (or EDGEPURGE_CONFIG)",
        ));
    };
    let cfg = ctx.config().await?;
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
