//! Stored rules: CLI rules plus a copy of the config file's rules.

use super::{db_err, sql};
use crate::store::*;
use rusqlite::{params, Connection, OptionalExtension};

fn bump_version(conn: &Connection) -> StoreResult<()> {
    conn.execute(sql::RULES_BUMP, [])
        .map_err(db_err("bump rules version"))?;
    Ok(())
}

pub(super) fn version(conn: &Connection) -> StoreResult<i64> {
    conn.query_row(sql::RULES_VERSION, [], |r| r.get(0))
        .map_err(db_err("read rules version"))
}

pub(super) fn list(conn: &Connection) -> StoreResult<Vec<StoredRule>> {
    let mut stmt = conn
        .prepare_cached(sql::RULES_LIST)
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

fn origin_of(conn: &Connection, name: &str) -> StoreResult<Option<String>> {
    conn.query_row(sql::RULE_ORIGIN, [name], |r| r.get(0))
        .optional()
        .map_err(db_err("read rule"))
}

fn encode(spec: &RuleSpec) -> StoreResult<String> {
    serde_json::to_string(spec).map_err(|e| StoreError::Corrupt(format!("encode rule: {e}")))
}

pub(super) fn add(
    conn: &Connection,
    spec: &RuleSpec,
    origin: RuleOrigin,
    now: Ms,
) -> StoreResult<()> {
    if let Some(existing) = origin_of(conn, &spec.name)? {
        return Err(StoreError::Conflict(format!(
            "rule {:?} already exists ({existing} rule); names are unique and rules immutable: \
             delete it first to replace it",
            spec.name
        )));
    }
    conn.execute(
        sql::RULE_INSERT,
        params![spec.name, encode(spec)?, origin.as_str(), now, now],
    )
    .map_err(db_err("insert rule"))?;
    bump_version(conn)
}

pub(super) fn sync_config(
    conn: &Connection,
    specs: &[RuleSpec],
    now: Ms,
) -> StoreResult<ConfigRulesChange> {
    for spec in specs {
        if origin_of(conn, &spec.name)?.as_deref() == Some("cli") {
            return Err(StoreError::Conflict(format!(
                "rule {:?} is defined in the config file and was also added with `edgepurge rule \
                 add`; rename one of them or run `edgepurge rule delete {}`",
                spec.name, spec.name
            )));
        }
    }
    let old: Vec<(String, String, i64)> = {
        let mut stmt = conn
            .prepare(sql::RULES_CONFIG)
            .map_err(db_err("read config rules"))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(db_err("read config rules"))?;
        rows.collect::<Result<_, _>>()
            .map_err(db_err("read config rules"))?
    };
    conn.execute(sql::RULES_CONFIG_DELETE, [])
        .map_err(db_err("replace config rules"))?;
    let mut new = Vec::with_capacity(specs.len());
    for spec in specs {
        let text = encode(spec)?;
        let previous = old.iter().find(|(n, _, _)| n == &spec.name);
        let created = previous.map_or(now, |(_, _, c)| *c);
        conn.execute(
            sql::RULE_INSERT,
            params![spec.name, text, "config", created, now],
        )
        .map_err(db_err("insert config rule"))?;
        new.push((spec.name.clone(), text));
    }
    let old: Vec<(String, String)> = old.into_iter().map(|(n, t, _)| (n, t)).collect();
    let change = ConfigRulesChange::between(&old, &new);
    if !change.is_empty() {
        bump_version(conn)?;
    }
    Ok(change)
}

fn require_cli_rule(conn: &Connection, name: &str) -> StoreResult<()> {
    match origin_of(conn, name)?.as_deref() {
        None => Err(StoreError::NotFound(format!(
            "no rule named {name:?} (see `edgepurge rule list`)"
        ))),
        Some("config") => Err(StoreError::Conflict(crate::rules::owned_by_config(name))),
        Some(_) => Ok(()),
    }
}

pub(super) fn delete(conn: &Connection, name: &str) -> StoreResult<()> {
    require_cli_rule(conn, name)?;
    conn.execute(sql::RULE_DELETE, [name])
        .map_err(db_err("delete rule"))?;
    bump_version(conn)
}

pub(super) fn set_enabled(
    conn: &Connection,
    name: &str,
    enabled: bool,
    now: Ms,
) -> StoreResult<()> {
    require_cli_rule(conn, name)?;
    let text: String = conn
        .query_row(sql::RULE_SPEC, [name], |r| r.get(0))
        .map_err(db_err("read rule"))?;
    let mut spec: RuleSpec = serde_json::from_str(&text)
        .map_err(|e| StoreError::Corrupt(format!("rule {name:?}: {e}")))?;
    if spec.enabled == enabled {
        return Ok(());
    }
    spec.enabled = enabled;
    conn.execute(sql::RULE_UPDATE_SPEC, params![name, encode(&spec)?, now])
        .map_err(db_err("update rule"))?;
    bump_version(conn)
}
