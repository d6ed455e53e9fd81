//! One run of the point-in-time benchmark (see benches/pit.rs), stage by stage, for measuring
//! peak memory: `/usr/bin/time -v target/release/examples/pit_peak`.

use std::time::Instant;

use arrow::array::{Array, ArrayRef, AsArray};
use fstore_offline::{EventIndex, concat_columns, gather, point_in_time_join};

#[path = "../benches/support/pit_data.rs"]
#[allow(dead_code)] // Shared with the bench, which uses all of it.
mod data;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let t = Instant::now();
    let batch_columns: Vec<Vec<ArrayRef>> = data::feature_batches(42)
        .iter()
        .map(|b| b.columns())
        .collect();
    let (entity_key, entity_ts) = data::entities(42);
    println!("generate: {:?}", t.elapsed());

    let start = Instant::now();
    let t = Instant::now();
    let table = concat_columns(&batch_columns)?;
    drop(batch_columns);
    println!("concat {} rows: {:?}", table[0].len(), t.elapsed());
    let t = Instant::now();
    let index = EventIndex::build(
        &table[..1],
        table[1].as_primitive(),
        Some(table[2].as_primitive()),
    )?;
    println!("build index ({} keys): {:?}", index.groups(), t.elapsed());
    let t = Instant::now();
    let joined = point_in_time_join(&index, &[entity_key], &entity_ts, data::TTL)?;
    println!(
        "join {} entity rows ({} matched): {:?}",
        joined.len(),
        joined.len() - joined.null_count(),
        t.elapsed()
    );
    let t = Instant::now();
    let out = gather(&table[3..], &joined)?;
    println!("gather {} columns: {:?}", out.len(), t.elapsed());
    println!("total: {:?}", start.elapsed());
    let bytes: usize = out.iter().map(|c| c.get_array_memory_size()).sum();
    println!("output columns: {} MiB", bytes >> 20);
    Ok(())
}
