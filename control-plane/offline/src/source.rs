//! Finding and reading a source's rows: files in a data lake (Parquet, CSV, JSON lines; one
//! file, a prefix or a glob, on any store `fstore_storage::Store` opens, with Hive date
//! partitions pruned by the time range a job needs) or a PostgreSQL query.

use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use fstore_spec::{Source, SourceFormat};
use fstore_storage::{ObjectInfo, StorageError, Store};

use crate::glob::{fixed_prefix, glob_match, has_glob};
use crate::partition::{may_overlap, partition_range};
use crate::postgres::read_postgres;
use crate::{OfflineError, RejectedRow};
use fstore_spec::redact_url;

/// Where the rows of one source file come from.
#[derive(Clone)]
pub enum SourceLocation {
    /// An object in a store (a local directory or a bucket), by its key under the store root.
    Object { store: Store, key: String },
    /// A PostgreSQL query. `url` is as written in the definitions: `${VAR}` is expanded only
    /// when the rows are read, so it may carry no secret, but may also carry a literal one.
    Postgres { url: String, query: String },
}

impl std::fmt::Debug for SourceLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceLocation::Object { store, key } => f
                .debug_struct("Object")
                .field("store", store)
                .field("key", key)
                .finish(),
            SourceLocation::Postgres { url, query } => f
                .debug_struct("Postgres")
                .field("url", &redact_url(url))
                .field("query", query)
                .finish(),
        }
    }
}

/// One file of a source (or, for a PostgreSQL source, its query as one pseudo-file).
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub location: SourceLocation,
    /// What to call it in messages: the path or URL of the file; a database URL with its
    /// password redacted.
    pub display: String,
    /// The UTC range `[start, end)` (µs since the epoch) that the file's Hive partition
    /// directories (`date=…/`, `year=…/month=…/`) put its rows in, if its path has them.
    pub partition: Option<(i64, i64)>,
    /// Size and version tag as listed (None for a database query): what lineage records.
    pub object: Option<ObjectInfo>,
}

/// The files a job reads, in name order, and how many matching files partition pruning
/// skipped. Iterates (and dereferences) as its files.
#[derive(Debug, Clone, Default)]
pub struct SourceFiles {
    pub files: Vec<SourceFile>,
    pub pruned: usize,
}

impl std::ops::Deref for SourceFiles {
    type Target = [SourceFile];
    fn deref(&self) -> &[SourceFile] {
        &self.files
    }
}

impl<'a> IntoIterator for &'a SourceFiles {
    type Item = &'a SourceFile;
    type IntoIter = std::slice::Iter<'a, SourceFile>;
    fn into_iter(self) -> Self::IntoIter {
        self.files.iter()
    }
}

impl IntoIterator for SourceFiles {
    type Item = SourceFile;
    type IntoIter = std::vec::IntoIter<SourceFile>;
    fn into_iter(self) -> Self::IntoIter {
        self.files.into_iter()
    }
}

fn ext(format: SourceFormat) -> &'static [&'static str] {
    match format {
        SourceFormat::Parquet => &[".parquet", ".pq"],
        SourceFormat::Csv => &[".csv"],
        SourceFormat::Jsonl => &[".jsonl", ".ndjson", ".json"],
        SourceFormat::Postgres => &[],
    }
}

fn format_name(format: SourceFormat) -> &'static str {
    match format {
        SourceFormat::Parquet => "parquet",
        SourceFormat::Csv => "csv",
        SourceFormat::Jsonl => "jsonl",
        SourceFormat::Postgres => "postgres",
    }
}

/// What a source path names, relative to the root of the store it lives in.
#[derive(Debug, PartialEq)]
pub(crate) enum Target {
    /// One object.
    File(String),
    /// Every object of the source's format under a prefix.
    Prefix(String),
    /// Every object under `list` whose key matches `pattern`.
    Glob { list: String, pattern: String },
}

/// Resolves a source to the files a job reads: a single file, every file of the source's
/// format under a prefix (a path ending in `/`, or a local directory), or every file matching
/// a glob (`*`, `?` within a segment, `**` across segments; only the part before the first
/// glob character is listed). Files under a prefix or glob whose names start with `.` or `_`
/// are not data (`_SUCCESS`, `_temporary/`) and are skipped.
///
/// `range` is the inclusive event-time interval `[from, to]` (µs since the epoch) the job
/// needs: files whose Hive date partition cannot hold such events are skipped and counted in
/// `pruned`; files without partition directories are always read. `None` reads everything.
///
/// A PostgreSQL source gives one pseudo-file carrying its query, displayed as the redacted URL.
/// Nothing matching at all is an error; everything matching but pruned is not.
pub async fn list_source_files(
    source: &Source,
    range: Option<(i64, i64)>,
) -> Result<SourceFiles, OfflineError> {
    if source.format == SourceFormat::Postgres {
        let query = source.query.clone().ok_or_else(|| OfflineError::Postgres {
            url: redact_url(&source.path),
            message: format!("source `{}` has no query", source.name),
        })?;
        return Ok(SourceFiles {
            files: vec![SourceFile {
                location: SourceLocation::Postgres {
                    url: source.path.clone(),
                    query,
                },
                display: redact_url(&source.path),
                partition: None,
                object: None,
            }],
            pruned: 0,
        });
    }
    let path = source.path.as_str();
    let file_err = |message: String| OfflineError::File {
        file: path.to_string(),
        message,
    };
    let (root, target) = locate(path).map_err(file_err)?;
    let store = Store::from_url(&root)?;
    let keys: Vec<ObjectInfo> = match &target {
        Target::File(key) => match store.head(key).await {
            Ok(info) => vec![info],
            // Reported below as "no files", like an empty prefix.
            Err(StorageError::NotFound(_)) => vec![],
            Err(e) => return Err(e.into()),
        },
        Target::Prefix(prefix) => {
            let below = prefix.split('/').filter(|s| !s.is_empty()).count();
            store
                .list_meta(prefix)
                .await?
                .into_iter()
                .filter(|o| {
                    let lower = o.key.to_ascii_lowercase();
                    ext(source.format).iter().any(|e| lower.ends_with(e))
                        && !o
                            .key
                            .split('/')
                            .skip(below)
                            .any(|seg| seg.starts_with(['.', '_']))
                })
                .collect()
        }
        Target::Glob { list, pattern } => store
            .list_meta(list)
            .await?
            .into_iter()
            .filter(|o| glob_match(pattern, &o.key))
            .collect(),
    };
    if keys.is_empty() {
        return Err(OfflineError::NoFiles {
            source_name: source.name.clone(),
            path: path.to_string(),
            format: format_name(source.format),
        });
    }
    let mut out = SourceFiles::default();
    for info in keys {
        let key = info.key.clone();
        let display = match &target {
            Target::File(_) if !path.contains("://") => path.to_string(),
            _ => join_display(&root, &key),
        };
        let partition = partition_range(&display);
        if !may_overlap(partition, range) {
            out.pruned += 1;
            continue;
        }
        out.files.push(SourceFile {
            location: SourceLocation::Object {
                store: store.clone(),
                key,
            },
            display,
            partition,
            object: Some(info),
        });
    }
    Ok(out)
}

fn join_display(root: &str, key: &str) -> String {
    if key.is_empty() {
        return root.to_string();
    }
    format!("{}/{key}", root.trim_end_matches('/'))
}

/// Splits a source path into the URL of the store to open and what to read there:
/// `s3://bucket/a/*.parquet` into (`s3://bucket`, a glob listing `a`); a local file into its
/// directory and name; a local directory into itself and an empty prefix. Local roots must
/// exist (opening a local store would otherwise create them).
pub(crate) fn locate(path: &str) -> Result<(String, Target), String> {
    if let Some((scheme, rest)) = path.split_once("://")
        && scheme != "file"
    {
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if has_glob(bucket) {
            return Err("a glob cannot name the bucket or container, only keys within it".into());
        }
        let root = format!("{scheme}://{bucket}");
        let target = if has_glob(key) {
            Target::Glob {
                list: fixed_prefix(key),
                pattern: key.to_string(),
            }
        } else if key.is_empty() || key.ends_with('/') {
            Target::Prefix(key.to_string())
        } else {
            Target::File(key.to_string())
        };
        return Ok((root, target));
    }
    let local = match path.strip_prefix("file://") {
        Some(rest) => format!("/{}", rest.trim_start_matches('/')),
        None => path.to_string(),
    };
    let p = std::path::Path::new(&local);
    if has_glob(&local) {
        let fixed = fixed_prefix(&local);
        let dir = match fixed.as_str() {
            "" if local.starts_with('/') => "/".to_string(),
            "" => ".".to_string(),
            f => f.to_string(),
        };
        if !std::path::Path::new(&dir).is_dir() {
            return Err(format!("no such directory `{dir}`"));
        }
        let pattern = local[fixed.len()..].trim_start_matches('/').to_string();
        return Ok((
            dir,
            Target::Glob {
                list: String::new(),
                pattern,
            },
        ));
    }
    if p.is_dir() {
        return Ok((local.clone(), Target::Prefix(String::new())));
    }
    if local.ends_with('/') || !p.exists() {
        return Err("no such file or directory".into());
    }
    let dir = p
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok((dir.to_string_lossy().into_owned(), Target::File(name)))
}

/// Reads one source file into record batches holding only `columns` (all of them must
/// exist): in that order for CSV, JSON lines and PostgreSQL, in file order for Parquet. CSV and JSON-lines columns named
/// in `typed` are parsed as that type, the rest as text; Parquet and PostgreSQL columns keep
/// their own types (the caller normalizes them).
///
/// Strict: a CSV or JSON-lines value that does not parse fails the read with an
/// `OfflineError::Row` naming its row. Jobs read through the crate's lenient variant, which
/// sets such rows aside instead.
pub async fn read_source(
    file: &SourceFile,
    format: SourceFormat,
    columns: &[String],
    typed: &[(String, DataType)],
) -> Result<Vec<RecordBatch>, OfflineError> {
    let rows = read_source_rows(file, format, columns, typed).await?;
    match rows.rejected.into_iter().next() {
        Some(r) => Err(OfflineError::Row {
            file: r.file,
            row: r.row,
            message: r.reason,
        }),
        None => Ok(rows.batches),
    }
}

/// A file's rows as read: batches of the rows that parsed, and the rows that did not.
#[derive(Debug, Default)]
pub(crate) struct SourceRows {
    pub batches: Vec<RecordBatch>,
    /// Rows with a value that does not parse as its column's declared type (CSV and JSON
    /// lines only), in row order. Every data row is in exactly one of the two.
    pub rejected: Vec<RejectedRow>,
}

/// `read_source`, but a row whose value does not parse is set aside in `rejected` and the
/// file's other rows are kept. Missing columns and unreadable files still fail the read.
pub(crate) async fn read_source_rows(
    file: &SourceFile,
    format: SourceFormat,
    columns: &[String],
    typed: &[(String, DataType)],
) -> Result<SourceRows, OfflineError> {
    let err = |message: String| OfflineError::File {
        file: file.display.clone(),
        message,
    };
    let (store, key) = match &file.location {
        SourceLocation::Postgres { url, query } => {
            let batches = read_postgres(url, query, &file.display, columns).await?;
            return Ok(SourceRows {
                batches,
                rejected: Vec::new(),
            });
        }
        SourceLocation::Object { store, key } => (store, key),
    };
    let bytes = match store.get_bytes(key).await {
        Ok(b) => b,
        Err(StorageError::NotFound(_)) => return Err(err("no such file".into())),
        Err(e) => return Err(e.into()),
    };
    match format {
        SourceFormat::Parquet => Ok(SourceRows {
            batches: read_parquet(bytes, columns).map_err(err)?,
            rejected: Vec::new(),
        }),
        SourceFormat::Csv => read_csv(&bytes, &file.display, columns, typed).map_err(err),
        SourceFormat::Jsonl => crate::jsonl::read_jsonl(&bytes, &file.display, columns, typed),
        SourceFormat::Postgres => Err(err(
            "is a file, but the source's format is postgres (a query)".into(),
        )),
    }
}

fn read_parquet(bytes: Bytes, columns: &[String]) -> Result<Vec<RecordBatch>, String> {
    use parquet::arrow::ProjectionMask;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .map_err(|e| format!("not a readable Parquet file: {e}"))?;
    let schema = builder.schema().clone();
    let mut indices = Vec::with_capacity(columns.len());
    for c in columns {
        let i = schema
            .index_of(c)
            .map_err(|_| missing_column(c, schema.fields().iter().map(|f| f.name().as_str())))?;
        indices.push(i);
    }
    let mask = ProjectionMask::roots(builder.parquet_schema(), indices);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(64 * 1024)
        .build()
        .map_err(|e| e.to_string())?;
    reader.map(|b| b.map_err(|e| e.to_string())).collect()
}

fn missing_column<'a>(c: &str, have: impl Iterator<Item = &'a str>) -> String {
    let have: Vec<&str> = have.collect();
    format!("has no column `{c}` (columns: {})", have.join(", "))
}

/// CSV records per batch on the fast path.
const CSV_BATCH_ROWS: usize = 64 * 1024;

fn read_csv(
    bytes: &[u8],
    file: &str,
    columns: &[String],
    typed: &[(String, DataType)],
) -> Result<SourceRows, String> {
    // Typed parsing needs the whole header, so read it first and type every column: the
    // ones the view uses by their declared type, the others as text (then projected away).
    // The header is one line; records start after it, so every decoder below reads data only.
    let header_end = bytes
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(bytes.len());
    let data_start = (header_end + 1).min(bytes.len());
    let header =
        std::str::from_utf8(&bytes[..header_end]).map_err(|_| "header is not UTF-8".to_string())?;
    let names: Vec<String> = header
        .trim_end_matches('\r')
        .split(',')
        .map(|s| s.trim().trim_matches('"').to_string())
        .collect();
    let fields: Vec<Field> = names
        .iter()
        .map(|n| {
            let ty = typed
                .iter()
                .find(|(c, _)| c == n)
                .map(|(_, t)| t.clone())
                .unwrap_or(DataType::Utf8);
            Field::new(n, ty, true)
        })
        .collect();
    let mut projection = Vec::with_capacity(columns.len());
    for c in columns {
        let i = names
            .iter()
            .position(|n| n == c)
            .ok_or_else(|| missing_column(c, names.iter().map(String::as_str)))?;
        projection.push(i);
    }
    let csv = Csv {
        schema: Arc::new(Schema::new(fields)),
        projection,
        names,
    };
    let mut out = SourceRows::default();
    let mut rows = 0u64;
    let mut lines = LineCounter::default();
    let mut dec = csv.decoder(&csv.schema, CSV_BATCH_ROWS);
    let mut off = data_start;
    loop {
        let start = off;
        off = csv.fill(&mut dec, bytes, off, bytes.len())?;
        match dec.flush() {
            Ok(None) => break,
            Ok(Some(batch)) => {
                rows += batch.num_rows() as u64;
                out.batches.push(batch);
            }
            // arrow-csv fails the whole batch for one bad value: decode its records one by
            // one to set the bad ones aside and keep the rest. Only this path pays for it.
            Err(_) => {
                csv.redecode(bytes, start, off, file, &mut rows, &mut lines, &mut out)?;
                // A failed flush may leave the decoder mid-state (invalid UTF-8 does).
                dec = csv.decoder(&csv.schema, CSV_BATCH_ROWS);
            }
        }
    }
    Ok(out)
}

/// How one CSV file is decoded: its columns' parse types and the ones a job uses.
struct Csv {
    schema: SchemaRef,
    projection: Vec<usize>,
    names: Vec<String>,
}

impl Csv {
    fn decoder(&self, schema: &SchemaRef, batch_rows: usize) -> arrow::csv::reader::Decoder {
        arrow::csv::ReaderBuilder::new(schema.clone())
            .with_header(false)
            .with_batch_size(batch_rows)
            .with_projection(self.projection.clone())
            .build_decoder()
    }

    /// Feeds `bytes[off..end]` to `dec` until it holds a full batch or the range is used up
    /// (an empty slice tells it the input ended, which completes a last unterminated record).
    /// A record that cannot be split into the header's fields fails the file: that is the
    /// file's shape, not one value.
    fn fill(
        &self,
        dec: &mut arrow::csv::reader::Decoder,
        bytes: &[u8],
        mut off: usize,
        end: usize,
    ) -> Result<usize, String> {
        loop {
            let n = dec
                .decode(&bytes[off..end])
                .map_err(|e| csv_error(&e.to_string(), &self.names))?;
            off += n;
            if n == 0 || dec.capacity() == 0 {
                return Ok(off);
            }
        }
    }

    /// Decodes the records in `bytes[start..end]` one at a time, keeping those that parse
    /// (as one batch) and rejecting the others with their row, line and column.
    #[allow(clippy::too_many_arguments)]
    fn redecode(
        &self,
        bytes: &[u8],
        start: usize,
        end: usize,
        file: &str,
        rows: &mut u64,
        lines: &mut LineCounter,
        out: &mut SourceRows,
    ) -> Result<(), String> {
        let mut one = self.decoder(&self.schema, 1);
        let mut good: Vec<RecordBatch> = Vec::new();
        let mut pos = start;
        loop {
            let record_start = pos;
            pos = self.fill(&mut one, bytes, pos, end)?;
            match one.flush() {
                Ok(None) => break,
                Ok(Some(batch)) => {
                    *rows += batch.num_rows() as u64;
                    good.push(batch);
                }
                Err(e) => {
                    *rows += 1;
                    // The record's bytes may begin with the previous line's end or blank lines.
                    let first = bytes[record_start..pos]
                        .iter()
                        .position(|&b| b != b'\n' && b != b'\r')
                        .map_or(pos, |i| record_start + i);
                    let line = lines.line_at(bytes, first);
                    out.rejected.push(RejectedRow {
                        file: file.to_string(),
                        row: *rows,
                        reason: self.why(&bytes[record_start..pos], &e, line),
                    });
                    one = self.decoder(&self.schema, 1);
                }
            }
        }
        if let Some(first) = good.first() {
            let batch = arrow::compute::concat_batches(&first.schema(), &good)
                .map_err(|e| e.to_string())?;
            out.batches.push(batch);
        }
        Ok(())
    }

    /// Why one record does not parse: arrow-csv's message numbers columns and lines within
    /// a batch, so find the column by parsing it alone and show its text.
    fn why(&self, record: &[u8], err: &arrow::error::ArrowError, line: u64) -> String {
        let decode = |schema: &SchemaRef| -> Result<Option<RecordBatch>, String> {
            let mut dec = self.decoder(schema, 1);
            self.fill(&mut dec, record, 0, record.len())?;
            dec.flush().map_err(|e| e.to_string())
        };
        let as_text: SchemaRef = Arc::new(Schema::new(
            self.schema
                .fields()
                .iter()
                .map(|f| Field::new(f.name(), DataType::Utf8, true))
                .collect::<Vec<_>>(),
        ));
        let text = decode(&as_text).ok().flatten();
        for (j, &i) in self.projection.iter().enumerate() {
            let ty = self.schema.field(i).data_type();
            if *ty == DataType::Utf8 {
                continue;
            }
            let mut fields: Vec<Field> = as_text.fields().iter().map(|f| (**f).clone()).collect();
            fields[i] = Field::new(&self.names[i], ty.clone(), true);
            if decode(&Arc::new(Schema::new(fields))).is_ok() {
                continue;
            }
            let value = text.as_ref().and_then(|b| {
                b.column(j)
                    .as_string_opt::<i32>()
                    .filter(|s| s.is_valid(0))
                    .map(|s| s.value(0).to_string())
            });
            return match value {
                Some(v) => format!(
                    "column `{}`: cannot parse `{}` as {} (file line {line})",
                    self.names[i],
                    shown(&v),
                    type_name(ty)
                ),
                None => format!(
                    "column `{}`: cannot parse as {} (file line {line})",
                    self.names[i],
                    type_name(ty)
                ),
            };
        }
        // No single column fails (invalid UTF-8, say): arrow's words, without its positions,
        // which count from the batch rather than the file.
        let msg = err.to_string();
        let mut msg = msg.as_str();
        for prefix in ["Parser error: ", "Csv error: "] {
            msg = msg.strip_prefix(prefix).unwrap_or(msg);
        }
        for cut in [" at line ", " for line "] {
            msg = msg.split(cut).next().unwrap_or(msg);
        }
        format!("{} (file line {line})", csv_error(msg, &self.names))
    }
}

/// The 1-based file line of byte offsets asked in increasing order, counting newlines from
/// the last offset asked rather than from the start, so a file's bad rows cost one pass.
#[derive(Debug, Default)]
pub(crate) struct LineCounter {
    pos: usize,
    newlines: u64,
}

impl LineCounter {
    pub(crate) fn line_at(&mut self, bytes: &[u8], at: usize) -> u64 {
        if at < self.pos {
            *self = Self::default();
        }
        let at = at.min(bytes.len());
        self.newlines += bytes[self.pos..at].iter().filter(|&&b| b == b'\n').count() as u64;
        self.pos = at;
        self.newlines + 1
    }
}

/// A value as a rejection shows it: long text is cut, since reasons are stored and listed.
pub(crate) fn shown(v: &str) -> String {
    const MAX: usize = 64;
    match v.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &v[..at]),
        None => v.to_string(),
    }
}

/// A parse type by the name definitions give it.
pub(crate) fn type_name(ty: &DataType) -> String {
    match ty {
        DataType::Int64 => "int64".into(),
        DataType::Float64 => "float64".into(),
        DataType::Utf8 => "string".into(),
        DataType::Boolean => "bool".into(),
        DataType::Timestamp(_, _) => "timestamp".into(),
        DataType::List(f) => format!("list<{}>", type_name(f.data_type())),
        other => other.to_string().to_lowercase(),
    }
}

/// arrow-csv counts "lines" from the first data row; say so, and give the file line too,
/// so the message points at what an editor shows. It numbers columns; name them.
fn csv_error(msg: &str, names: &[String]) -> String {
    let named;
    let msg = match msg.find(" for column ") {
        Some(at) => {
            let rest = &msg[at + 12..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            match digits.parse::<usize>().ok().and_then(|i| names.get(i)) {
                Some(name) => {
                    named = format!(
                        "{} for column `{name}`{}",
                        &msg[..at],
                        &rest[digits.len()..]
                    );
                    named.as_str()
                }
                None => msg,
            }
        }
        None => msg,
    };
    let Some(at) = msg.find(" at line ") else {
        return msg.to_string();
    };
    let rest = &msg[at + 9..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    match digits.parse::<u64>() {
        Ok(n) => format!(
            "{} at row {n} (file line {}){}",
            &msg[..at],
            n + 1,
            &rest[digits.len()..]
        ),
        Err(_) => msg.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{AsArray, Float64Array, Int64Array, StringArray};
    use arrow::datatypes::{Float64Type, Int64Type, TimeUnit, TimestampMicrosecondType};
    use parquet::arrow::ArrowWriter;

    const DAY: i64 = 86_400_000_000;
    /// 2026-05-01T00:00:00Z in µs.
    const MAY1: i64 = 1_777_593_600_000_000;

    fn source(path: &str, format: SourceFormat) -> Source {
        Source {
            name: "orders".into(),
            path: path.into(),
            format,
            query: None,
            timestamp_field: "ts".into(),
            created_timestamp_field: None,
            retention_seconds: None,
            description: String::new(),
            owner: String::new(),
            tags: vec![],
        }
    }

    fn write(dir: &std::path::Path, rel: &str, text: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }

    fn names(files: &SourceFiles, root: &std::path::Path) -> Vec<String> {
        let root = root.to_string_lossy().into_owned();
        files
            .iter()
            .map(|f| {
                f.display
                    .trim_start_matches(&root)
                    .trim_start_matches('/')
                    .to_string()
            })
            .collect()
    }

    /// A lake with three daily partitions, a nested one, an unpartitioned file and the
    /// litter engines leave behind.
    fn lake() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tmp");
        let d = dir.path();
        for rel in [
            "orders/date=2026-05-01/part-0.csv",
            "orders/date=2026-05-01/part-1.csv",
            "orders/date=2026-05-02/part-0.csv",
            "orders/date=2026-05-03/part-0.csv",
            "orders/late.csv",
            "orders/date=2026-05-03/_SUCCESS",
            "orders/_temporary/0/part-9.csv",
            "orders/.part-0.csv.crc",
            "orders/notes.txt",
            "nested/year=2026/month=05/day=02/a.csv",
            "nested/year=2026/month=06/b.csv",
        ] {
            write(d, rel, "ts\n1\n");
        }
        dir
    }

    #[tokio::test]
    async fn prefix_lists_data_files_only() {
        let dir = lake();
        let root = dir.path();
        let p = format!("{}/orders/", root.display());
        let files = list_source_files(&source(&p, SourceFormat::Csv), None)
            .await
            .expect("lists");
        assert_eq!(
            names(&files, root),
            vec![
                "orders/date=2026-05-01/part-0.csv",
                "orders/date=2026-05-01/part-1.csv",
                "orders/date=2026-05-02/part-0.csv",
                "orders/date=2026-05-03/part-0.csv",
                "orders/late.csv",
            ]
        );
        assert_eq!(files.pruned, 0);
        assert_eq!(files[0].partition, Some((MAY1, MAY1 + DAY)));
        assert_eq!(files[4].partition, None);
        // A directory without the trailing slash is a prefix too.
        let p = format!("{}/orders", root.display());
        let again = list_source_files(&source(&p, SourceFormat::Csv), None)
            .await
            .expect("lists");
        assert_eq!(again.len(), 5);
    }

    #[tokio::test]
    async fn pruning_skips_partitions_outside_the_range() {
        let dir = lake();
        let root = dir.path();
        let src = source(&format!("{}/orders/", root.display()), SourceFormat::Csv);
        // Only May 2nd, to the microsecond: the unpartitioned file is always read.
        let f = list_source_files(&src, Some((MAY1 + DAY, MAY1 + 2 * DAY - 1)))
            .await
            .expect("lists");
        assert_eq!(
            names(&f, root),
            vec!["orders/date=2026-05-02/part-0.csv", "orders/late.csv"]
        );
        assert_eq!(f.pruned, 3);
        // The range's ends are inclusive: the last microsecond of May 1st reads May 1st.
        let f = list_source_files(&src, Some((0, MAY1)))
            .await
            .expect("lists");
        assert_eq!(f.pruned, 2);
        assert_eq!(f.len(), 3);
        // Everything pruned is an empty list, not an error.
        let f = list_source_files(&src, Some((0, 1))).await.expect("lists");
        assert_eq!((f.len(), f.pruned), (1, 4));
        // Nested year/month/day partitions.
        let src = source(
            &format!("{}/nested/**/*.csv", root.display()),
            SourceFormat::Csv,
        );
        let f = list_source_files(&src, Some((MAY1 + 40 * DAY, MAY1 + 41 * DAY)))
            .await
            .expect("lists");
        assert_eq!(names(&f, root), vec!["nested/year=2026/month=06/b.csv"]);
        assert_eq!(f.pruned, 1);
    }

    #[tokio::test]
    async fn globs_match_within_and_across_segments() {
        let dir = lake();
        let root = dir.path();
        let list = |pattern: &str| {
            let src = source(&format!("{}/{pattern}", root.display()), SourceFormat::Csv);
            async move { list_source_files(&src, None).await }
        };
        // `[` is no glob character: that segment is a literal directory name.
        let e = list("orders/date=2026-05-0[12]/*.csv")
            .await
            .expect_err("literal");
        assert!(e.to_string().contains("no such directory"), "{e}");
        let f = list("orders/date=2026-05-0?/part-0.csv")
            .await
            .expect("lists");
        assert_eq!(f.len(), 3);
        let f = list("orders/*/part-1.csv").await.expect("lists");
        assert_eq!(names(&f, root), vec!["orders/date=2026-05-01/part-1.csv"]);
        let f = list("**/*.csv").await.expect("lists");
        assert_eq!(f.len(), 7, "{:?}", names(&f, root));
        let f = list("orders/**").await.expect("lists");
        assert!(names(&f, root).contains(&"orders/notes.txt".to_string()));
        assert!(!names(&f, root).iter().any(|n| n.contains("_SUCCESS")));
        // A glob matching nothing names the source and the path.
        let e = list("orders/*.parquet").await.expect_err("nothing");
        let msg = e.to_string();
        assert!(
            msg.contains("orders/*.parquet") && msg.contains("`orders`"),
            "{msg}"
        );
        // The fixed part must exist, and is never created by looking.
        let e = list("missing/*.csv").await.expect_err("no dir");
        assert!(e.to_string().contains("no such directory"), "{e}");
        assert!(!root.join("missing").exists());
    }

    #[test]
    fn remote_locations_split_at_the_bucket_and_list_only_the_fixed_prefix() {
        assert_eq!(
            locate("s3://lake/orders/date=*/x.parquet"),
            Ok((
                "s3://lake".to_string(),
                Target::Glob {
                    list: "orders".into(),
                    pattern: "orders/date=*/x.parquet".into()
                }
            ))
        );
        assert_eq!(
            locate("gs://lake/orders/"),
            Ok(("gs://lake".to_string(), Target::Prefix("orders/".into())))
        );
        assert_eq!(
            locate("az://c/o.csv"),
            Ok(("az://c".to_string(), Target::File("o.csv".into())))
        );
        assert_eq!(
            locate("s3://lake"),
            Ok(("s3://lake".to_string(), Target::Prefix(String::new())))
        );
        assert!(locate("s3://lake-*/x").is_err());
    }

    #[tokio::test]
    async fn postgres_sources_are_one_redacted_pseudo_file() {
        let mut src = source("postgres://app:hunter2@db/shop", SourceFormat::Postgres);
        src.query = Some("SELECT 1".into());
        let f = list_source_files(&src, Some((0, 1))).await.expect("lists");
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].display, "postgres://app:***@db/shop");
        assert!(!format!("{:?}", f[0]).contains("hunter2"));
    }

    fn typed() -> Vec<(String, DataType)> {
        vec![
            ("id".into(), DataType::Int64),
            (
                "ts".into(),
                DataType::Timestamp(TimeUnit::Microsecond, None),
            ),
            ("amount".into(), DataType::Float64),
        ]
    }

    fn cols(c: &[&str]) -> Vec<String> {
        c.iter().map(|s| s.to_string()).collect()
    }

    async fn read_one(
        path: &std::path::Path,
        format: SourceFormat,
        c: &[&str],
    ) -> Result<Vec<RecordBatch>, OfflineError> {
        let src = source(&path.to_string_lossy(), format);
        let files = list_source_files(&src, None).await?;
        read_source(&files[0], format, &cols(c), &typed()).await
    }

    #[tokio::test]
    async fn csv_reads_typed_and_names_bad_rows() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("o.csv");
        std::fs::write(
            &p,
            "name,amount,id,ts\nx,1.5,7,2026-05-01T00:00:00Z\ny,2,8,2026-05-02T00:00:00Z\n",
        )
        .expect("write");
        let b = read_one(&p, SourceFormat::Csv, &["id", "ts", "amount"])
            .await
            .expect("reads");
        assert_eq!(b[0].schema().field(0).name(), "id");
        assert_eq!(
            b[0].column(0).as_primitive::<Int64Type>().values().to_vec(),
            vec![7, 8]
        );
        assert_eq!(
            b[0].column(1)
                .as_primitive::<TimestampMicrosecondType>()
                .value(0),
            MAY1
        );
        assert_eq!(b[0].column(2).as_primitive::<Float64Type>().value(1), 2.0);
        std::fs::write(
            &p,
            "id,ts,amount\n1,2026-05-01T00:00:00Z,1\n2,2026-05-01T00:00:00Z,lots\n",
        )
        .expect("write");
        let e = read_one(&p, SourceFormat::Csv, &["id", "ts", "amount"])
            .await
            .expect_err("bad");
        // `read_source` is strict: the first row that does not parse fails the read.
        let msg = e.to_string();
        assert!(matches!(e, OfflineError::Row { row: 2, .. }), "{msg}");
        assert!(
            msg.contains("o.csv")
                && msg.contains("column `amount`: cannot parse `lots` as float64 (file line 3)"),
            "{msg}"
        );
        let e = read_one(&p, SourceFormat::Csv, &["id", "amont"])
            .await
            .expect_err("missing");
        assert!(e.to_string().contains("no column `amont`"), "{e}");
    }

    #[tokio::test]
    async fn jsonl_and_parquet_read_through_the_same_entry_point() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("o.ndjson");
        std::fs::write(
            &p,
            "{\"id\": 7, \"ts\": \"2026-05-01T00:00:00Z\", \"amount\": 1}\n",
        )
        .expect("write");
        let b = read_one(&p, SourceFormat::Jsonl, &["amount", "id"])
            .await
            .expect("reads");
        assert_eq!(b[0].schema().field(0).name(), "amount");
        assert_eq!(b[0].column(1).as_primitive::<Int64Type>().value(0), 7);

        let p = dir.path().join("o.parquet");
        let batch = RecordBatch::try_from_iter([
            ("id", Arc::new(Int64Array::from(vec![1, 2])) as _),
            ("amount", Arc::new(Float64Array::from(vec![1.0, 2.0])) as _),
            ("name", Arc::new(StringArray::from(vec!["a", "b"])) as _),
        ])
        .expect("batch");
        let mut w = ArrowWriter::try_new(
            std::fs::File::create(&p).expect("create"),
            batch.schema(),
            None,
        )
        .expect("writer");
        w.write(&batch).expect("write");
        w.close().expect("close");
        let b = read_one(&p, SourceFormat::Parquet, &["name", "id"])
            .await
            .expect("reads");
        assert_eq!(b[0].num_columns(), 2);
        let id = b[0].column_by_name("id").expect("projected");
        assert_eq!(id.as_primitive::<Int64Type>().value(1), 2);
        // A file that vanished between listing and reading names itself.
        let src = source(&p.to_string_lossy(), SourceFormat::Parquet);
        let files = list_source_files(&src, None).await.expect("lists");
        std::fs::remove_file(&p).expect("rm");
        let e = read_source(&files[0], SourceFormat::Parquet, &cols(&["id"]), &[])
            .await
            .expect_err("gone");
        assert!(
            e.to_string().contains("o.parquet") && e.to_string().contains("no such file"),
            "{e}"
        );
    }

    fn csv(text: &str, c: &[&str]) -> SourceRows {
        read_csv(text.as_bytes(), "o.csv", &cols(c), &typed()).expect("reads")
    }

    fn csv_ids(r: &SourceRows) -> Vec<i64> {
        r.batches
            .iter()
            .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
            .collect()
    }

    #[test]
    fn csv_rejects_unparseable_rows_and_keeps_the_others() {
        let text = "id,ts,amount,note\n\
                    1,2026-05-01T00:00:00Z,1.5,\"a, b\"\n\
                    2,2026-05-01T00:00:00Z,abc,x\n\
                    3,2026-05-01T00:00:00Z,,x\n\
                    \n\
                    4,yesterday,2,x\r\n\
                    5,2026-05-01T00:00:00Z,3,x";
        let r = csv(text, &["id", "ts", "amount"]);
        assert_eq!(csv_ids(&r), vec![1, 3, 5]);
        let amounts: Vec<Option<f64>> = r
            .batches
            .iter()
            .flat_map(|b| {
                b.column(2)
                    .as_primitive::<Float64Type>()
                    .iter()
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(amounts, vec![Some(1.5), None, Some(3.0)]);
        assert_eq!(
            r.rejected,
            vec![
                RejectedRow {
                    file: "o.csv".into(),
                    row: 2,
                    reason: "column `amount`: cannot parse `abc` as float64 (file line 3)".into(),
                },
                RejectedRow {
                    file: "o.csv".into(),
                    row: 4,
                    reason: "column `ts`: cannot parse `yesterday` as timestamp (file line 6)"
                        .into(),
                },
            ]
        );
        // A column the job does not use is never parsed, so its text cannot reject a row.
        let r = csv("id,amount\n1,abc\n", &["id"]);
        assert_eq!((csv_ids(&r), r.rejected.len()), (vec![1], 0));
        // A record with the wrong number of fields is the file's shape: it fails the file.
        let e =
            read_csv(b"id,amount\n1,2,3\n", "o.csv", &cols(&["id"]), &typed()).expect_err("ragged");
        assert!(e.contains("number of fields"), "{e}");
    }

    #[test]
    fn csv_bad_rows_past_the_first_batch_keep_their_row_numbers() {
        let n = CSV_BATCH_ROWS + 5;
        let mut text = String::from("id,amount\n");
        let mut want = Vec::new();
        for i in 1..=n as i64 {
            if i == 2 || i == CSV_BATCH_ROWS as i64 + 2 {
                text.push_str(&format!("{i},x{i}\n"));
            } else {
                text.push_str(&format!("{i},{i}.5\n"));
                want.push(i);
            }
        }
        let r = csv(&text, &["id", "amount"]);
        assert_eq!(csv_ids(&r), want);
        let rows: Vec<(u64, String)> = r
            .rejected
            .iter()
            .map(|x| (x.row, x.reason.clone()))
            .collect();
        let far = CSV_BATCH_ROWS as u64 + 2;
        assert_eq!(
            rows,
            vec![
                (
                    2,
                    "column `amount`: cannot parse `x2` as float64 (file line 3)".to_string()
                ),
                (
                    far,
                    format!(
                        "column `amount`: cannot parse `x{far}` as float64 (file line {})",
                        far + 1
                    )
                ),
            ]
        );
        assert!(r.batches.iter().all(|b| b.num_rows() <= CSV_BATCH_ROWS));
    }
}
