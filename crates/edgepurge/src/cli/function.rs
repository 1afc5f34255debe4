//! Function mode on the command line: `function` (the runtime loop of a serverless
//! function), `handle` (one body, for any other platform or a shell pipeline) and `package`
//! (a zip ready to upload).

use super::{input_error, CliResult, Ctx, Failure};
use crate::sources::function::{self, runtime, Handler};
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::AsyncReadExt;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    edgepurge handle -c edgepurge.toml --event cos-event.json\n  \
    aws s3api ... | edgepurge handle --event - --deadline-ms 10000\n\n\
    Exit status: 0 every target purged (or nothing to purge), 1 some target not purged, \
    2 the body or the config is unusable. Standard output holds one JSON object either way.")]
pub struct HandleArgs {
    /// The event body (JSON as the store sends it); `-` reads standard input.
    #[arg(long, default_value = "-")]
    pub event: PathBuf,
    /// Give up on what is not purged after this many milliseconds (retries included).
    #[arg(long, default_value_t = 30_000)]
    pub deadline_ms: u64,
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Run by the function's `bootstrap` (see `edgepurge package`). The \
    platform is found from SCF_RUNTIME_API/SCF_RUNTIME_API_PORT (Tencent SCF) or \
    AWS_LAMBDA_RUNTIME_API (AWS Lambda). The config comes from EDGEPURGE_CONFIG_TOML (its \
    text) or EDGEPURGE_CONFIG / --config (a file).\n\nExample (what the packaged \
    `bootstrap` runs):\n  edgepurge function --config edgepurge.toml"
)]
pub struct FunctionArgs {}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PackagePlatform {
    /// Tencent Cloud SCF, custom runtime.
    Scf,
    /// AWS Lambda, runtime provided.al2023.
    Lambda,
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "The zip holds `bootstrap` (this edgepurge binary, or --binary) and \
    `edgepurge.toml` (the config given with --config). SCF runs CentOS 7 (glibc 2.17): package \
    a static build, see docs/sources/tencent-scf.md.\n\nExample:\n  \
    edgepurge package scf --config edgepurge.toml -o function.zip"
)]
pub struct PackageArgs {
    /// The platform the zip is for.
    #[arg(value_enum)]
    pub platform: PackagePlatform,
    /// Where to write the zip.
    #[arg(long, short = 'o', default_value = "function.zip")]
    pub output: PathBuf,
    /// The edgepurge binary to ship (default: the one running).
    #[arg(long)]
    pub binary: Option<PathBuf>,
    /// Print `{"output", "bytes", "platform", "warnings"}` instead of sentences.
    #[arg(long)]
    pub json: bool,
}

/// Reads the config function mode runs with; a bad one is an input error (exit 2).
async fn config(ctx: &Ctx) -> Result<crate::config::Config, Failure> {
    function::load_config(ctx.config_path.as_deref())
        .await
        .map_err(|e| input_error(format!("{e:#}")))
}

pub async fn handle(ctx: &Ctx, args: HandleArgs) -> CliResult {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(args.deadline_ms);
    let answer = |value: serde_json::Value| super::print_json(&value);
    let fail = |code: u8, error: String| -> CliResult {
        answer(serde_json::json!({ "ok": false, "error": error }))?;
        Err(Failure {
            code,
            error: anyhow::anyhow!("{error}"),
        })
    };
    let cfg = match config(ctx).await {
        Ok(c) => c,
        Err(f) => return fail(2, format!("{:#}", f.error)),
    };
    let handler = match Handler::from_config(&cfg) {
        Ok(h) => h,
        Err(e) => return fail(2, format!("{e:#}")),
    };
    let body = if args.event.as_os_str() == "-" {
        let mut buf = Vec::new();
        if let Err(e) = tokio::io::stdin().read_to_end(&mut buf).await {
            return fail(2, format!("cannot read standard input: {e}"));
        }
        buf
    } else {
        match tokio::fs::read(&args.event).await {
            Ok(b) => b,
            Err(e) => return fail(2, format!("cannot read {}: {e}", args.event.display())),
        }
    };
    let started = tokio::time::Instant::now();
    match handler.handle(&body, deadline).await {
        Ok(handled) => {
            handled.log("-", started.elapsed().as_millis());
            answer(serde_json::to_value(&handled)?)?;
            if handled.ok() {
                Ok(())
            } else {
                Err(Failure {
                    code: 1,
                    error: anyhow::anyhow!("{}", handled.failure_summary()),
                })
            }
        }
        Err(e) => fail(2, format!("{}: {e}", args.event.display())),
    }
}

pub async fn function(ctx: &Ctx, _args: FunctionArgs) -> CliResult {
    let Some(platform) = runtime::Platform::detect(|k| std::env::var(k).ok()) else {
        return Err(input_error(
            "no function runtime found: neither SCF_RUNTIME_API nor AWS_LAMBDA_RUNTIME_API is \
             set (to handle one body elsewhere, use `edgepurge handle`)",
        ));
    };
    // A bad config is reported to the platform (Lambda's init error, SCF's start-up log).
    let handler = match config(ctx).await {
        Ok(cfg) => Handler::from_config(&cfg),
        Err(f) => Err(f.error),
    };
    runtime::run(platform, handler).await.map_err(Failure::from)
}

pub async fn package(ctx: &Ctx, args: PackageArgs) -> CliResult {
    let Some(config_path) = &ctx.config_path else {
        return Err(input_error(
            "give the function's config with --config FILE (it goes into the zip)",
        ));
    };
    let text = tokio::fs::read_to_string(config_path)
        .await
        .map_err(|e| input_error(format!("cannot read {}: {e}", config_path.display())))?;
    let cfg = crate::config::from_text(config_path, &text)
        .map_err(|e| input_error(format!("invalid configuration:\n{e}")))?;
    function::check_config(&cfg).map_err(|e| input_error(format!("{e:#}")))?;
    let binary = match &args.binary {
        Some(b) => b.clone(),
        None => std::env::current_exe()
            .map_err(|e| anyhow::anyhow!("cannot find this binary: {e}; give --binary"))?,
    };
    let written = function::package::write_zip(&binary, &text, &args.output)?;
    let scf = args.platform == PackagePlatform::Scf;
    let warnings = function::package::warnings(&cfg, &binary, &args.output, scf);
    if args.json {
        return super::print_json(&serde_json::json!({
            "output": args.output.display().to_string(),
            "bytes": written,
            "platform": if scf { "scf" } else { "lambda" },
            "warnings": warnings,
        }));
    }
    println!(
        "wrote {} ({} bytes) for {}: bootstrap + edgepurge.toml",
        args.output.display(),
        written,
        match args.platform {
            PackagePlatform::Scf => "Tencent SCF (runtime CustomRuntime)",
            PackagePlatform::Lambda => "AWS Lambda (runtime provided.al2023)",
        }
    );
    for warning in warnings {
        eprintln!("warning: {warning}");
    }
    Ok(())
}

/// The arguments to run with. Started as a function's `bootstrap` with none (the platform
/// runs it so), edgepurge runs `function`, with the `edgepurge.toml` beside it unless
/// `EDGEPURGE_CONFIG` or `EDGEPURGE_CONFIG_TOML` says otherwise.
pub fn bootstrap_args(args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let named_bootstrap = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .is_some_and(|n| n == "bootstrap");
    if !named_bootstrap || args.len() > 1 {
        return args;
    }
    let mut out = vec![args[0].clone(), "function".into()];
    let configured = ["EDGEPURGE_CONFIG", "EDGEPURGE_CONFIG_TOML"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()));
    if !configured {
        // Beside the `bootstrap` the platform ran (even when it is a link), else beside the
        // executable.
        let beside_argv0 = std::path::Path::new(&args[0])
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(std::path::Path::to_path_buf);
        if let Some(dir) = beside_argv0.or_else(|| {
            std::env::current_exe()
                .ok()
                .and_then(|e| e.parent().map(std::path::Path::to_path_buf))
        }) {
            out.push("--config".into());
            out.push(dir.join(function::package::CONFIG_NAME).into_os_string());
        }
    }
    out
}
