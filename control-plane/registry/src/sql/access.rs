//! Tokens, custom roles, settings and the audit chain (migration 0009).
//!
//! Appending to the audit chain starts by updating its one-row head, which takes the write
//! lock on both databases (SQLite's database lock, PostgreSQL's row lock), so appenders queue
//! behind each other and each reads the hash it chains from after the previous one committed.

use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use super::{SqlRegistry, db, get, now, to_i64, to_u64};
use crate::{
    AuditFields, AuditHead, AuditQuery, AuditRecord, NewAuditEvent, RegistryError, RoleRecord,
    TokenRecord, audit_hash,
};

const TOKEN_COLUMNS: &str = "id, token_name, role_name, secret_sha256, created_at, created_by, \
     expires_at, revoked_at, revoked_by";
const AUDIT_COLUMNS: &str = "seq, at, actor, action, resource, detail, origin, remote, \
     origin_seq, prev_hash, hash";
const MAX_AUDIT_LIMIT: usize = 10_000;

fn token(row: &AnyRow) -> Result<TokenRecord, RegistryError> {
    Ok(TokenRecord {
        id: get(row, "id")?,
        name: get(row, "token_name")?,
        role: get(row, "role_name")?,
        secret_sha256: get(row, "secret_sha256")?,
        created_at: get(row, "created_at")?,
        created_by: get(row, "created_by")?,
        expires_at: get(row, "expires_at")?,
        revoked_at: get(row, "revoked_at")?,
        revoked_by: get(row, "revoked_by")?,
    })
}

fn audit_record(row: &AnyRow) -> Result<AuditRecord, RegistryError> {
    Ok(AuditRecord {
        seq: to_u64(get(row, "seq")?, "an audit sequence number")?,
        at: get(row, "at")?,
        actor: get(row, "actor")?,
        action: get(row, "action")?,
        resource: get(row, "resource")?,
        detail: get(row, "detail")?,
        origin: get(row, "origin")?,
        remote: get(row, "remote")?,
        origin_seq: get::<Option<i64>>(row, "origin_seq")?
            .map(|v| to_u64(v, "an origin sequence number"))
            .transpose()?,
        prev_hash: get(row, "prev_hash")?,
        hash: get(row, "hash")?,
    })
}

impl SqlRegistry {
    pub(super) async fn create_token_impl(&self, t: &TokenRecord) -> Result<(), RegistryError> {
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO access_tokens ({TOKEN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, NULL)"
        )))
        .bind(&t.id)
        .bind(&t.name)
        .bind(&t.role)
        .bind(&t.secret_sha256)
        .bind(&t.created_at)
        .bind(&t.created_by)
        .bind(&t.expires_at)
        .execute(&self.pool)
        .await;
        match r {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(
                RegistryError::Duplicate(format!("an active token is named `{}`", t.name)),
            ),
            Err(e) => Err(db(format!("storing token `{}`", t.name))(e)),
        }
    }

    pub(super) async fn tokens_impl(
        &self,
        id: Option<&str>,
    ) -> Result<Vec<TokenRecord>, RegistryError> {
        let rows = match id {
            Some(id) => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {TOKEN_COLUMNS} FROM access_tokens WHERE id = $1"
                )))
                .bind(id)
                .fetch_all(&self.pool)
                .await
            }
            None => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {TOKEN_COLUMNS} FROM access_tokens ORDER BY created_at, id"
                )))
                .fetch_all(&self.pool)
                .await
            }
        }
        .map_err(db("reading tokens"))?;
        rows.iter().map(token).collect()
    }

    pub(super) async fn revoke_token_impl(
        &self,
        id_or_name: &str,
        by: &str,
    ) -> Result<Option<TokenRecord>, RegistryError> {
        let at = now();
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE access_tokens SET revoked_at = $1, revoked_by = $2 \
             WHERE (id = $3 OR token_name = $3) AND revoked_at IS NULL RETURNING {TOKEN_COLUMNS}"
        )))
        .bind(&at)
        .bind(by)
        .bind(id_or_name)
        .fetch_optional(&self.pool)
        .await
        .map_err(db(format!("revoking token `{id_or_name}`")))?;
        row.as_ref().map(token).transpose()
    }

    pub(super) async fn put_role_impl(&self, r: &RoleRecord) -> Result<bool, RegistryError> {
        let permissions = serde_json::to_string(&r.permissions)
            .map_err(|e| RegistryError::Invalid(format!("role `{}`: {e}", r.name)))?;
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(db("starting a role transaction"))?;
        let replaced = sqlx::query("DELETE FROM access_roles WHERE role_name = $1")
            .bind(&r.name)
            .execute(&mut *tx)
            .await
            .map_err(db(format!("replacing role `{}`", r.name)))?
            .rows_affected()
            > 0;
        sqlx::query(
            "INSERT INTO access_roles (role_name, description, permissions, created_at, \
             created_by) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&r.name)
        .bind(&r.description)
        .bind(&permissions)
        .bind(&r.created_at)
        .bind(&r.created_by)
        .execute(&mut *tx)
        .await
        .map_err(db(format!("storing role `{}`", r.name)))?;
        tx.commit()
            .await
            .map_err(db(format!("storing role `{}`", r.name)))?;
        Ok(replaced)
    }

    pub(super) async fn roles_impl(&self) -> Result<Vec<RoleRecord>, RegistryError> {
        let rows = sqlx::query(
            "SELECT role_name, description, permissions, created_at, created_by FROM access_roles",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db("reading roles"))?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let name: String = get(row, "role_name")?;
            let text: String = get(row, "permissions")?;
            let permissions = serde_json::from_str(&text).map_err(|e| {
                RegistryError::Corrupt(format!("the permissions of role `{name}`: {e}"))
            })?;
            out.push(RoleRecord {
                description: get(row, "description")?,
                created_at: get(row, "created_at")?,
                created_by: get(row, "created_by")?,
                permissions,
                name,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    pub(super) async fn delete_role_impl(&self, name: &str) -> Result<bool, RegistryError> {
        let n = sqlx::query("DELETE FROM access_roles WHERE role_name = $1")
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(db(format!("deleting role `{name}`")))?
            .rows_affected();
        Ok(n > 0)
    }

    pub(super) async fn setting_impl(&self, name: &str) -> Result<Option<String>, RegistryError> {
        sqlx::query_scalar("SELECT setting_value FROM settings WHERE setting_name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(db(format!("reading setting `{name}`")))
    }

    pub(super) async fn init_setting_impl(
        &self,
        name: &str,
        value: &str,
    ) -> Result<String, RegistryError> {
        sqlx::query(
            "INSERT INTO settings (setting_name, setting_value) VALUES ($1, $2) \
             ON CONFLICT (setting_name) DO NOTHING",
        )
        .bind(name)
        .bind(value)
        .execute(&self.pool)
        .await
        .map_err(db(format!("storing setting `{name}`")))?;
        self.setting_impl(name).await?.ok_or_else(|| {
            RegistryError::Corrupt(format!("setting `{name}` vanished after it was stored"))
        })
    }

    pub(super) async fn append_audit_impl(
        &self,
        events: &[NewAuditEvent],
    ) -> Result<Vec<AuditRecord>, RegistryError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(db("starting an audit transaction"))?;
        let out = append_in(&mut tx, events).await?;
        tx.commit().await.map_err(db("committing audit records"))?;
        Ok(out)
    }

    pub(super) async fn audit_impl(
        &self,
        q: &AuditQuery,
    ) -> Result<Vec<AuditRecord>, RegistryError> {
        let limit = match q.limit {
            0 => 1000,
            l if l <= MAX_AUDIT_LIMIT => l,
            l => {
                return Err(RegistryError::Invalid(format!(
                    "limit must be between 1 and {MAX_AUDIT_LIMIT}, got {l}"
                )));
            }
        };
        let mut sql = format!("SELECT {AUDIT_COLUMNS} FROM audit_log WHERE 1 = 1");
        let mut binds: Vec<String> = Vec::new();
        let mut add = |sql: &mut String, clause: &str, v: String| {
            binds.push(v);
            sql.push_str(&clause.replace('?', &format!("${}", binds.len())));
        };
        let after = match q.after {
            Some(a) => to_i64(a, "`after`")?,
            None => 0,
        };
        // The sequence bound is a checked number, written into the statement.
        sql.push_str(&format!(" AND seq > {after}"));
        if let Some(b) = q.before {
            sql.push_str(&format!(" AND seq < {}", to_i64(b, "`before`")?));
        }
        if let Some(a) = &q.actor {
            add(&mut sql, " AND actor = ?", a.clone());
        }
        if let Some(a) = &q.action {
            add(&mut sql, " AND action = ?", a.clone());
        }
        if let Some(r) = &q.resource {
            if r.ends_with('/') {
                // A prefix by substr, not LIKE (no escaping) nor a range (PostgreSQL compares
                // text by collation); the length is a number, written into the statement.
                let n = r.chars().count();
                add(
                    &mut sql,
                    &format!(" AND substr(resource, 1, {n}) = ?"),
                    r.clone(),
                );
            } else {
                add(&mut sql, " AND resource = ?", r.clone());
            }
        }
        if let Some(s) = &q.since {
            add(&mut sql, " AND at >= ?", s.clone());
        }
        if let Some(u) = &q.until {
            add(&mut sql, " AND at <= ?", u.clone());
        }
        let order = if q.newest_first { "DESC" } else { "ASC" };
        sql.push_str(&format!(" ORDER BY seq {order} LIMIT {limit}"));
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for b in &binds {
            query = query.bind(b);
        }
        let rows = query
            .fetch_all(&self.pool)
            .await
            .map_err(db("reading the audit log"))?;
        rows.iter().map(audit_record).collect()
    }

    pub(super) async fn audit_head_impl(&self) -> Result<AuditHead, RegistryError> {
        let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(db("reading the audit head"))?;
        Ok(AuditHead {
            seq: to_u64(get(&head, "seq")?, "the audit head")?,
            hash: get(&head, "hash")?,
        })
    }
}

/// Appends `events` to the chain inside the caller's transaction (a registry change and its
/// audit record commit together).
pub(super) async fn append_in(
    conn: &mut AnyConnection,
    events: &[NewAuditEvent],
) -> Result<Vec<AuditRecord>, RegistryError> {
    // The write lock first (see the module's docs), then the head it protects.
    sqlx::query("UPDATE audit_head SET seq = seq WHERE id = 1")
        .execute(&mut *conn)
        .await
        .map_err(db("locking the audit head"))?;
    let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
        .fetch_one(&mut *conn)
        .await
        .map_err(db("reading the audit head"))?;
    let mut seq = to_u64(get(&head, "seq")?, "the audit head")?;
    let mut prev: String = get(&head, "hash")?;
    let mut out = Vec::with_capacity(events.len());
    for e in events {
        if let Some(os) = e.origin_seq {
            let seen: Option<i64> = sqlx::query_scalar(
                "SELECT seq FROM audit_log WHERE origin = $1 AND origin_seq = $2",
            )
            .bind(&e.origin)
            .bind(to_i64(os, "an origin sequence number")?)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db("checking for a resent audit record"))?;
            if seen.is_some() {
                continue;
            }
        }
        seq += 1;
        let detail = serde_json::to_string(&e.detail)
            .map_err(|err| RegistryError::Invalid(format!("audit detail: {err}")))?;
        let hash = audit_hash(
            &prev,
            seq,
            AuditFields {
                at: &e.at,
                actor: &e.actor,
                action: &e.action,
                resource: &e.resource,
                detail: &detail,
                origin: &e.origin,
                remote: e.remote.as_deref(),
                origin_seq: e.origin_seq,
            },
        );
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO audit_log ({AUDIT_COLUMNS}) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        )))
        .bind(to_i64(seq, "an audit sequence number")?)
        .bind(&e.at)
        .bind(&e.actor)
        .bind(&e.action)
        .bind(&e.resource)
        .bind(&detail)
        .bind(&e.origin)
        .bind(&e.remote)
        .bind(
            e.origin_seq
                .map(|s| to_i64(s, "an origin sequence number"))
                .transpose()?,
        )
        .bind(&prev)
        .bind(&hash)
        .execute(&mut *conn)
        .await
        .map_err(db("appending to the audit log"))?;
        out.push(AuditRecord {
            seq,
            at: e.at.clone(),
            actor: e.actor.clone(),
            action: e.action.clone(),
            resource: e.resource.clone(),
            detail,
            origin: e.origin.clone(),
            remote: e.remote.clone(),
            origin_seq: e.origin_seq,
            prev_hash: std::mem::replace(&mut prev, hash.clone()),
            hash,
        });
    }
    sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
        .bind(to_i64(seq, "an audit sequence number")?)
        .bind(&prev)
        .execute(&mut *conn)
        .await
        .map_err(db("moving the audit head"))?;
    Ok(out)
}
