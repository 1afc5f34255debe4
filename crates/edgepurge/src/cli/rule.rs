//! `rule add|list|show|delete|enable|disable`. Flags mirror the rule fields.

use super::{admin_failure, fmt_time, print_json, CliResult, Ctx};
use edgepurge_core::{Mode, RuleSpec};

#[derive(Debug, clap::Subcommand)]
pub enum RuleCommand {
    /// Add a rule (names are unique; rules are immutable: delete and add to change one).
    Add(Box<AddArgs>),
    /// List every rule (config file rules and added ones).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one rule.
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Delete an added rule.
    Delete { name: String },
    /// Enable an added rule.
    Enable { name: String },
    /// Disable an added rule (events no longer match it; the rule is kept).
    Disable { name: String },
}

#[derive(Debug, clap::Args)]
pub struct AddArgs {
    #[arg(long)]
    pub name: String,
    /// Bucket name (for COS: name-appid).
    #[arg(long)]
    pub bucket: String,
    /// Event types, repeatable or comma-separated: put, post, copy,
    /// complete-multipart-upload, delete, delete-marker, created, removed, or native names.
    #[arg(long = "event", required = true, value_delimiter = ',')]
    pub events: Vec<String>,
    #[arg(long)]
    pub prefix: Option<String>,
    #[arg(long)]
    pub suffix: Option<String>,
    /// CDN domain with scheme, repeatable.
    #[arg(long = "domain", required = true, value_delimiter = ',')]
    pub domains: Vec<String>,
    /// Provider account name from [providers.NAME]; repeatable or comma-separated to purge
    /// through several accounts (e.g. a mainland China CDN and a global one).
    #[arg(long = "provider", required = true, value_delimiter = ',')]
    pub providers: Vec<String>,
    /// url (purge the object's URL), dir (its parent directory) or tag (surrogate keys).
    #[arg(long, default_value = "url")]
    pub mode: Mode,
    #[arg(long)]
    pub index_document: Option<String>,
    #[arg(long)]
    pub strip_prefix: Option<String>,
    /// With --mode tag: surrogate-key template, repeatable, e.g. `{seg1}` or `product-{stem}`.
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// With --mode dir: let a key at the domain's root purge the whole domain (needed when
    /// the prefix names no folder).
    #[arg(long)]
    pub allow_host_purge: bool,
    /// After each purge, fetch the purged URLs through the CDN and check they are fresh
    /// (compared with the event's ETag or size); purge once more if still stale.
    #[arg(long)]
    pub verify: bool,
    /// Add the rule disabled.
    #[arg(long)]
    pub disabled: bool,
}

pub async fn run(ctx: &Ctx, cmd: RuleCommand) -> CliResult {
    let cfg = ctx.config().await?;
    let creates = matches!(cmd, RuleCommand::Add(_));
    let admin = ctx.admin(&cfg, creates).await?;
    match cmd {
        RuleCommand::Add(a) => {
            let a = *a;
            let spec = RuleSpec {
                name: a.name,
                bucket: a.bucket,
                events: a.events,
                prefix: a.prefix,
                suffix: a.suffix,
                domains: a.domains,
                // One account keeps the `provider` key, so the rule reads as a user writes it.
                provider: match a.providers.as_slice() {
                    [one] => one.clone(),
                    _ => String::new(),
                },
                providers: if a.providers.len() == 1 {
                    Vec::new()
                } else {
                    a.providers
                },
                mode: a.mode,
                index_document: a.index_document,
                strip_prefix: a.strip_prefix,
                tags: a.tags,
                allow_host_purge: a.allow_host_purge,
                verify: a.verify,
                enabled: !a.disabled,
            };
            if !admin.checks_providers() {
                eprintln!(
                    "note: no --config given, so provider {} was not checked",
                    spec.provider_names().collect::<Vec<_>>().join(", ")
                );
            }
            let rule = admin.add_rule(spec).await.map_err(admin_failure)?;
            println!(
                "rule {:?} added; a running server applies it within a second",
                rule.spec.name
            );
            Ok(())
        }
        RuleCommand::List { json } => {
            // With a config file: its rules as written now (what a server started now, or
            // reloaded with SIGHUP, applies) and the added ones; without: what the store has.
            let mut rules = if admin.checks_providers() {
                admin.rules_as_configured().await
            } else {
                admin.rules().await
            }
            .map_err(admin_failure)?;
            rules.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
            if json {
                return print_json(&rules);
            }
            if rules.is_empty() {
                println!("no rules (add one with `edgepurge rule add` or [[rules]] in the config)");
                return Ok(());
            }
            let mut table = comfy_table::Table::new();
            table.load_preset(comfy_table::presets::NOTHING);
            table.set_header([
                "NAME", "ORIGIN", "ENABLED", "BUCKET", "EVENTS", "PREFIX", "SUFFIX", "MODE",
                "PROVIDER", "DOMAINS",
            ]);
            for r in rules {
                let s = r.spec;
                let providers = s.provider_names().collect::<Vec<_>>().join(",");
                table.add_row([
                    s.name,
                    r.origin.as_str().to_owned(),
                    if s.enabled { "yes" } else { "no" }.to_owned(),
                    s.bucket,
                    s.events.join(","),
                    s.prefix.unwrap_or_else(|| "-".into()),
                    s.suffix.unwrap_or_else(|| "-".into()),
                    s.mode.as_str().to_owned(),
                    providers,
                    s.domains.join(","),
                ]);
            }
            println!("{table}");
            Ok(())
        }
        RuleCommand::Show { name, json } => {
            let r = admin.rule(&name).await.map_err(admin_failure)?;
            if json {
                return print_json(&r);
            }
            let mut text = toml::to_string_pretty(&r.spec)?;
            text.push_str(&format!(
                "# origin: {}, created {}\n",
                r.origin.as_str(),
                fmt_time(r.created_at)
            ));
            print!("{text}");
            Ok(())
        }
        RuleCommand::Delete { name } => {
            admin.delete_rule(&name).await.map_err(admin_failure)?;
            println!("rule {name:?} deleted");
            Ok(())
        }
        RuleCommand::Enable { name } => {
            admin
                .set_rule_enabled(&name, true)
                .await
                .map_err(admin_failure)?;
            println!("rule {name:?} enabled");
            Ok(())
        }
        RuleCommand::Disable { name } => {
            admin
                .set_rule_enabled(&name, false)
                .await
                .map_err(admin_failure)?;
            println!("rule {name:?} disabled");
            Ok(())
        }
    }
}
