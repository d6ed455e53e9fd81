use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use fstore_spec::{Source, SourceFormat};
use fstore_storage::Store;

use crate::OfflineError;

/// One file of a source, located in its store.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub store: Store,
    pub key: String,
    /// What to call it in messages: the path or URL the user wrote.
    pub display: String,
}

fn ext(format: SourceFormat) -> &'static [&'static str] {
    match format {
        SourceFormat::Parquet => &[".parquet", ".pq"],
        SourceFormat::Csv => &[".csv"],
    }
}

fn format_name(format: SourceFormat) -> &'static str {
    match format {
        SourceFormat::Parquet => "parquet",
        SourceFormat::Csv => "csv",
    }
}

/// Resolves a source path to its files: a single file, or every file of the source's format
/// under a prefix (a path ending in `/`, or a local directory), in name order.
pub async fn list_source_files(source: &Source) -> Result<Vec<SourceFile>, OfflineError> {
    let path = source.path.as_str();
    let (root, rel) = split_location(path);
    let file_err = |message: String| OfflineError::File {
        file: path.to_string(),
        message,
    };
    let is_prefix =
        path.ends_with('/') || (!path.contains("://") && std::path::Path::new(path).is_dir());
    if !path.contains("://") && !std::path::Path::new(path).exists() {
        return Err(file_err("no such file or directory".into()));
    }
    let store = Store::from_url(&root)?;
    let files = if is_prefix {
        let keys = store.list(&rel).await?;
        keys.into_iter()
            .filter(|k| {
                let lower = k.to_ascii_lowercase();
                ext(source.format).iter().any(|e| lower.ends_with(e))
            })
            .map(|k| SourceFile {
                display: join_display(&root, &k),
                store: store.clone(),
                key: k,
            })
            .collect()
    } else {
        vec![SourceFile {
            store,
            key: rel,
            display: path.to_string(),
        }]
    };
    if files.is_empty() {
        return Err(OfflineError::NoFiles {
            source_name: source.name.clone(),
            path: path.to_string(),
            format: format_name(source.format),
        });
    }
    Ok(files)
}

fn join_display(root: &str, key: &str) -> String {
    format!("{}/{key}", root.trim_end_matches('/'))
}

/// Splits a location into a store root and a key: `s3://bucket/a/b.parquet` into
/// (`s3://bucket`, `a/b.parquet`); a local file into its directory and name; a local
/// directory into itself and an empty key.
fn split_location(path: &str) -> (String, String) {
    if let Some((scheme, rest)) = path.split_once("://") {
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if scheme == "file" {
            let p = std::path::Path::new("/").join(rest.trim_start_matches('/'));
            return split_local(&p);
        }
        return (format!("{scheme}://{bucket}"), key.to_string());
    }
    split_local(std::path::Path::new(path))
}

fn split_local(p: &std::path::Path) -> (String, String) {
    if p.is_dir() {
        return (p.to_string_lossy().into_owned(), String::new());
    }
    let dir = p
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    (dir.to_string_lossy().into_owned(), name)
}

/// Reads one source file into record batches holding only `columns` (all of them must
/// exist). CSV columns named in `typed` are parsed as that type, the rest as text.
pub async fn read_source(
    file: &SourceFile,
    format: SourceFormat,
    columns: &[String],
    typed: &[(String, DataType)],
) -> Result<Vec<RecordBatch>, OfflineError> {
    let bytes = file.store.get_bytes(&file.key).await?;
    let err = |message: String| OfflineError::File {
        file: file.display.clone(),
        message,
    };
    match format {
        SourceFormat::Parquet => read_parquet(bytes, columns).map_err(err),
        SourceFormat::Csv => read_csv(bytes, columns, typed).map_err(err),
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

fn read_csv(
    bytes: Bytes,
    columns: &[String],
    typed: &[(String, DataType)],
) -> Result<Vec<RecordBatch>, String> {
    // Typed parsing needs the whole header, so read it first and type every column: the
    // ones the view uses by their declared type, the others as text (then projected away).
    let header_end = bytes
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(bytes.len());
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
    let reader = arrow::csv::ReaderBuilder::new(Arc::new(Schema::new(fields)))
        .with_header(true)
        .with_batch_size(64 * 1024)
        .with_projection(projection)
        .build(std::io::Cursor::new(bytes))
        .map_err(|e| e.to_string())?;
    reader
        .map(|b| b.map_err(|e| csv_error(&e.to_string())))
        .collect()
}

/// arrow-csv counts "lines" from the first data row; say so, and give the file line too,
/// so the message points at what an editor shows.
fn csv_error(msg: &str) -> String {
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
