//! Stored rules: CLI rules plus a copy of the config file's rules.

use super::db_err;
use crate::store::*;
use rusqlite::{params, Connection, OptionalExtension, Transaction};

fn bump_version(tx: &Transaction<'_>) -> StoreResult<()> {
    tx.execute("UPDATE meta SET v = v + 1 WHERE k = 'rules_version'", [])
        .map_err(db_err("bump rules version"))?;
    Ok(())
}

pub(super) fn version(conn: &Connection) -> StoreResult<i64> {
    conn.query_row("SELECT v FROM meta WHERE k = 'rules_version'", [], |r| {
        r.get(0)
    })
    .map_err(db_err("read rules version"))
}

pub(super) fn list(conn: &Connection) -> StoreResult<Vec<StoredRule>> {
    let mut stmt = conn
        .prepare("SELECT name, spec, origin, created_at FROM rules ORDER BY name")
        .map_err(db_err("list rules"))?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })
        .map_err(db_err("list rules"))?;
    let mut out = Vec::new();
    for row in rows {
        let (name, spec, origin, created_at) = row.map_err(db_err("list rules"))?;
        let spec: RuleSpec = serde_json::from_str(&spec)
            .map_err(|e| StoreError::Corrupt(format!("rule {name:?}: {e}")))?;
        let origin = match origin.as_str() {
            "config" => RuleOrigin::Config,
            _ => RuleOrigin::Cli,
        };
        out.push(StoredRule {
            spec,
            origin,
            created_at,
        });
    }
    Ok(out)
}

fn origin_of(tx: &Transaction<'_>, name: &str) -> StoreResult<Option<String>> {
    tx.query_row("SELECT origin FROM rules WHERE name = ?1", [name], |r| {
        r.get(0)
    })
    .optional()
    .map_err(db_err("read rule"))
}

fn encode(spec: &RuleSpec) -> StoreResult<String> {
    serde_json::to_string(spec).map_err(|e| StoreError::Corrupt(format!("encode rule: {e}")))
}

pub(super) fn add(
    tx: &Transaction<'_>,
    spec: &RuleSpec,
    origin: RuleOrigin,
    now: Ms,
) -> StoreResult<()> {
    if let Some(existing) = origin_of(tx, &spec.name)? {
        return Err(StoreError::Conflict(format!(
            "rule {:?} already exists ({existing} rule); names are unique and rules immutable: \
             delete it first to replace it",
            spec.name
        )));
    }
    tx.execute(
        "INSERT INTO rules (name, spec, origin, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)",
        params![spec.name, encode(spec)?, origin.as_str(), now],
    )
    .map_err(db_err("insert rule"))?;
    bump_version(tx)
}

pub(super) fn sync_config(tx: &Transaction<'_>, specs: &[RuleSpec], now: Ms) -> StoreResult<()> {
    for spec in specs {
        if origin_of(tx, &spec.name)?.as_deref() == Some("cli") {
            return Err(StoreError::Conflict(format!(
                "rule {:?} is defined in the config file and was also added with `edgepurge rule \
                 add`; rename one of them or run `edgepurge rule delete {}`",
                spec.name, spec.name
            )));
        }
    }
    let old: Vec<(String, String, i64)> = {
        let mut stmt = tx
            .prepare("SELECT name, spec, created_at FROM rules WHERE origin = 'config'")
            .map_err(db_err("read config rules"))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(db_err("read config rules"))?;
        rows.collect::<Result<_, _>>()
            .map_err(db_err("read config rules"))?
    };
    let mut changed = old.len() != specs.len();
    tx.execute("DELETE FROM rules WHERE origin = 'config'", [])
        .map_err(db_err("replace config rules"))?;
    for spec in specs {
        let text = encode(spec)?;
        let previous = old.iter().find(|(n, _, _)| n == &spec.name);
        changed |= previous.is_none_or(|(_, s, _)| s != &text);
        let created = previous.map_or(now, |(_, _, c)| *c);
        tx.execute(
            "INSERT INTO rules (name, spec, origin, created_at, updated_at) \
             VALUES (?1, ?2, 'config', ?3, ?4)",
            params![spec.name, text, created, now],
        )
        .map_err(db_err("insert config rule"))?;
    }
    if changed {
        bump_version(tx)?;
    }
    Ok(())
}

fn require_cli_rule(tx: &Transaction<'_>, name: &str, action: &str) -> StoreResult<()> {
    match origin_of(tx, name)?.as_deref() {
        None => Err(StoreError::NotFound(format!(
            "no rule named {name:?} (see `edgepurge rule list`)"
        ))),
        Some("config") => Err(StoreError::Conflict(format!(
            "rule {name:?} comes from the config file; {action} it there and restart"
        ))),
        Some(_) => Ok(()),
    }
}

pub(super) fn delete(tx: &Transaction<'_>, name: &str) -> StoreResult<()> {
    require_cli_rule(tx, name, "remove")?;
    tx.execute("DELETE FROM rules WHERE name = ?1", [name])
        .map_err(db_err("delete rule"))?;
    bump_version(tx)
}

pub(super) fn set_enabled(
    tx: &Transaction<'_>,
    name: &str,
    enabled: bool,
    now: Ms,
) -> StoreResult<()> {
    require_cli_rule(tx, name, "change")?;
    let text: String = tx
        .query_row("SELECT spec FROM rules WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .map_err(db_err("read rule"))?;
    let mut spec: RuleSpec = serde_json::from_str(&text)
        .map_err(|e| StoreError::Corrupt(format!("rule {name:?}: {e}")))?;
    if spec.enabled == enabled {
        return Ok(());
    }
    spec.enabled = enabled;
    tx.execute(
        "UPDATE rules SET spec = ?2, updated_at = ?3 WHERE name = ?1",
        params![name, encode(&spec)?, now],
    )
    .map_err(db_err("update rule"))?;
    bump_version(tx)
}
