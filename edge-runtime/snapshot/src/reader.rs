use std::path::Path;

use crate::format::{
    self, HEADER_LEN, ROW_FIXED, key_hash, read_u16, read_u32, read_u64, row_offsets,
};
use crate::{F64List, FeatureType, SnapshotError, SnapshotSchema, Value};

enum Backing {
    Mmap(memmap2::Mmap),
    Heap(Vec<u8>),
}

impl Backing {
    #[inline]
    fn bytes(&self) -> &[u8] {
        match self {
            Backing::Mmap(m) => m,
            Backing::Heap(v) => v,
        }
    }
}

/// A loaded, verified snapshot. Lookups borrow straight from the mapped file.
pub struct Snapshot {
    backing: Backing,
    schema: SnapshotSchema,
    types: Vec<FeatureType>,
    rows: u64,
    index_off: usize,
    mask: usize,
    rows_off: usize,
    rows_len: usize,
    checksum: u64,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("view", &self.schema.view)
            .field("version", &self.schema.version)
            .field("rows", &self.rows)
            .finish()
    }
}

impl Snapshot {
    /// Maps the file at `path` and verifies header, checksum and index bounds.
    pub fn open(path: &Path) -> Result<Self, SnapshotError> {
        let file = std::fs::File::open(path)?;
        // SAFETY: snapshot files are immutable once written: the edge downloads each version to
        // a fresh file, renames it into place and never writes to it again, so the mapping can't
        // change underneath us. The content is verified (checksum, bounds) before use.
        let map = unsafe { memmap2::Mmap::map(&file)? };
        Self::parse(Backing::Mmap(map))
    }

    /// Loads a snapshot from an owned buffer (tests, small snapshots).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, SnapshotError> {
        Self::parse(Backing::Heap(bytes))
    }

    fn parse(backing: Backing) -> Result<Self, SnapshotError> {
        let b = backing.bytes();
        if b.len() < HEADER_LEN {
            return Err(SnapshotError::Corrupt(format!(
                "file is {} bytes, shorter than its header",
                b.len()
            )));
        }
        if b[0..8] != format::MAGIC {
            return Err(SnapshotError::BadMagic);
        }
        let version = read_u16(b, format::OFF_VERSION);
        if version != format::FORMAT_VERSION {
            return Err(SnapshotError::UnsupportedVersion(version));
        }
        let header_sum = read_u64(b, format::OFF_HEADER_SUM);
        let actual = format::header_checksum(b);
        if header_sum != actual {
            return Err(SnapshotError::ChecksumMismatch {
                expected: header_sum,
                actual,
            });
        }
        let header_len = read_u16(b, format::OFF_HEADER_LEN) as usize;
        let flags = read_u32(b, format::OFF_FLAGS);
        if flags & !format::KNOWN_FLAGS != 0 {
            return Err(SnapshotError::Flags(format!(
                "unknown flag bits {:#x} (this build knows {:#x})",
                flags & !format::KNOWN_FLAGS,
                format::KNOWN_FLAGS
            )));
        }
        let file_len = read_u64(b, format::OFF_FILE_LEN) as usize;
        if file_len != b.len() || header_len != HEADER_LEN {
            return Err(SnapshotError::Corrupt(format!(
                "header says {file_len} bytes, file has {}",
                b.len()
            )));
        }
        let body_sum = read_u64(b, format::OFF_BODY_SUM);
        let actual = xxhash_rust::xxh3::xxh3_64(&b[HEADER_LEN..]);
        if body_sum != actual {
            return Err(SnapshotError::ChecksumMismatch {
                expected: body_sum,
                actual,
            });
        }
        let rows = read_u64(b, format::OFF_ROWS);
        let schema_off = read_u64(b, format::OFF_SCHEMA) as usize;
        let schema_len = read_u64(b, format::OFF_SCHEMA_LEN) as usize;
        let index_off = read_u64(b, format::OFF_INDEX) as usize;
        let slots = read_u64(b, format::OFF_SLOTS) as usize;
        let rows_off = read_u64(b, format::OFF_ROWS_DATA) as usize;
        let rows_len = read_u64(b, format::OFF_ROWS_LEN) as usize;
        let in_bounds =
            |off: usize, len: usize| off.checked_add(len).is_some_and(|end| end <= b.len());
        if !slots.is_power_of_two()
            || !in_bounds(schema_off, schema_len)
            || !in_bounds(index_off, slots.saturating_mul(16))
            || !in_bounds(rows_off, rows_len)
            || (rows as usize) > slots
        {
            return Err(SnapshotError::Corrupt("section bounds out of range".into()));
        }
        let schema: SnapshotSchema =
            serde_json::from_slice(&b[schema_off..schema_off + schema_len])
                .map_err(|e| SnapshotError::Schema(e.to_string()))?;
        schema.validate()?;
        // The flag and the schema are written together; disagreement means a tool rewrote one
        // of them, and serving a delta as a full snapshot (or the reverse) would answer
        // NOT_FOUND for every entity the delta does not hold.
        let flag_delta = flags & format::FLAG_DELTA != 0;
        if flag_delta != schema.base_version.is_some() {
            return Err(SnapshotError::Flags(match schema.base_version {
                Some(base) => format!(
                    "the schema names base version {base} but the header's delta flag is clear"
                ),
                None => {
                    "the header's delta flag is set but the schema names no base version".into()
                }
            }));
        }
        if (flags & format::FLAG_SHARD != 0) != schema.shard.is_some() {
            return Err(SnapshotError::Flags(match schema.shard {
                Some(sh) => format!(
                    "the schema says shard {} of {} but the header's shard flag is clear",
                    sh.index, sh.count
                ),
                None => "the header's shard flag is set but the schema names no shard".into(),
            }));
        }
        // Every indexed row must lie inside the rows section; checked once here so lookups can
        // slice without further bounds errors.
        let mut seen = 0u64;
        for i in 0..slots {
            let at = index_off + i * 16;
            let off1 = read_u64(b, at + 8) as usize;
            if off1 == 0 {
                continue;
            }
            seen += 1;
            let off = off1 - 1;
            if off + ROW_FIXED > rows_len {
                return Err(SnapshotError::Corrupt(format!(
                    "index slot {i} points past the rows"
                )));
            }
            let row_len = read_u32(b, rows_off + off) as usize;
            if off + row_len > rows_len || row_len < ROW_FIXED {
                return Err(SnapshotError::Corrupt(format!(
                    "row at {off} overruns the rows section"
                )));
            }
        }
        if seen != rows {
            return Err(SnapshotError::Corrupt(format!(
                "index holds {seen} rows, header says {rows}"
            )));
        }
        let types = schema.features.iter().map(|f| f.ty).collect();
        Ok(Self {
            schema,
            types,
            rows,
            index_off,
            mask: slots - 1,
            rows_off,
            rows_len,
            checksum: body_sum,
            backing,
        })
    }

    pub fn schema(&self) -> &SnapshotSchema {
        &self.schema
    }

    pub fn len(&self) -> u64 {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Size of the snapshot file in bytes.
    pub fn size_bytes(&self) -> u64 {
        self.backing.bytes().len() as u64
    }

    /// The body checksum recorded in the header (xxh3-64).
    pub fn checksum(&self) -> u64 {
        self.checksum
    }

    /// Whether this snapshot is a delta, holding only the entities that changed since the
    /// previous snapshot of its chain (its header flag and schema agree; `parse` checked).
    pub fn is_delta(&self) -> bool {
        self.schema.base_version.is_some()
    }

    /// The version of the full snapshot this delta applies on top of; `None` for a full one.
    pub fn base_version(&self) -> Option<u64> {
        self.schema.base_version
    }

    /// Finds the row for an encoded entity key.
    #[inline]
    pub fn get(&self, key: &[u8]) -> Option<Row<'_>> {
        self.get_hashed(key, key_hash(key))
    }

    /// [`Snapshot::get`] with the key's [`format::key_hash`] already computed, so a lookup
    /// through several layers (a base and its deltas) hashes the key once.
    #[inline]
    pub fn get_hashed(&self, key: &[u8], hash: u64) -> Option<Row<'_>> {
        let b = self.backing.bytes();
        let mut i = (hash as usize) & self.mask;
        loop {
            let at = self.index_off + i * 16;
            let off1 = read_u64(b, at + 8) as usize;
            if off1 == 0 {
                return None;
            }
            if read_u64(b, at) == hash {
                let row = self.row_at(off1 - 1);
                if row.key() == key {
                    return Some(row);
                }
            }
            i = (i + 1) & self.mask;
        }
    }

    #[inline]
    fn row_at(&self, off: usize) -> Row<'_> {
        let b = self.backing.bytes();
        let start = self.rows_off + off;
        let len = read_u32(b, start) as usize;
        Row {
            data: &b[start..start + len],
            types: &self.types,
        }
    }

    /// Every row, in file order.
    pub fn rows(&self) -> impl Iterator<Item = Row<'_>> + '_ {
        let mut off = 0usize;
        std::iter::from_fn(move || {
            if off + ROW_FIXED > self.rows_len {
                return None;
            }
            let row = self.row_at(off);
            off += row.data.len().max(8);
            Some(row)
        })
    }
}

/// One row of a snapshot, borrowed from the mapped file.
#[derive(Clone, Copy)]
pub struct Row<'a> {
    data: &'a [u8],
    types: &'a [FeatureType],
}

impl std::fmt::Debug for Row<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut l = f.debug_list();
        for i in 0..self.types.len() {
            l.entry(&self.value(i));
        }
        l.finish()
    }
}

impl<'a> Row<'a> {
    #[inline]
    pub fn key(&self) -> &'a [u8] {
        let kl = read_u16(self.data, 4) as usize;
        self.data.get(ROW_FIXED..ROW_FIXED + kl).unwrap_or(&[])
    }

    #[inline]
    pub fn event_micros(&self) -> i64 {
        read_u64(self.data, 8) as i64
    }

    #[inline]
    pub fn created_micros(&self) -> Option<i64> {
        let c = read_u64(self.data, 16) as i64;
        (c != i64::MIN).then_some(c)
    }

    /// The value of feature `i` (by schema position). A value whose bytes do not fit the row
    /// (impossible for a verified snapshot) reads as null rather than panicking.
    #[inline]
    pub fn value(&self, i: usize) -> Value<'a> {
        let Some(&ty) = self.types.get(i) else {
            return Value::Null;
        };
        let kl = read_u16(self.data, 4) as usize;
        let (bitmap, slots, _) = row_offsets(kl, self.types.len());
        let Some(&bits) = self.data.get(bitmap + i / 8) else {
            return Value::Null;
        };
        if bits & (1 << (i % 8)) != 0 {
            return Value::Null;
        }
        let slot = slots + i * 8;
        if slot + 8 > self.data.len() {
            return Value::Null;
        }
        let w = read_u64(self.data, slot);
        match ty {
            FeatureType::Int64 => Value::Int64(w as i64),
            FeatureType::Timestamp => Value::Timestamp(w as i64),
            FeatureType::Float64 => Value::Float64(f64::from_bits(w)),
            FeatureType::Bool => Value::Bool(w != 0),
            FeatureType::String | FeatureType::ListFloat64 => {
                let off = (w & 0xffff_ffff) as usize;
                let len = (w >> 32) as usize;
                let Some(bytes) = self.data.get(off..off + len) else {
                    return Value::Null;
                };
                if ty == FeatureType::String {
                    std::str::from_utf8(bytes).map_or(Value::Null, Value::String)
                } else {
                    Value::ListFloat64(F64List::Bytes(bytes))
                }
            }
        }
    }
}
