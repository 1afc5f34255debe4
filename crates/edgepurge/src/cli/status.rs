//! `status`: the queue of every lane (from the store) and, from the running server's
//! `/healthz`, what each lane is doing and why (waiting until when, parked for quota, down,
//! missing credentials) and its sources.

use super::{admin_failure, print_json, CliResult, Ctx};
use crate::clock::{local_time, parse_rfc3339_ms};
use crate::config::Config;
use crate::store::LaneDepth;
use serde_json::{json, Value};

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// One JSON object: `{"lanes": [...], "fanout": [...], "server_error": ..., "sources":
    /// [...] | null, "sources_error": ...}`, each lane's queue as in the admin API's `GET
    /// /v1/status` and, when the server answers, its state as in `GET /v1/providers`;
    /// `fanout`: per account, targets not yet fanned out into its nodes' lanes.
    #[arg(long)]
    pub json: bool,
    /// Where the running server listens, for its lanes' states and its sources (default:
    /// the config's `server.listen`).
    #[arg(long, value_name = "HOST:PORT")]
    pub server: Option<std::net::SocketAddr>,
}

pub async fn run(ctx: &Ctx, args: StatusArgs) -> CliResult {
    let cfg = ctx.config().await?;
    let admin = ctx.admin(&cfg, false).await?;
    let (depths, fanout) = admin.status().await.map_err(admin_failure)?;
    // What lanes are doing, and the sources, live in the server: asked over HTTP.
    let health = server_health(&cfg, args.server).await;
    let states: Vec<Value> = match &health {
        Ok(body) => body["lanes"].as_array().cloned().unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let server_error = match &health {
        Err(e) => Some(e.clone()),
        Ok(body) if body.get("lanes").is_none() => Some(format!(
            "the server shows only its status ({}) without the admin token; set [admin] \
             token_env or token_file",
            body["status"].as_str().unwrap_or("?")
        )),
        Ok(_) => None,
    };
    let sources = if cfg.sources.is_empty() {
        None
    } else {
        Some(match &health {
            Ok(body) => match body.get("sources").and_then(Value::as_array) {
                Some(list) => Ok(list.clone()),
                None => Err(
                    "the server shows no sources (without the admin token only the status is \
                     shown; set [admin] token_env)"
                        .to_owned(),
                ),
            },
            Err(e) => Err(e.clone()),
        })
    };
    let lanes = merge(&depths, &states);
    if args.json {
        let (list, error) = match &sources {
            Some(Ok(list)) => (Some(list.clone()), None),
            Some(Err(e)) => (None, Some(e.clone())),
            None => (None, None),
        };
        let lanes: Vec<Value> = lanes
            .iter()
            .map(|(depth, state)| {
                let mut v = crate::server::views::lane_queue_view(depth, admin.serves(&depth.lane));
                if let (Value::Object(map), Some(Value::Object(s))) = (&mut v, state) {
                    for (k, val) in s {
                        if k != "lane" {
                            map.insert(k.clone(), val.clone());
                        }
                    }
                }
                v
            })
            .collect();
        let fanout: Vec<Value> = fanout
            .iter()
            .map(|f| crate::server::views::fanout_queue_view(f, admin.has_account(&f.account)))
            .collect();
        return print_json(&json!({
            "lanes": lanes,
            "fanout": fanout,
            "server_error": server_error,
            "sources": list,
            "sources_error": error,
        }));
    }
    print_sources(sources);
    if let Some(e) = &server_error {
        println!("lane states: {e}\n");
    }
    for f in &fanout {
        println!(
            "account {}: {} targets not yet fanned out to its nodes (in no lane's PENDING \
             yet), oldest from {}{}",
            f.account,
            f.targets,
            f.oldest_at.map(local_time).unwrap_or_else(|| "-".into()),
            if admin.has_account(&f.account) == Some(false) {
                format!(
                    "; unserved: the config has no account {:?} (removed or renamed?), so \
                     nothing sends them until it is back under that name (they go to the \
                     nodes it has then; they are not discarded)",
                    f.account
                )
            } else {
                String::new()
            }
        );
    }
    if lanes.is_empty() {
        if fanout.is_empty() {
            println!("no queued, waiting, in-flight or dead work");
        }
        return Ok(());
    }
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::NOTHING);
    table.set_header([
        "LANE",
        "STATE",
        "PENDING",
        "WAITING",
        "IN FLIGHT",
        "DEAD",
        "OLDEST PENDING",
        "LAST ERROR",
    ]);
    for (d, state) in &lanes {
        let (text, error) = match state {
            Some(s) => (
                state_text(s, quota_reset(&cfg, &d.lane)),
                s["last_error"]
                    .as_str()
                    .map(|e| crate::purgers::snippet(e, 80))
                    .unwrap_or_else(|| "-".into()),
            ),
            // Dead letters alone wait for nobody: only live work is "unserved".
            None if admin.serves(&d.lane) == Some(false) && d.has_live_work() => (
                "unserved: no account of the config serves it".to_owned(),
                "-".to_owned(),
            ),
            None => ("-".to_owned(), "-".to_owned()),
        };
        // Every cell printable (what the server or a provider said never reaches the terminal
        // raw), the table's own line breaks kept.
        table.add_row([
            edgepurge_core::printable(&d.lane).into_owned(),
            edgepurge_core::printable(&text).into_owned(),
            d.pending.to_string(),
            d.waiting_batches.to_string(),
            d.inflight_batches.to_string(),
            d.dead_batches.to_string(),
            d.oldest_pending_at
                .map(local_time)
                .unwrap_or_else(|| "-".into()),
            error,
        ]);
    }
    println!("{table}");
    for (d, _) in lanes
        .iter()
        .filter(|(d, _)| admin.serves(&d.lane) == Some(false) && d.has_live_work())
    {
        println!(
            "\nlane {}: no provider account of the config serves it (removed or renamed?), so \
             nothing sends its {} pending job(s) and {} waiting batch(es). Add the account back \
             under its old name to purge them, or `edgepurge discard --lane {}` to move them to \
             the dead letters.",
            edgepurge_core::printable(&d.lane),
            d.pending,
            d.waiting_batches,
            edgepurge_core::printable(&d.lane)
        );
    }
    Ok(())
}

/// Every lane with work in the store or run by the server, with the server's view of it.
fn merge<'a>(depths: &[LaneDepth], states: &'a [Value]) -> Vec<(LaneDepth, Option<&'a Value>)> {
    let mut out: Vec<(LaneDepth, Option<&Value>)> = depths
        .iter()
        .map(|d| {
            (
                d.clone(),
                states.iter().find(|s| s["lane"] == d.lane.as_str()),
            )
        })
        .collect();
    for s in states {
        let Some(lane) = s["lane"].as_str() else {
            continue;
        };
        if !out.iter().any(|(d, _)| d.lane == lane) {
            let depth = LaneDepth {
                lane: lane.to_owned(),
                ..LaneDepth::default()
            };
            out.push((depth, Some(s)));
        }
    }
    out.sort_by(|a, b| a.0.lane.cmp(&b.0.lane));
    out
}

/// When the quota day of `lane`'s provider account resets next (epoch ms), if known.
fn quota_reset(cfg: &Config, lane: &str) -> Option<i64> {
    let account = cfg
        .providers
        .values()
        .find(|p| p.lanes().iter().any(|l| l == lane))?;
    let offset = account.limits().quota_utc_offset_s;
    Some(crate::dispatch::policy::quota_day(crate::clock::now_ms(), offset).1)
}

/// A lane's state in words, with its times in local time: `waiting until …`, `parked until
/// … (today's quota is spent)`, `down since …`.
fn state_text(s: &Value, quota_reset: Option<i64>) -> String {
    let time = |key: &str| s[key].as_str().and_then(parse_rfc3339_ms);
    let at = |key: &str| time(key).map(local_time).unwrap_or_else(|| "?".into());
    let mut text = match s["state"].as_str().unwrap_or("-") {
        "waiting" => {
            let why = if time("until").is_some() && time("until") == quota_reset {
                " (today's quota is used up; it resets then)"
            } else {
                ""
            };
            format!("waiting until {}{why}", at("until"))
        }
        "parked" => format!(
            "parked until {} (the provider says today's quota is spent)",
            at("until")
        ),
        "down" => format!(
            "down since {} (provider failing; next probe {})",
            at("since"),
            at("next_probe_at")
        ),
        "restarting" => format!("restarting at {}", at("at")),
        "standby" => "standby (another process holds the lane)".to_owned(),
        other => other.to_owned(),
    };
    if s["missing_credentials"] == true {
        text.push_str("; credentials missing");
    }
    text
}

/// The running server's `/healthz` (with the admin token when one is configured; a server on
/// this machine answers loopback callers without it). `Err` says why it could not be read.
async fn server_health(
    cfg: &Config,
    server: Option<std::net::SocketAddr>,
) -> Result<Value, String> {
    let mut addr = server.unwrap_or(cfg.server.listen);
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let url = format!("http://{addr}/healthz");
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(3))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
    let mut req = http.get(&url);
    // The admin token goes in the clear: only to this machine or the configured server.
    let trusted = addr.ip().is_loopback() || server.is_none() || server == Some(cfg.server.listen);
    match &cfg.admin.token {
        Some(token) if trusted => {
            let token = token.load().await?;
            req = req.bearer_auth(token.expose());
        }
        Some(_) => eprintln!(
            "note: the admin token is not sent to {addr} over plain HTTP (only to loopback or \
             server.listen); without it only the status is shown"
        ),
        None => {}
    }
    let resp = req.send().await.map_err(|e| {
        format!(
            "the server at {addr} does not answer ({e}); is `edgepurge serve` running there? \
             (--server HOST:PORT)"
        )
    })?;
    resp.json()
        .await
        .map_err(|e| format!("{url}: not the JSON of /healthz: {e}"))
}

fn print_sources(sources: Option<Result<Vec<serde_json::Value>, String>>) {
    let list = match sources {
        None => return,
        Some(Err(e)) => {
            println!("sources: {e}\n");
            return;
        }
        Some(Ok(list)) => list,
    };
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::NOTHING);
    table.set_header([
        "SOURCE",
        "KIND",
        "CONNECTED",
        "LAG",
        "RECEIVED",
        "ACKED",
        "DEAD-LETTERED",
        "RETRIED",
        "LAST ERROR",
    ]);
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::Null => "-".to_owned(),
        serde_json::Value::String(s) => crate::purgers::snippet(s, 80),
        other => other.to_string(),
    };
    for s in &list {
        table.add_row(
            [
                "name",
                "kind",
                "connected",
                "lag",
                "received",
                "acked",
                "dead_lettered",
                "retried",
                "last_error",
            ]
            .map(|k| text(&s[k])),
        );
    }
    println!("{table}\n");
}
