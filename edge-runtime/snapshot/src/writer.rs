use crate::format::{self, HEADER_LEN, ROW_FIXED, align8, key_hash, row_offsets};
use crate::{FeatureType, SnapshotError, SnapshotSchema, Value};

/// Builds a snapshot in memory, row by row, then writes it out in one go.
///
/// Rows are appended in arrival order; the index is built at [`SnapshotWriter::finish`].
/// Keys must be unique (the materializer deduplicates before writing).
pub struct SnapshotWriter {
    schema: SnapshotSchema,
    types: Vec<FeatureType>,
    rows: Vec<u8>,
    entries: Vec<(u64, u64)>,
    keys: std::collections::HashSet<u64>,
}

impl std::fmt::Debug for SnapshotWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotWriter")
            .field("view", &self.schema.view)
            .field("rows", &self.entries.len())
            .finish()
    }
}

impl SnapshotWriter {
    pub fn new(schema: SnapshotSchema) -> Result<Self, SnapshotError> {
        schema.validate()?;
        let types = schema.features.iter().map(|f| f.ty).collect();
        Ok(Self {
            schema,
            types,
            rows: Vec::new(),
            entries: Vec::new(),
            keys: std::collections::HashSet::new(),
        })
    }

    /// Reserves room for `rows` rows of about `bytes_per_row` bytes.
    pub fn reserve(&mut self, rows: usize, bytes_per_row: usize) {
        self.rows.reserve(rows * bytes_per_row);
        self.entries.reserve(rows);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Appends one row. `key` is an encoded entity key (see [`crate::KeyBuf`]); `created` is
    /// `None` when the source has no created-timestamp column.
    pub fn push(
        &mut self,
        key: &[u8],
        event_micros: i64,
        created_micros: Option<i64>,
        values: &[Value<'_>],
    ) -> Result<(), SnapshotError> {
        if values.len() != self.types.len() {
            return Err(SnapshotError::Arity {
                expected: self.types.len(),
                got: values.len(),
            });
        }
        if key.len() > u16::MAX as usize {
            return Err(SnapshotError::RowTooLarge(key.len()));
        }
        for (i, (v, ty)) in values.iter().zip(&self.types).enumerate() {
            if !v.matches(*ty) {
                return Err(SnapshotError::TypeMismatch {
                    feature: self.schema.features[i].name.clone(),
                    expected: ty.name(),
                    got: v.type_name(),
                });
            }
        }
        let hash = key_hash(key);
        // Full-hash collisions are possible but rare; only then compare the actual keys.
        if !self.keys.insert(hash) && self.contains_key(hash, key) {
            return Err(SnapshotError::DuplicateKey);
        }

        let n = self.types.len();
        let start = self.rows.len();
        let (bitmap_off, slots_off, var_off) = row_offsets(key.len(), n);
        self.rows.resize(start + var_off, 0);
        let mut var_len = 0usize;
        {
            // Fixed part.
            let row = &mut self.rows[start..];
            row[4..6].copy_from_slice(&(key.len() as u16).to_le_bytes());
            row[8..16].copy_from_slice(&event_micros.to_le_bytes());
            row[16..24].copy_from_slice(&created_micros.unwrap_or(i64::MIN).to_le_bytes());
            row[ROW_FIXED..ROW_FIXED + key.len()].copy_from_slice(key);
        }
        for (i, v) in values.iter().enumerate() {
            let slot = start + slots_off + i * 8;
            let fixed: Option<u64> = match v {
                Value::Null => {
                    self.rows[start + bitmap_off + i / 8] |= 1 << (i % 8);
                    Some(0)
                }
                Value::Int64(x) | Value::Timestamp(x) => Some(*x as u64),
                Value::Float64(f) => Some(f.to_bits()),
                Value::Bool(b) => Some(u64::from(*b)),
                Value::String(_) | Value::ListFloat64(_) => None,
            };
            let word = match fixed {
                Some(w) => w,
                None => {
                    let off = var_off + var_len;
                    let len = match v {
                        Value::String(s) => {
                            self.rows.extend_from_slice(s.as_bytes());
                            s.len()
                        }
                        Value::ListFloat64(list) => {
                            for f in list.iter() {
                                self.rows.extend_from_slice(&f.to_le_bytes());
                            }
                            list.len() * 8
                        }
                        _ => 0,
                    };
                    var_len += len;
                    let off = u32::try_from(off).map_err(|_| SnapshotError::RowTooLarge(off))?;
                    let len32 = u32::try_from(len).map_err(|_| SnapshotError::RowTooLarge(len))?;
                    u64::from(off) | (u64::from(len32) << 32)
                }
            };
            self.rows[slot..slot + 8].copy_from_slice(&word.to_le_bytes());
        }
        let row_len = align8(var_off + var_len);
        self.rows.resize(start + row_len, 0);
        let row_len32 = u32::try_from(row_len).map_err(|_| SnapshotError::RowTooLarge(row_len))?;
        self.rows[start..start + 4].copy_from_slice(&row_len32.to_le_bytes());
        self.entries.push((hash, start as u64));
        Ok(())
    }

    fn contains_key(&self, hash: u64, key: &[u8]) -> bool {
        self.entries.iter().any(|&(h, off)| {
            if h != hash {
                return false;
            }
            let off = off as usize;
            let kl = format::read_u16(&self.rows, off + 4) as usize;
            &self.rows[off + ROW_FIXED..off + ROW_FIXED + kl] == key
        })
    }

    /// Serializes the snapshot into one buffer.
    pub fn finish_to_vec(self) -> Result<Vec<u8>, SnapshotError> {
        let [mut head, rows] = self.finish_parts()?;
        head.extend_from_slice(&rows);
        Ok(head)
    }

    /// Serializes the snapshot as two buffers whose concatenation is the file: the head
    /// (header, schema, index) and the rows as they were appended. Uploading the two parts
    /// avoids copying the rows, the bulk of a snapshot, into one buffer.
    pub fn finish_parts(self) -> Result<[Vec<u8>; 2], SnapshotError> {
        let schema_json =
            serde_json::to_vec(&self.schema).map_err(|e| SnapshotError::Schema(e.to_string()))?;
        let n = self.entries.len();
        // Load factor at most 0.7 keeps linear-probe chains short.
        let slots = ((n * 10).div_ceil(7)).max(8).next_power_of_two();
        let mask = slots - 1;
        let mut index = vec![0u8; slots * 16];
        for &(hash, off) in &self.entries {
            let mut i = (hash as usize) & mask;
            loop {
                let at = i * 16;
                if format::read_u64(&index, at + 8) == 0 {
                    index[at..at + 8].copy_from_slice(&hash.to_le_bytes());
                    index[at + 8..at + 16].copy_from_slice(&(off + 1).to_le_bytes());
                    break;
                }
                i = (i + 1) & mask;
            }
        }

        let schema_off = HEADER_LEN;
        let index_off = align8(schema_off + schema_json.len());
        let rows_off = index_off + index.len();
        let file_len = rows_off + self.rows.len();

        let mut buf = Vec::with_capacity(rows_off);
        buf.resize(HEADER_LEN, 0);
        buf.extend_from_slice(&schema_json);
        buf.resize(index_off, 0);
        buf.extend_from_slice(&index);
        drop(index);

        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        hasher.update(&buf[HEADER_LEN..]);
        hasher.update(&self.rows);
        let body_sum = hasher.digest();
        let h = &mut buf[..HEADER_LEN];
        h[0..8].copy_from_slice(&format::MAGIC);
        h[format::OFF_VERSION..format::OFF_VERSION + 2]
            .copy_from_slice(&format::FORMAT_VERSION.to_le_bytes());
        h[format::OFF_HEADER_LEN..format::OFF_HEADER_LEN + 2]
            .copy_from_slice(&(HEADER_LEN as u16).to_le_bytes());
        let mut flags = 0;
        if self.schema.base_version.is_some() {
            flags |= format::FLAG_DELTA;
        }
        if self.schema.shard.is_some() {
            flags |= format::FLAG_SHARD;
        }
        h[format::OFF_FLAGS..format::OFF_FLAGS + 4].copy_from_slice(&flags.to_le_bytes());
        let words: [(usize, u64); 10] = [
            (format::OFF_ROWS, n as u64),
            (format::OFF_SCHEMA, schema_off as u64),
            (format::OFF_SCHEMA_LEN, schema_json.len() as u64),
            (format::OFF_INDEX, index_off as u64),
            (format::OFF_SLOTS, slots as u64),
            (format::OFF_ROWS_DATA, rows_off as u64),
            (format::OFF_ROWS_LEN, self.rows.len() as u64),
            (format::OFF_BODY_SUM, body_sum),
            (format::OFF_FILE_LEN, file_len as u64),
            (format::OFF_HEADER_SUM, 0),
        ];
        for (off, w) in words {
            h[off..off + 8].copy_from_slice(&w.to_le_bytes());
        }
        let header_sum = format::header_checksum(h);
        h[format::OFF_HEADER_SUM..format::OFF_HEADER_SUM + 8]
            .copy_from_slice(&header_sum.to_le_bytes());
        Ok([buf, self.rows])
    }
}
