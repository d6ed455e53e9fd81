//! How long an edge takes to load its part of a big sharded view: 10,000,000 customers × 16
//! features (the quickstart's `customer_rfm` shape), split into 4 shards, each edge holding
//! one. One iteration is what a fresh edge does on its first poll: fetch its shard file from
//! the object store into an empty cache directory, verify both checksums and every index
//! entry, map it and build the catalog. The store is a local directory (the file is already in
//! the page cache after the first iteration), so network transfer is not in these figures;
//! BENCHMARKS.md adds it per shard size.
//!
//! `cargo bench -p fstore-edge --bench shards` (FSTORE_BENCH_CUSTOMERS=… to change the size;
//! needs about 3× the full snapshot in memory while the data is generated, and 2× on disk).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use fstore_edge::{Components, Metrics, build_catalog};
use fstore_snapshot::{ShardSet, Snapshot, split, testkit};
use fstore_storage::{
    MANIFEST_FORMAT, Manifest, ManifestShard, ManifestView, Store, shard_key, snapshot_key,
};

const SHARDS: u32 = 4;

fn customers() -> i64 {
    std::env::var("FSTORE_BENCH_CUSTOMERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000)
}

/// Writes the full snapshot and its shards into a local store and publishes a manifest.
fn publish(rt: &tokio::runtime::Runtime, root: &std::path::Path) -> (Store, Manifest) {
    let n = customers();
    let started = Instant::now();
    let bytes = testkit::customer_rfm_writer(n)
        .finish_to_vec()
        .expect("snapshot");
    let store = Store::from_url(&root.to_string_lossy()).expect("store");
    let key = snapshot_key("customer_rfm", 1);
    let file = root.join(&key);
    std::fs::create_dir_all(file.parent().expect("dir")).expect("mkdir");
    std::fs::write(&file, &bytes).expect("write whole");
    drop(bytes);
    let whole = Snapshot::open(&file).expect("valid");
    eprintln!(
        "generated {n} customers × 16 features: {:.1} MiB in {:.1?}",
        whole.size_bytes() as f64 / 1048576.0,
        started.elapsed()
    );
    let started = Instant::now();
    let parts = split(&whole, SHARDS).expect("split");
    eprintln!("split into {SHARDS} shards in {:.1?}", started.elapsed());
    let mut shards = Vec::new();
    for (index, [h, b]) in (0u32..).zip(parts) {
        let rows = fstore_snapshot::format::row_count(&h).expect("header");
        let checksum = fstore_snapshot::format::body_checksum(&h).expect("header");
        let k = shard_key(&key, index, SHARDS);
        let size = (h.len() + b.len()) as u64;
        std::fs::write(root.join(&k), [h, b].concat()).expect("write shard");
        eprintln!(
            "shard {index}: {rows} customers, {:.1} MiB",
            size as f64 / 1048576.0
        );
        shards.push(ManifestShard {
            index,
            count: SHARDS,
            key: k,
            size_bytes: size,
            rows,
            checksum: format!("{checksum:016x}"),
        });
    }
    let view = ManifestView {
        version: 1,
        key: key.clone(),
        size_bytes: whole.size_bytes(),
        rows: whole.len(),
        checksum: format!("{:016x}", whole.checksum()),
        deltas: Vec::new(),
        shards,
    };
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        seq: 1,
        created_at: "2026-12-05T00:00:00Z".into(),
        views: BTreeMap::from([("customer_rfm".to_string(), view)]),
        services: BTreeMap::new(),
        on_demand: BTreeMap::new(),
        transforms: BTreeMap::new(),
    };
    rt.block_on(store.publish(&manifest)).expect("publish");
    (store, manifest)
}

/// Loads the shards `held` into a fresh cache directory `iters` times; returns the time spent
/// building catalogs (removing the cache between rounds is not counted).
fn time_loads(
    rt: &tokio::runtime::Runtime,
    store: &Store,
    manifest: &Manifest,
    held: &ShardSet,
    scratch: &std::path::Path,
    iters: u64,
) -> Duration {
    let mut total = Duration::ZERO;
    for round in 0..iters {
        let cache = scratch.join(format!("cache-{round}"));
        let mut components = Components::new(Default::default());
        let metrics = Metrics::default();
        let started = Instant::now();
        let catalog = rt
            .block_on(build_catalog(
                store,
                manifest,
                &cache,
                None,
                &mut components,
                &metrics,
                held,
            ))
            .expect("catalog");
        total += started.elapsed();
        assert!(catalog.view("customer_rfm").expect("view").entities > 0);
        drop(catalog);
        let _ = std::fs::remove_dir_all(&cache);
    }
    total
}

fn load(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tmp");
    let (store, manifest) = publish(&rt, &dir.path().join("objects"));
    let scratch = dir.path().join("caches");
    let mut g = c.benchmark_group("edge_load_10m_x16_4_shards");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    for index in 0..SHARDS {
        let held: ShardSet = format!("{index}/{SHARDS}").parse().expect("shards");
        g.bench_function(BenchmarkId::new("one_shard", index), |b| {
            b.iter_custom(|iters| time_loads(&rt, &store, &manifest, &held, &scratch, iters))
        });
    }
    g.finish();

    // The same from an S3 API server (moto on loopback, FSTORE_BENCH_S3_ENDPOINT=http://…,
    // bucket `bench`): the download is in the figure.
    let Ok(endpoint) = std::env::var("FSTORE_BENCH_S3_ENDPOINT") else {
        return;
    };
    let s3 = Store::from_url_opts(
        "s3://bench/live",
        &[
            ("aws_endpoint", endpoint.as_str()),
            ("aws_access_key_id", "test"),
            ("aws_secret_access_key", "test"),
            ("aws_region", "us-east-1"),
            ("aws_allow_http", "true"),
        ],
    )
    .expect("s3 store");
    let local = dir.path().join("objects");
    let view = &manifest.views["customer_rfm"];
    for shard in &view.shards {
        let bytes = std::fs::read(local.join(&shard.key)).expect("shard file");
        rt.block_on(s3.put_new(&shard.key, bytes.into()))
            .expect("upload");
    }
    rt.block_on(s3.publish(&manifest)).expect("publish");
    let mut g = c.benchmark_group("edge_load_10m_x16_4_shards_s3");
    g.sample_size(10).measurement_time(Duration::from_secs(30));
    let held: ShardSet = format!("0/{SHARDS}").parse().expect("shards");
    g.bench_function("one_shard_downloaded", |b| {
        b.iter_custom(|iters| time_loads(&rt, &s3, &manifest, &held, &scratch, iters))
    });
    g.finish();
}

criterion_group!(benches, load);
criterion_main!(benches);
