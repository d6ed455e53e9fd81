//! Quality reports, drift distributions, alerts and serving samples (migration 0008).
//!
//! "One open alert per fingerprint" is a partial unique index, so, as with job runs, replicas
//! need no lock: opening is "add an occurrence to the open one, else insert", and an insert
//! that loses a race to another replica's falls back to adding an occurrence.

use sqlx::any::AnyRow;

use super::{Args, SqlRegistry, advance_counter, db, get, now, to_i64, to_u64};
use crate::{
    Alert, AlertQuery, NewAlert, QualityRecord, RegistryError, RollupStep, ServingBucket,
    ServingSample,
};

const ALERT_COUNTER: &str = "alert";
const MAX_LIMIT: usize = 1000;
const ALERT_COLUMNS: &str = "id, fingerprint, alert_kind, view_name, severity, alert_status, \
     summary, details, opened_at, updated_at, resolved_at, occurrences, deliveries";

fn json_text(v: &serde_json::Value, what: &str) -> Result<String, RegistryError> {
    serde_json::to_string(v)
        .map_err(|e| RegistryError::Invalid(format!("{what} does not serialise: {e}")))
}

fn json_of(text: &str, what: &str) -> Result<serde_json::Value, RegistryError> {
    serde_json::from_str(text)
        .map_err(|e| RegistryError::Corrupt(format!("{what} is not JSON: {e}")))
}

fn check_limit(limit: usize) -> Result<usize, RegistryError> {
    match limit {
        0 => Ok(100),
        l if l <= MAX_LIMIT => Ok(l),
        l => Err(RegistryError::Invalid(format!(
            "limit must be between 1 and {MAX_LIMIT}, got {l}"
        ))),
    }
}

fn quality_record(row: &AnyRow) -> Result<QualityRecord, RegistryError> {
    let view: String = get(row, "view_name")?;
    Ok(QualityRecord {
        version: to_u64(get(row, "snapshot_version")?, "a snapshot version")?,
        run_id: get::<Option<i64>>(row, "run_id")?
            .map(|r| to_u64(r, "a run id"))
            .transpose()?,
        published: get::<i64>(row, "published")? != 0,
        created_at: get(row, "created_at")?,
        report: json_of(
            &get::<String>(row, "report")?,
            &format!("the quality report of `{view}`"),
        )?,
        view,
    })
}

fn alert(row: &AnyRow) -> Result<Alert, RegistryError> {
    let id = to_u64(get(row, "id")?, "an alert id")?;
    let deliveries = match json_of(&get::<String>(row, "deliveries")?, "an alert's deliveries")? {
        serde_json::Value::Array(a) => a,
        _ => {
            return Err(RegistryError::Corrupt(format!(
                "alert {id}: deliveries are not a list"
            )));
        }
    };
    Ok(Alert {
        id,
        fingerprint: get(row, "fingerprint")?,
        kind: get(row, "alert_kind")?,
        view: get(row, "view_name")?,
        severity: get(row, "severity")?,
        status: get(row, "alert_status")?,
        summary: get(row, "summary")?,
        details: json_of(&get::<String>(row, "details")?, "an alert's details")?,
        opened_at: get(row, "opened_at")?,
        updated_at: get(row, "updated_at")?,
        resolved_at: get(row, "resolved_at")?,
        occurrences: to_u64(get(row, "occurrences")?, "an occurrence count")?,
        deliveries,
    })
}

fn serving_sample(row: &AnyRow) -> Result<ServingSample, RegistryError> {
    let opt = |col: &str| -> Result<Option<u64>, RegistryError> {
        get::<Option<i64>>(row, col)?
            .map(|v| to_u64(v, "a latency"))
            .transpose()
    };
    Ok(ServingSample {
        edge: get(row, "edge_id")?,
        view: get(row, "view_name")?,
        at: get(row, "sampled_at")?,
        window_ms: to_u64(get(row, "window_ms")?, "a window")?,
        lookups: to_u64(get(row, "lookups")?, "a lookup count")?,
        not_found: to_u64(get(row, "not_found")?, "a not-found count")?,
        errors: to_u64(get(row, "errors")?, "an error count")?,
        p50_us: opt("p50_us")?,
        p99_us: opt("p99_us")?,
    })
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

/// Binds a sample's figures, in the order both serving tables list them.
fn bind_counts<'q>(q: AnyQuery<'q>, s: &ServingSample) -> Result<AnyQuery<'q>, RegistryError> {
    let us = |v: Option<u64>| v.map(|v| to_i64(v, "a latency")).transpose();
    Ok(q.bind(to_i64(s.window_ms, "a window")?)
        .bind(to_i64(s.lookups, "a lookup count")?)
        .bind(to_i64(s.not_found, "a not-found count")?)
        .bind(to_i64(s.errors, "an error count")?)
        .bind(us(s.p50_us)?)
        .bind(us(s.p99_us)?))
}

/// Adds one sample to its bucket: counts add up, percentiles keep the worst (written with
/// CASE rather than GREATEST or max(), which SQLite and PostgreSQL spell and treat NULL apart).
const ROLLUP_UPSERT: &str = "INSERT INTO serving_rollup (step_seconds, bucket, edge_id, view_name, \
     reports, window_ms, lookups, not_found, errors, p50_us, p99_us) \
     VALUES ($1, $2, $3, $4, 1, $5, $6, $7, $8, $9, $10) \
     ON CONFLICT (step_seconds, bucket, edge_id, view_name) DO UPDATE SET \
     reports = serving_rollup.reports + 1, \
     window_ms = serving_rollup.window_ms + excluded.window_ms, \
     lookups = serving_rollup.lookups + excluded.lookups, \
     not_found = serving_rollup.not_found + excluded.not_found, \
     errors = serving_rollup.errors + excluded.errors, \
     p50_us = CASE WHEN excluded.p50_us IS NULL THEN serving_rollup.p50_us \
         WHEN serving_rollup.p50_us IS NULL OR excluded.p50_us > serving_rollup.p50_us \
         THEN excluded.p50_us ELSE serving_rollup.p50_us END, \
     p99_us = CASE WHEN excluded.p99_us IS NULL THEN serving_rollup.p99_us \
         WHEN serving_rollup.p99_us IS NULL OR excluded.p99_us > serving_rollup.p99_us \
         THEN excluded.p99_us ELSE serving_rollup.p99_us END";

impl SqlRegistry {
    pub(super) async fn record_quality_impl(&self, r: &QualityRecord) -> Result<(), RegistryError> {
        let report = json_text(&r.report, "a quality report")?;
        sqlx::query(
            "INSERT INTO quality_reports (view_name, snapshot_version, run_id, published, \
             created_at, report) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (view_name, snapshot_version) DO UPDATE SET run_id = excluded.run_id, \
             published = excluded.published, created_at = excluded.created_at, \
             report = excluded.report",
        )
        .bind(&r.view)
        .bind(to_i64(r.version, "the snapshot version")?)
        .bind(r.run_id.map(|i| to_i64(i, "the run id")).transpose()?)
        .bind(i64::from(r.published))
        .bind(&r.created_at)
        .bind(&report)
        .execute(&self.pool)
        .await
        .map_err(db(format!("recording the quality report of `{}`", r.view)))?;
        Ok(())
    }

    pub(super) async fn quality_reports_impl(
        &self,
        view: &str,
        published_only: bool,
        limit: usize,
    ) -> Result<Vec<QualityRecord>, RegistryError> {
        let limit = check_limit(limit)?;
        let filter = if published_only {
            " AND published = 1"
        } else {
            ""
        };
        // The limit is a checked number, written into the statement.
        let sql = format!(
            "SELECT view_name, snapshot_version, run_id, published, created_at, report \
             FROM quality_reports WHERE view_name = $1{filter} \
             ORDER BY snapshot_version DESC LIMIT {limit}"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(view)
            .fetch_all(&self.pool)
            .await
            .map_err(db(format!("listing the quality reports of `{view}`")))?;
        rows.iter().map(quality_record).collect()
    }

    pub(super) async fn quality_report_impl(
        &self,
        view: &str,
        version: u64,
    ) -> Result<Option<QualityRecord>, RegistryError> {
        let Ok(v) = i64::try_from(version) else {
            return Ok(None);
        };
        let row = sqlx::query(
            "SELECT view_name, snapshot_version, run_id, published, created_at, report \
             FROM quality_reports WHERE view_name = $1 AND snapshot_version = $2",
        )
        .bind(view)
        .bind(v)
        .fetch_optional(&self.pool)
        .await
        .map_err(db(format!("reading a quality report of `{view}`")))?;
        row.as_ref().map(quality_record).transpose()
    }

    pub(super) async fn put_distributions_impl(
        &self,
        view: &str,
        key: &str,
        d: &serde_json::Value,
    ) -> Result<(), RegistryError> {
        let text = json_text(d, "distributions")?;
        sqlx::query(
            "INSERT INTO quality_distributions (view_name, dist_key, created_at, distributions) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (view_name, dist_key) DO UPDATE SET \
             created_at = excluded.created_at, distributions = excluded.distributions",
        )
        .bind(view)
        .bind(key)
        .bind(now())
        .bind(&text)
        .execute(&self.pool)
        .await
        .map_err(db(format!("storing distributions `{key}` of `{view}`")))?;
        Ok(())
    }

    pub(super) async fn distributions_impl(
        &self,
        view: &str,
        key: &str,
    ) -> Result<Option<serde_json::Value>, RegistryError> {
        let text: Option<String> = sqlx::query_scalar(
            "SELECT distributions FROM quality_distributions WHERE view_name = $1 AND dist_key = $2",
        )
        .bind(view)
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(db(format!("reading distributions `{key}` of `{view}`")))?;
        text.map(|t| json_of(&t, "stored distributions"))
            .transpose()
    }

    pub(super) async fn prune_distributions_impl(
        &self,
        view: &str,
        keep: &[String],
    ) -> Result<u64, RegistryError> {
        let mut args = Args::default();
        let v = args.text(view);
        let kept: Vec<String> = keep.iter().map(|k| args.text(k.as_str())).collect();
        let filter = if kept.is_empty() {
            String::new()
        } else {
            format!(" AND dist_key NOT IN ({})", kept.join(", "))
        };
        let sql = format!("DELETE FROM quality_distributions WHERE view_name = {v}{filter}");
        args.execute(sql, &self.pool)
            .await
            .map_err(db(format!("pruning the distributions of `{view}`")))
    }

    /// Adds an occurrence to the open alert of `a.fingerprint`, if there is one.
    async fn repeat_alert(
        &self,
        a: &NewAlert,
        details: &str,
    ) -> Result<Option<Alert>, RegistryError> {
        let n = sqlx::query(
            "UPDATE alerts SET occurrences = occurrences + 1, updated_at = $1, summary = $2, \
             details = $3, severity = $4 WHERE fingerprint = $5 AND alert_status = 'open'",
        )
        .bind(now())
        .bind(&a.summary)
        .bind(details)
        .bind(&a.severity)
        .bind(&a.fingerprint)
        .execute(&self.pool)
        .await
        .map_err(db(format!("updating alert `{}`", a.fingerprint)))?
        .rows_affected();
        if n == 0 {
            return Ok(None);
        }
        self.latest_alert(&a.fingerprint).await
    }

    async fn latest_alert(&self, fingerprint: &str) -> Result<Option<Alert>, RegistryError> {
        let sql = format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE fingerprint = $1 ORDER BY id DESC LIMIT 1"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(fingerprint)
            .fetch_optional(&self.pool)
            .await
            .map_err(db(format!("reading alert `{fingerprint}`")))?;
        row.as_ref().map(alert).transpose()
    }

    pub(super) async fn open_alert_impl(
        &self,
        a: &NewAlert,
    ) -> Result<(Alert, bool), RegistryError> {
        if a.fingerprint.trim().is_empty() {
            return Err(RegistryError::Invalid(
                "an alert needs a fingerprint".into(),
            ));
        }
        let details = json_text(&a.details, "an alert's details")?;
        // Twice: a replica that opened the same problem between our update and our insert
        // makes the insert a duplicate, and the second update then finds its alert.
        for _ in 0..2 {
            if let Some(open) = self.repeat_alert(a, &details).await? {
                return Ok((open, false));
            }
            let id = advance_counter(&self.pool, ALERT_COUNTER, 0).await?;
            let at = now();
            let res = sqlx::query(
                "INSERT INTO alerts (id, fingerprint, alert_kind, view_name, severity, \
                 alert_status, summary, details, opened_at, updated_at, resolved_at, \
                 occurrences, deliveries) \
                 VALUES ($1, $2, $3, $4, $5, 'open', $6, $7, $8, $8, NULL, 1, '[]')",
            )
            .bind(to_i64(id, "the alert id")?)
            .bind(&a.fingerprint)
            .bind(&a.kind)
            .bind(a.view.as_deref())
            .bind(&a.severity)
            .bind(&a.summary)
            .bind(&details)
            .bind(&at)
            .execute(&self.pool)
            .await;
            match res {
                Ok(_) => {
                    let opened = self.latest_alert(&a.fingerprint).await?.ok_or_else(|| {
                        RegistryError::Corrupt(format!("alert `{}` vanished", a.fingerprint))
                    })?;
                    return Ok((opened, true));
                }
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => continue,
                Err(e) => return Err(db(format!("opening alert `{}`", a.fingerprint))(e)),
            }
        }
        Err(RegistryError::Invalid(format!(
            "alert `{}` kept being opened and resolved concurrently",
            a.fingerprint
        )))
    }

    pub(super) async fn resolve_alert_impl(
        &self,
        fingerprint: &str,
    ) -> Result<Option<Alert>, RegistryError> {
        let at = now();
        let n = sqlx::query(
            "UPDATE alerts SET alert_status = 'resolved', resolved_at = $1, updated_at = $1 \
             WHERE fingerprint = $2 AND alert_status = 'open'",
        )
        .bind(&at)
        .bind(fingerprint)
        .execute(&self.pool)
        .await
        .map_err(db(format!("resolving alert `{fingerprint}`")))?
        .rows_affected();
        if n == 0 {
            return Ok(None);
        }
        self.latest_alert(fingerprint).await
    }

    pub(super) async fn alerts_impl(&self, q: &AlertQuery) -> Result<Vec<Alert>, RegistryError> {
        let limit = check_limit(q.limit)?;
        let mut args = Args::default();
        let mut filters = Vec::new();
        if let Some(s) = &q.status {
            if s != "open" && s != "resolved" {
                return Err(RegistryError::Invalid(format!(
                    "alert status must be `open` or `resolved`, got `{s}`"
                )));
            }
            filters.push(format!("alert_status = {}", args.text(s.as_str())));
        }
        if let Some(v) = &q.view {
            filters.push(format!("view_name = {}", args.text(v.as_str())));
        }
        let filter = if filters.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", filters.join(" AND "))
        };
        let sql =
            format!("SELECT {ALERT_COLUMNS} FROM alerts{filter} ORDER BY id DESC LIMIT {limit}");
        let rows = args
            .fetch_all(sql, &self.pool)
            .await
            .map_err(db("listing alerts"))?;
        rows.iter().map(alert).collect()
    }

    pub(super) async fn record_delivery_impl(
        &self,
        id: u64,
        delivery: &serde_json::Value,
    ) -> Result<(), RegistryError> {
        let id = to_i64(id, "the alert id")?;
        // Read, append, write back only if nobody wrote in between; deliveries of one alert are
        // few and rarely concurrent, so a short retry loop settles any race.
        for _ in 0..5 {
            let current: Option<String> =
                sqlx::query_scalar("SELECT deliveries FROM alerts WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db(format!("reading the deliveries of alert {id}")))?;
            let Some(current) = current else {
                return Err(RegistryError::Invalid(format!("there is no alert {id}")));
            };
            let mut list = match json_of(&current, "an alert's deliveries")? {
                serde_json::Value::Array(a) => a,
                _ => Vec::new(),
            };
            list.push(delivery.clone());
            let next = json_text(&serde_json::Value::Array(list), "deliveries")?;
            let n =
                sqlx::query("UPDATE alerts SET deliveries = $1 WHERE id = $2 AND deliveries = $3")
                    .bind(&next)
                    .bind(id)
                    .bind(&current)
                    .execute(&self.pool)
                    .await
                    .map_err(db(format!("recording a delivery of alert {id}")))?
                    .rows_affected();
            if n == 1 {
                return Ok(());
            }
        }
        Err(RegistryError::Invalid(format!(
            "the deliveries of alert {id} kept changing under concurrent writers"
        )))
    }

    pub(super) async fn record_serving_impl(
        &self,
        samples: &[ServingSample],
    ) -> Result<(), RegistryError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(db("starting a transaction"))?;
        for s in samples {
            let q = sqlx::query(
                "INSERT INTO serving_samples (edge_id, view_name, sampled_at, window_ms, lookups, \
                 not_found, errors, p50_us, p99_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(&s.edge)
            .bind(&s.view)
            .bind(&s.at);
            bind_counts(q, s)?
                .execute(&mut *tx)
                .await
                .map_err(db(format!("recording what edge `{}` served", s.edge)))?;
            for step in [RollupStep::TenSeconds, RollupStep::Minute] {
                // A stamp not in the control plane's format buckets as a whole.
                let bucket = s.at.get(..step.prefix_len()).unwrap_or(&s.at);
                let q = sqlx::query(ROLLUP_UPSERT)
                    .bind(to_i64(step.seconds(), "a step")?)
                    .bind(bucket)
                    .bind(&s.edge)
                    .bind(&s.view);
                bind_counts(q, s)?
                    .execute(&mut *tx)
                    .await
                    .map_err(db(format!("summing what edge `{}` served", s.edge)))?;
            }
        }
        tx.commit()
            .await
            .map_err(db("committing serving samples"))?;
        Ok(())
    }

    pub(super) async fn serving_samples_impl(
        &self,
        view: Option<&str>,
        since: &str,
    ) -> Result<Vec<ServingSample>, RegistryError> {
        let mut args = Args::default();
        let mut filters = vec![format!("sampled_at >= {}", args.text(since))];
        if let Some(v) = view {
            filters.push(format!("view_name = {}", args.text(v)));
        }
        let sql = format!(
            "SELECT edge_id, view_name, sampled_at, window_ms, lookups, not_found, errors, \
             p50_us, p99_us FROM serving_samples WHERE {} ORDER BY sampled_at, edge_id, view_name",
            filters.join(" AND ")
        );
        let rows = args
            .fetch_all(sql, &self.pool)
            .await
            .map_err(db("listing serving samples"))?;
        rows.iter().map(serving_sample).collect()
    }

    pub(super) async fn serving_rollup_impl(
        &self,
        since: &str,
        step: RollupStep,
    ) -> Result<Vec<ServingBucket>, RegistryError> {
        // The bucket holding `since` is included whole.
        let first = since.get(..step.prefix_len()).unwrap_or(since);
        let rows = sqlx::query(
            "SELECT edge_id, view_name, bucket, reports, window_ms, lookups, not_found, errors, \
             p50_us, p99_us FROM serving_rollup WHERE step_seconds = $1 AND bucket >= $2 \
             ORDER BY bucket, edge_id, view_name",
        )
        .bind(to_i64(step.seconds(), "a step")?)
        .bind(first)
        .fetch_all(&self.pool)
        .await
        .map_err(db("reading summed serving samples"))?;
        rows.iter()
            .map(|row| {
                let opt = |col: &str| -> Result<Option<u64>, RegistryError> {
                    get::<Option<i64>>(row, col)?
                        .map(|v| to_u64(v, "a latency"))
                        .transpose()
                };
                let prefix: String = get(row, "bucket")?;
                Ok(ServingBucket {
                    edge: get(row, "edge_id")?,
                    view: get(row, "view_name")?,
                    start: step.start(&prefix),
                    reports: to_u64(get(row, "reports")?, "a count")?,
                    window_ms: to_u64(get(row, "window_ms")?, "a window")?,
                    lookups: to_u64(get(row, "lookups")?, "a lookup count")?,
                    not_found: to_u64(get(row, "not_found")?, "a not-found count")?,
                    errors: to_u64(get(row, "errors")?, "an error count")?,
                    p50_us: opt("p50_us")?,
                    p99_us: opt("p99_us")?,
                })
            })
            .collect()
    }

    pub(super) async fn prune_serving_impl(&self, before: &str) -> Result<u64, RegistryError> {
        let n = sqlx::query("DELETE FROM serving_samples WHERE sampled_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(db("pruning serving samples"))?
            .rows_affected();
        // Buckets of minutes wholly before `before` (ten-second ones too: their prefixes sort
        // below the minute's).
        let minute = before
            .get(..RollupStep::Minute.prefix_len())
            .unwrap_or(before);
        sqlx::query("DELETE FROM serving_rollup WHERE bucket < $1")
            .bind(minute)
            .execute(&self.pool)
            .await
            .map_err(db("pruning summed serving samples"))?;
        Ok(n)
    }
}
