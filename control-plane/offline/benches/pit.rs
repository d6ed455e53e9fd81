//! Point-in-time join of 1,000,000 entity rows against 800,000 feature rows (100,000
//! customers × 8 weekly snapshots × 16 features), by stage and end to end. Target: ≤ 5 s for
//! the whole thing on 2 cores.

use arrow::array::{ArrayRef, AsArray};
use criterion::{Criterion, criterion_group, criterion_main};
use fstore_offline::{EventIndex, concat_columns, gather, point_in_time_join};

#[path = "support/pit_data.rs"]
mod data;

fn bench(c: &mut Criterion) {
    let batches = data::feature_batches(42);
    let batch_columns: Vec<Vec<ArrayRef>> = batches.iter().map(|b| b.columns()).collect();
    let (entity_key, entity_ts) = data::entities(42);
    let entity_keys = [entity_key];

    let mut g = c.benchmark_group("pit_1m_x_800k");
    g.sample_size(10);

    g.bench_function("concat_98_batches_19_columns", |b| {
        b.iter(|| concat_columns(std::hint::black_box(&batch_columns)))
    });
    let table = concat_columns(&batch_columns).expect("concat");
    let (key, event, created) = (
        &table[..1],
        table[1].as_primitive(),
        table[2].as_primitive(),
    );
    let features = &table[3..];

    g.bench_function("build_index", |b| {
        b.iter(|| EventIndex::build(key, event, Some(created)))
    });
    let index = EventIndex::build(key, event, Some(created)).expect("index");

    g.bench_function("join", |b| {
        b.iter(|| point_in_time_join(&index, &entity_keys, &entity_ts, data::TTL))
    });
    let joined = point_in_time_join(&index, &entity_keys, &entity_ts, data::TTL).expect("join");

    g.bench_function("gather_16_columns", |b| {
        b.iter(|| gather(features, &joined))
    });

    g.bench_function("whole_concat_build_join_gather", |b| {
        b.iter(|| {
            let table = concat_columns(&batch_columns).expect("concat");
            let index = EventIndex::build(
                &table[..1],
                table[1].as_primitive(),
                Some(table[2].as_primitive()),
            )
            .expect("index");
            let joined =
                point_in_time_join(&index, &entity_keys, &entity_ts, data::TTL).expect("join");
            gather(&table[3..], &joined).expect("gather")
        })
    });

    // The same join with keys that take the hashed paths: int64 ids spread over the whole
    // range, and string ids. Index build and join together.
    for (name, rekey) in [
        (
            "build_and_join_sparse_int64_keys",
            data::sparse_ids as fn(&ArrayRef) -> ArrayRef,
        ),
        ("build_and_join_string_keys", data::string_ids),
    ] {
        let keys = [rekey(&table[0])];
        let entity_keys = [rekey(&entity_keys[0])];
        g.bench_function(name, |b| {
            b.iter(|| {
                let index = EventIndex::build(&keys, event, Some(created)).expect("index");
                point_in_time_join(&index, &entity_keys, &entity_ts, data::TTL).expect("join")
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
