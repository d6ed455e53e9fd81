//! Byte layout of a snapshot file, version 1. All integers are little-endian.
//!
//! ```text
//! offset size  field
//!      0    8  magic  b"FSTSNAP\0"
//!      8    2  format version (1)
//!     10    2  header length (128)
//!     12    4  flags (bit 0: FLAG_DELTA, bit 1: FLAG_SHARD; other bits must be zero)
//!     16    8  row count
//!     24    8  schema offset          (JSON, see SnapshotSchema)
//!     32    8  schema length
//!     40    8  index offset           (8-aligned)
//!     48    8  index slot count       (a power of two)
//!     56    8  rows offset            (8-aligned)
//!     64    8  rows length
//!     72    8  body checksum          xxh3-64 of bytes [128, file length)
//!     80    8  file length
//!     88    8  header checksum        xxh3-64 of the 128 header bytes, this field zeroed
//!     96   32  reserved (zero)
//! ```
//!
//! The index is an open-addressing table of `slot count` 16-byte slots `(key hash u64,
//! row offset + 1 u64)`, probed linearly from `hash & (slots - 1)`; a zero second word marks an
//! empty slot. Row offsets are relative to the rows section. A row is:
//!
//! ```text
//!  0  4  row length in bytes (multiple of 8)
//!  4  2  key length
//!  6  2  reserved
//!  8  8  event timestamp, microseconds since the Unix epoch
//! 16  8  created timestamp, microseconds (i64::MIN when the source has none)
//! 24  k  encoded entity key (see KeyBuf)
//!     .  null bitmap, ceil(features / 8) bytes, starting 8-aligned, bit i set = feature i null
//!     .  one 8-byte slot per feature, starting 8-aligned: the value itself for fixed-width
//!        types (int64, float64, bool as 0/1, timestamp micros), or (offset u32, length u32)
//!        relative to the row start for strings (UTF-8) and lists of float64 (raw f64s)
//!     .  variable-length data, then zero padding to a multiple of 8
//! ```

pub const MAGIC: [u8; 8] = *b"FSTSNAP\0";
pub const FORMAT_VERSION: u16 = 1;
pub const HEADER_LEN: usize = 128;
pub const ROW_FIXED: usize = 24;

/// Header flag: the snapshot is a delta (its schema's `base_version` is set). Kept in the header
/// as well as the schema so a tool that reads only headers can tell a partial snapshot from a
/// full one without parsing JSON; a reader refuses a file whose flag and schema disagree.
pub const FLAG_DELTA: u32 = 1;
/// Header flag: the snapshot is one shard of its view (its schema's `shard` is set). A shard
/// served as the whole view would answer NOT_FOUND for every other shard's entities, so the
/// flag and the schema must agree, like the delta flag.
pub const FLAG_SHARD: u32 = 2;
/// Every flag this build understands. A bit outside it means a format feature this build
/// cannot serve correctly, so the file is refused rather than misread.
pub const KNOWN_FLAGS: u32 = FLAG_DELTA | FLAG_SHARD;

pub(crate) const OFF_VERSION: usize = 8;
pub(crate) const OFF_HEADER_LEN: usize = 10;
pub(crate) const OFF_FLAGS: usize = 12;
pub(crate) const OFF_ROWS: usize = 16;
pub(crate) const OFF_SCHEMA: usize = 24;
pub(crate) const OFF_SCHEMA_LEN: usize = 32;
pub(crate) const OFF_INDEX: usize = 40;
pub(crate) const OFF_SLOTS: usize = 48;
pub(crate) const OFF_ROWS_DATA: usize = 56;
pub(crate) const OFF_ROWS_LEN: usize = 64;
pub(crate) const OFF_BODY_SUM: usize = 72;
pub(crate) const OFF_FILE_LEN: usize = 80;
pub(crate) const OFF_HEADER_SUM: usize = 88;

#[inline]
pub(crate) fn align8(n: usize) -> usize {
    (n + 7) & !7
}

#[inline]
pub(crate) fn read_u64(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}

#[inline]
pub(crate) fn read_u32(b: &[u8], off: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(a)
}

#[inline]
pub(crate) fn read_u16(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

/// The hash the index is keyed by. Fixed forever for format version 1.
#[inline]
pub fn key_hash(key: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key)
}

/// The shard of `count` an entity key with index hash `hash` belongs to. Taken from the hash's
/// high 32 bits (multiply-shift, so each shard is one contiguous range of them): the index
/// probes with the low bits, and shards cut by the low bits would leave three quarters of
/// every shard's index slots unreachable for their keys (all sharing the same low bits).
#[inline]
pub fn shard_of(hash: u64, count: u32) -> u32 {
    (((hash >> 32) * u64::from(count)) >> 32) as u32
}

/// Layout offsets of the parts of a row for a schema with `n_features` features.
#[inline]
pub(crate) fn row_offsets(key_len: usize, n_features: usize) -> (usize, usize, usize) {
    let bitmap = align8(ROW_FIXED + key_len);
    let slots = align8(bitmap + n_features.div_ceil(8));
    let var = slots + n_features * 8;
    (bitmap, slots, var)
}

/// Checksum of a header: every header byte counts, with the checksum field itself read as zero.
pub(crate) fn header_checksum(header: &[u8]) -> u64 {
    let mut h = [0u8; HEADER_LEN];
    h.copy_from_slice(&header[..HEADER_LEN]);
    h[OFF_HEADER_SUM..OFF_HEADER_SUM + 8].fill(0);
    xxhash_rust::xxh3::xxh3_64(&h)
}

/// The body checksum a snapshot's header records, read without loading the snapshot; `None`
/// when `bytes` is too short to hold a header.
pub fn body_checksum(bytes: &[u8]) -> Option<u64> {
    (bytes.len() >= HEADER_LEN).then(|| read_u64(bytes, OFF_BODY_SUM))
}

/// The row count a snapshot's header records, read without loading the snapshot; `None` when
/// `bytes` is too short to hold a header.
pub fn row_count(bytes: &[u8]) -> Option<u64> {
    (bytes.len() >= HEADER_LEN).then(|| read_u64(bytes, OFF_ROWS))
}
