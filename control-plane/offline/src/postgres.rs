//! A PostgreSQL query as a source: rows streamed from the server (sqlx `fetch`) into Arrow
//! builders, cut into record batches of 64 Ki rows, so memory holds batches, not row objects.
//!
//! Values arrive in PostgreSQL's binary format and are decoded here for the handful of types a
//! feature can come from; this needs no sqlx type features (chrono, decimal) for timestamps
//! and numerics. The connection is opened read-only (`default_transaction_read_only`): a
//! source is only ever read.

use fstore_spec::userinfo_span;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{
    ArrayRef, BooleanBuilder, Float32Builder, Float64Builder, Int16Builder, Int32Builder,
    Int64Builder, ListBuilder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use futures::TryStreamExt;
use sqlx::postgres::{
    PgConnectOptions, PgConnection, PgDatabaseError, PgErrorPosition, PgValueFormat, PgValueRef,
};
use sqlx::{AssertSqlSafe, Column, ConnectOptions, Connection, Executor, Row, SqlSafeStr};
use sqlx::{Statement, TypeInfo, ValueRef};

use crate::OfflineError;

const BATCH_ROWS: usize = 64 * 1024;
/// Bounds a connection attempt to a host that drops packets, which would otherwise wait for
/// the operating system's TCP timeout (minutes).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// The PostgreSQL types a source column may have, and the Arrow type each is read as.
#[derive(Debug, Clone, Copy, PartialEq)]
enum PgKind {
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Numeric,
    Text,
    /// `char(n)`: blank-padded on the wire; trailing blanks are dropped as PostgreSQL's own
    /// cast to text does.
    Bpchar,
    Bool,
    Timestamp,
    Date,
    Float8Array,
}

impl PgKind {
    fn of(type_name: &str) -> Option<Self> {
        Some(match type_name {
            "INT2" => PgKind::Int2,
            "INT4" => PgKind::Int4,
            "INT8" => PgKind::Int8,
            "FLOAT4" => PgKind::Float4,
            "FLOAT8" => PgKind::Float8,
            "NUMERIC" => PgKind::Numeric,
            "TEXT" | "VARCHAR" | "NAME" => PgKind::Text,
            "BPCHAR" => PgKind::Bpchar,
            "BOOL" => PgKind::Bool,
            "TIMESTAMPTZ" | "TIMESTAMP" => PgKind::Timestamp,
            "DATE" => PgKind::Date,
            "FLOAT8[]" => PgKind::Float8Array,
            _ => return None,
        })
    }

    fn arrow_type(self) -> DataType {
        match self {
            PgKind::Int2 => DataType::Int16,
            PgKind::Int4 => DataType::Int32,
            PgKind::Int8 => DataType::Int64,
            PgKind::Float4 => DataType::Float32,
            PgKind::Float8 | PgKind::Numeric => DataType::Float64,
            PgKind::Text | PgKind::Bpchar => DataType::Utf8,
            PgKind::Bool => DataType::Boolean,
            PgKind::Timestamp | PgKind::Date => DataType::Timestamp(TimeUnit::Microsecond, None),
            PgKind::Float8Array => {
                DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true)))
            }
        }
    }
}

enum Builder {
    I16(Int16Builder),
    I32(Int32Builder),
    I64(Int64Builder),
    F32(Float32Builder),
    F64(Float64Builder),
    Str(StringBuilder),
    Bool(BooleanBuilder),
    Ts(TimestampMicrosecondBuilder),
    List(ListBuilder<Float64Builder>),
}

impl Builder {
    fn new(kind: PgKind) -> Self {
        let n = BATCH_ROWS;
        match kind {
            PgKind::Int2 => Builder::I16(Int16Builder::with_capacity(n)),
            PgKind::Int4 => Builder::I32(Int32Builder::with_capacity(n)),
            PgKind::Int8 => Builder::I64(Int64Builder::with_capacity(n)),
            PgKind::Float4 => Builder::F32(Float32Builder::with_capacity(n)),
            PgKind::Float8 | PgKind::Numeric => Builder::F64(Float64Builder::with_capacity(n)),
            PgKind::Text | PgKind::Bpchar => Builder::Str(StringBuilder::new()),
            PgKind::Bool => Builder::Bool(BooleanBuilder::with_capacity(n)),
            PgKind::Timestamp | PgKind::Date => {
                Builder::Ts(TimestampMicrosecondBuilder::with_capacity(n))
            }
            PgKind::Float8Array => Builder::List(ListBuilder::new(Float64Builder::new())),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::I16(b) => Arc::new(b.finish()),
            Builder::I32(b) => Arc::new(b.finish()),
            Builder::I64(b) => Arc::new(b.finish()),
            Builder::F32(b) => Arc::new(b.finish()),
            Builder::F64(b) => Arc::new(b.finish()),
            Builder::Str(b) => Arc::new(b.finish()),
            Builder::Bool(b) => Arc::new(b.finish()),
            Builder::Ts(b) => Arc::new(b.finish()),
            Builder::List(b) => Arc::new(b.finish()),
        }
    }

    fn append_null(&mut self) {
        match self {
            Builder::I16(b) => b.append_null(),
            Builder::I32(b) => b.append_null(),
            Builder::I64(b) => b.append_null(),
            Builder::F32(b) => b.append_null(),
            Builder::F64(b) => b.append_null(),
            Builder::Str(b) => b.append_null(),
            Builder::Bool(b) => b.append_null(),
            Builder::Ts(b) => b.append_null(),
            Builder::List(b) => b.append_null(),
        }
    }

    /// Appends one binary-format value of `kind`.
    fn append(&mut self, kind: PgKind, v: &[u8]) -> Result<(), String> {
        match (self, kind) {
            (Builder::I16(b), _) => b.append_value(i16::from_be_bytes(fixed(v)?)),
            (Builder::I32(b), _) => b.append_value(i32::from_be_bytes(fixed(v)?)),
            (Builder::I64(b), _) => b.append_value(i64::from_be_bytes(fixed(v)?)),
            (Builder::F32(b), _) => b.append_value(f32::from_be_bytes(fixed(v)?)),
            (Builder::F64(b), PgKind::Numeric) => b.append_value(numeric_to_f64(v)?),
            (Builder::F64(b), _) => b.append_value(f64::from_be_bytes(fixed(v)?)),
            (Builder::Str(b), k) => {
                let s = std::str::from_utf8(v).map_err(|_| "text is not UTF-8".to_string())?;
                b.append_value(if k == PgKind::Bpchar {
                    s.trim_end_matches(' ')
                } else {
                    s
                });
            }
            (Builder::Bool(b), _) => b.append_value(fixed::<1>(v)?[0] != 0),
            (Builder::Ts(b), PgKind::Date) => {
                let days = i32::from_be_bytes(fixed(v)?);
                if days == i32::MAX || days == i32::MIN {
                    return Err("date is ±infinity, which is no point in time".into());
                }
                b.append_value(i64::from(days) * 86_400_000_000 + PG_EPOCH_MICROS);
            }
            (Builder::Ts(b), _) => {
                let us = i64::from_be_bytes(fixed(v)?);
                if us == i64::MAX || us == i64::MIN {
                    return Err("timestamp is ±infinity, which is no point in time".into());
                }
                b.append_value(us.saturating_add(PG_EPOCH_MICROS));
            }
            (Builder::List(b), _) => {
                decode_f64_array(v, b.values())?;
                b.append(true);
            }
        }
        Ok(())
    }
}

fn fixed<const N: usize>(v: &[u8]) -> Result<[u8; N], String> {
    v.try_into()
        .map_err(|_| format!("expected {N} bytes, got {}", v.len()))
}

/// PostgreSQL's binary NUMERIC: digit count, weight (power of 10000 of the first digit), sign,
/// display scale, then base-10000 digits. Rendered as a decimal string so that the conversion
/// to f64 rounds once, correctly.
fn numeric_to_f64(v: &[u8]) -> Result<f64, String> {
    if v.len() < 8 {
        return Err("truncated numeric".into());
    }
    let ndigits = usize::from(u16::from_be_bytes([v[0], v[1]]));
    let weight = i16::from_be_bytes([v[2], v[3]]);
    let sign = u16::from_be_bytes([v[4], v[5]]);
    match sign {
        0xC000 => return Ok(f64::NAN),
        0xD000 => return Ok(f64::INFINITY),
        0xF000 => return Ok(f64::NEG_INFINITY),
        0x0000 | 0x4000 => {}
        other => return Err(format!("numeric with unknown sign {other:#x}")),
    }
    if v.len() != 8 + 2 * ndigits {
        return Err("truncated numeric".into());
    }
    if ndigits == 0 {
        return Ok(0.0);
    }
    let mut s = String::with_capacity(4 * ndigits + 12);
    if sign == 0x4000 {
        s.push('-');
    }
    s.push_str("0.");
    for d in v[8..].chunks_exact(2) {
        let d = u16::from_be_bytes([d[0], d[1]]);
        if d > 9999 {
            return Err(format!("numeric digit {d} out of range"));
        }
        s.push_str(&format!("{d:04}"));
    }
    s.push_str(&format!("e{}", 4 * (i32::from(weight) + 1)));
    s.parse::<f64>().map_err(|e| e.to_string())
}

/// PostgreSQL's binary array: dimensions, a has-nulls flag, the element type, each
/// dimension's length and lower bound, then length-prefixed elements (-1 for null).
fn decode_f64_array(v: &[u8], out: &mut Float64Builder) -> Result<(), String> {
    let int = |at: usize| -> Result<i32, String> {
        v.get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map(i32::from_be_bytes)
            .ok_or_else(|| "truncated array".to_string())
    };
    let ndim = int(0)?;
    if ndim == 0 {
        return Ok(());
    }
    if ndim != 1 {
        return Err(format!(
            "a {ndim}-dimensional array cannot be a list<float64>"
        ));
    }
    let len = usize::try_from(int(12)?).map_err(|_| "negative array length".to_string())?;
    let mut at = 20;
    for _ in 0..len {
        let n = int(at)?;
        at += 4;
        if n < 0 {
            out.append_null();
            continue;
        }
        let bytes = v.get(at..at + 8).ok_or("truncated array")?;
        out.append_value(f64::from_be_bytes(fixed(bytes)?));
        at += 8;
    }
    Ok(())
}

/// Expands `${VAR}` from the environment. Values that land in the URL's user-info (a user
/// name or password, say `${PGPASSWORD}`) are percent-encoded, since a raw password may hold
/// `@`, `/` or `:`; elsewhere (host, database) they are used as they are.
pub(crate) fn expand_env(template: &str) -> Result<String, String> {
    expand_with(template, |name| std::env::var(name).ok())
}

fn expand_with(template: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let userinfo_end = userinfo_span(template).map(|(_, end)| end).unwrap_or(0);
    let mut out = String::with_capacity(template.len());
    let mut at = 0;
    while let Some(i) = template[at..].find("${").map(|i| i + at) {
        let Some(close) = template[i + 2..].find('}').map(|c| c + i + 2) else {
            break;
        };
        out.push_str(&template[at..i]);
        let name = &template[i + 2..close];
        let value = lookup(name).ok_or_else(|| name.to_string())?;
        if i < userinfo_end {
            percent_encode_into(&value, &mut out);
        } else {
            out.push_str(&value);
        }
        at = close + 1;
    }
    out.push_str(&template[at..]);
    Ok(out)
}

fn percent_encode_into(s: &str, out: &mut String) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// The password in an (expanded) URL, decoded, so error text from the driver can be scrubbed
/// of it whatever the driver chose to print.
fn password_of(url: &str) -> Option<String> {
    let (start, at) = userinfo_span(url)?;
    let (_, pw) = url[start..at].split_once(':')?;
    let mut bytes = Vec::with_capacity(pw.len());
    let b = pw.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match (b[i], b.get(i + 1..i + 3)) {
            (b'%', Some(hex)) => match std::str::from_utf8(hex)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                Some(v) => {
                    bytes.push(v);
                    i += 3;
                    continue;
                }
                None => bytes.push(b'%'),
            },
            (c, _) => bytes.push(c),
        }
        i += 1;
    }
    String::from_utf8(bytes).ok().filter(|p| !p.is_empty())
}

/// Reads the rows of `query` against the database at `url_template` (`${VAR}` expanded now),
/// keeping only `columns`, in that order, each as the Arrow type of its PostgreSQL type.
/// `display` is the redacted URL, the only form of it any message carries.
pub(crate) async fn read_postgres(
    url_template: &str,
    query: &str,
    display: &str,
    columns: &[String],
) -> Result<Vec<RecordBatch>, OfflineError> {
    let err = |message: String| OfflineError::Postgres {
        url: display.to_string(),
        message,
    };
    let url = expand_env(url_template).map_err(|var| {
        err(format!(
            "environment variable `{var}` (used in the URL) is not set"
        ))
    })?;
    let secrets: Vec<String> = password_of(&url)
        .into_iter()
        .chain(password_of(url_template))
        .collect();
    let scrub = |text: String| {
        secrets.iter().fold(text, |t, s| {
            if s.len() >= 3 {
                t.replace(s.as_str(), "***")
            } else {
                t
            }
        })
    };
    let opts = PgConnectOptions::from_str(&url)
        .map_err(|e| err(scrub(format!("invalid URL: {e}"))))?
        .application_name("fstore-offline")
        .options([("default_transaction_read_only", "on")]);
    let mut conn = match tokio::time::timeout(CONNECT_TIMEOUT, opts.connect()).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return Err(err(scrub(format!("cannot connect: {e}")))),
        Err(_) => {
            return Err(err(format!(
                "cannot connect: no answer within {} s",
                CONNECT_TIMEOUT.as_secs()
            )));
        }
    };
    let result = read_rows(&mut conn, query, columns).await;
    // Closing politely is best effort; the rows (or the error) are what matter.
    let _ = conn.close().await;
    result.map_err(|e| match e {
        ReadError::Source(m) => err(scrub(m)),
        ReadError::Row { row, message } => OfflineError::Row {
            file: display.to_string(),
            row,
            message,
        },
    })
}

enum ReadError {
    Source(String),
    Row { row: u64, message: String },
}

async fn read_rows(
    conn: &mut PgConnection,
    query: &str,
    columns: &[String],
) -> Result<Vec<RecordBatch>, ReadError> {
    // Prepare first: the statement's columns and types are known before any row, so a missing
    // column or an unsupported type fails even when the query returns nothing.
    let statement = (&mut *conn)
        .prepare(AssertSqlSafe(query.to_string()).into_sql_str())
        .await
        .map_err(|e| ReadError::Source(query_error(&e, query)))?;
    let names: Vec<&str> = statement.columns().iter().map(|c| c.name()).collect();
    let mut picks: Vec<(usize, PgKind)> = Vec::with_capacity(columns.len());
    for c in columns {
        let Some(i) = names.iter().position(|n| n == c) else {
            return Err(ReadError::Source(format!(
                "the query has no column `{c}` (columns: {})",
                names.join(", ")
            )));
        };
        let ty = statement.columns()[i].type_info().name().to_string();
        let kind = PgKind::of(&ty).ok_or_else(|| {
            ReadError::Source(format!(
                "column `{c}` has PostgreSQL type {ty}, which a source cannot hold; cast it in the query to one of int2/int4/int8, float4/float8, numeric, text, bool, timestamptz/timestamp/date or float8[]"
            ))
        })?;
        picks.push((i, kind));
    }
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .zip(&picks)
            .map(|(c, (_, k))| Field::new(c, k.arrow_type(), true))
            .collect::<Vec<_>>(),
    ));
    drop(statement);

    let mut builders: Vec<Builder> = picks.iter().map(|(_, k)| Builder::new(*k)).collect();
    let mut batches = Vec::new();
    let mut in_batch = 0usize;
    let mut row_no = 0u64;
    let mut rows = sqlx::query(AssertSqlSafe(query.to_string())).fetch(&mut *conn);
    while let Some(row) = rows
        .try_next()
        .await
        .map_err(|e| ReadError::Source(query_error(&e, query)))?
    {
        row_no += 1;
        for ((name, (i, kind)), b) in columns.iter().zip(&picks).zip(builders.iter_mut()) {
            let row_err = |m: String| ReadError::Row {
                row: row_no,
                message: format!("column `{name}`: {m}"),
            };
            let value: PgValueRef<'_> = row.try_get_raw(*i).map_err(|e| row_err(e.to_string()))?;
            if value.is_null() {
                b.append_null();
                continue;
            }
            if value.format() != PgValueFormat::Binary {
                return Err(row_err(
                    "the server sent text where binary was asked for".into(),
                ));
            }
            let bytes = value.as_bytes().map_err(|e| row_err(e.to_string()))?;
            b.append(*kind, bytes).map_err(row_err)?;
        }
        in_batch += 1;
        if in_batch == BATCH_ROWS {
            batches.push(finish(&schema, &mut builders)?);
            in_batch = 0;
        }
    }
    if in_batch > 0 {
        batches.push(finish(&schema, &mut builders)?);
    }
    Ok(batches)
}

fn finish(schema: &Arc<Schema>, builders: &mut [Builder]) -> Result<RecordBatch, ReadError> {
    let arrays: Vec<ArrayRef> = builders.iter_mut().map(Builder::finish).collect();
    RecordBatch::try_new(schema.clone(), arrays).map_err(|e| ReadError::Source(e.to_string()))
}

/// A database error with the place in the query it points at, as line and column.
fn query_error(e: &sqlx::Error, query: &str) -> String {
    let Some(db) = e.as_database_error() else {
        return format!("query failed: {e}");
    };
    let mut msg = format!("query failed: {}", db.message());
    if let Some(pg) = db.try_downcast_ref::<PgDatabaseError>() {
        if let Some(PgErrorPosition::Original(pos)) = pg.position() {
            // A 1-based character position into the query.
            let before: String = query.chars().take(pos.saturating_sub(1)).collect();
            let line = before.matches('\n').count() + 1;
            let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            msg.push_str(&format!(" (query line {line}, column {col})"));
        }
        if let Some(hint) = pg.hint() {
            msg.push_str(&format!("; hint: {hint}"));
        }
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use fstore_spec::redact_url;

    #[test]
    fn redaction_hides_passwords_everywhere() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/orders"),
            "postgres://app:***@db:5432/orders"
        );
        assert_eq!(
            redact_url("postgres://app:${PGPASSWORD}@db/orders"),
            "postgres://app:***@db/orders"
        );
        assert_eq!(
            redact_url("postgres://app:p/w@rd@db/orders"),
            "postgres://app:***@db/orders"
        );
        assert_eq!(
            redact_url("postgres://db/orders?user=app&password=x&sslmode=disable"),
            "postgres://db/orders?user=app&password=***&sslmode=disable"
        );
        assert_eq!(
            redact_url("postgres://app@db/orders"),
            "postgres://app@db/orders"
        );
        assert_eq!(redact_url("postgres://db/orders"), "postgres://db/orders");
    }

    #[test]
    fn env_expansion_encodes_user_info_only() {
        let env = |name: &str| match name {
            "PW" => Some("p@ss/w:rd".to_string()),
            "HOST" => Some("db.internal".to_string()),
            _ => None,
        };
        let url = expand_with("postgres://app:${PW}@${HOST}:5432/x", env).expect("expands");
        assert_eq!(url, "postgres://app:p%40ss%2Fw%3Ard@db.internal:5432/x");
        assert_eq!(password_of(&url).as_deref(), Some("p@ss/w:rd"));
        assert_eq!(
            expand_with("postgres://a@h/${MISSING}", env),
            Err("MISSING".to_string())
        );
        // No closing brace: left as written.
        assert_eq!(
            expand_with("postgres://a@h/${x", env).as_deref(),
            Ok("postgres://a@h/${x")
        );
    }

    #[test]
    fn numeric_binary_decoding() {
        fn enc(ndigits: u16, weight: i16, sign: u16, digits: &[u16]) -> Vec<u8> {
            let mut v = Vec::new();
            v.extend(ndigits.to_be_bytes());
            v.extend(weight.to_be_bytes());
            v.extend(sign.to_be_bytes());
            v.extend(0u16.to_be_bytes());
            for d in digits {
                v.extend(d.to_be_bytes());
            }
            v
        }
        // 12345.678 = 1|2345|6780 with weight 1.
        assert_eq!(
            numeric_to_f64(&enc(3, 1, 0, &[1, 2345, 6780])),
            Ok(12345.678)
        );
        assert_eq!(numeric_to_f64(&enc(1, -1, 0x4000, &[5000])), Ok(-0.5));
        assert_eq!(numeric_to_f64(&enc(1, 2, 0, &[7])), Ok(7e8));
        assert_eq!(numeric_to_f64(&enc(0, 0, 0, &[])), Ok(0.0));
        assert!(numeric_to_f64(&enc(0, 0, 0xC000, &[])).is_ok_and(f64::is_nan));
        assert!(numeric_to_f64(&enc(2, 0, 0, &[1])).is_err(), "truncated");
        assert!(
            numeric_to_f64(&enc(1, 0, 0, &[10_000])).is_err(),
            "bad digit"
        );
    }

    #[test]
    fn type_mapping() {
        assert_eq!(
            PgKind::of("INT4").map(PgKind::arrow_type),
            Some(DataType::Int32)
        );
        assert_eq!(
            PgKind::of("NUMERIC").map(PgKind::arrow_type),
            Some(DataType::Float64)
        );
        assert_eq!(
            PgKind::of("TIMESTAMPTZ").map(PgKind::arrow_type),
            Some(DataType::Timestamp(TimeUnit::Microsecond, None))
        );
        assert!(PgKind::of("JSONB").is_none());
        assert!(PgKind::of("INT4[]").is_none());
    }
}
