//! `fstore quickstart`: the whole path on embedded defaults (SQLite and a local directory),
//! from synthetic data to a served lookup, in one command.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use fstore_control::{ControlConfig, ControlPlane};

use crate::datagen::{self, FEATURES_YAML, GenSpec};

#[derive(Debug, Clone, Args)]
pub struct QuickstartArgs {
    /// Directory for the data, registry and snapshots (created if missing).
    #[arg(long, default_value = "fstore-quickstart")]
    pub dir: PathBuf,
    #[arg(long, default_value_t = 10_000)]
    pub customers: u64,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Edge address (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:6566")]
    pub edge_addr: String,
    /// Control-plane address.
    #[arg(long, default_value = "127.0.0.1:6565")]
    pub control_addr: String,
    /// Stop after the sample lookups instead of serving until Ctrl-C.
    #[arg(long)]
    pub exit: bool,
}

pub async fn run(args: QuickstartArgs) -> anyhow::Result<()> {
    let dir = &args.dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = std::fs::canonicalize(dir)?;
    println!("fstore quickstart in {}", dir.display());

    // 1. Data. As of today's midnight (UTC), so serve-time max age holds for fresh rows.
    let today = chrono::Utc::now()
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .map(|d| d.and_utc().timestamp_micros())
        .unwrap_or(0);
    let spec = GenSpec {
        customers: args.customers,
        seed: args.seed,
        as_of_micros: today,
        activity: 1.0,
    };
    let bar = indicatif::ProgressBar::new(args.customers);
    bar.set_style(
        indicatif::ProgressStyle::with_template("  generating {bar:30} {pos}/{len} customers")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let stats = datagen::generate(&dir.join("data"), &spec, &|n| bar.set_position(n))?;
    bar.finish_and_clear();
    println!(
        "1. generated {} customers ({} CRM rows) and {} raw orders in {} daily partitions (seed {}) in {:.1}s",
        stats.customers,
        stats.customer_rows,
        stats.orders,
        stats.partitions,
        args.seed,
        started.elapsed().as_secs_f64()
    );

    // 2. Definitions.
    let yaml_path = dir.join("features.yaml");
    std::fs::write(&yaml_path, FEATURES_YAML)?;
    datagen::write_components(&dir)?;
    let cp = Arc::new(
        ControlPlane::open(ControlConfig {
            database_url: dir.join("registry.db").to_string_lossy().into_owned(),
            store_url: dir.join("objects").to_string_lossy().into_owned(),
            max_body_bytes: 8 << 20,
            retain_versions: fstore_control::DEFAULT_RETAIN_VERSIONS,
            alerts: fstore_control::AlertSettings::default(),
            jobs: fstore_control::JobSettings::default(),
            auth: true,
        })
        .await?,
    );
    let defs = ControlPlane::parse(FEATURES_YAML, Some(&dir))?;
    let plan = cp.plan(&defs).await?;
    println!("2. fstore apply -f {}", yaml_path.display());
    for line in plan.render().lines() {
        println!("   {line}");
    }
    cp.apply(&defs, &fstore_control::ApplyOptions::new("quickstart"))
        .await?;

    // 3. Materialize.
    let bar = crate::spinner("materializing");
    let reports = cp
        .materialize(&[], "quickstart", fstore_control::RunMode::Full)
        .await;
    bar.finish_and_clear();
    for r in reports? {
        println!(
            "3. materialized {} v{}: {} source rows → {} customers, {:.1} MiB snapshot in {} ms",
            r.view,
            r.version,
            r.rows_read,
            r.rows_written,
            r.size_bytes as f64 / (1 << 20) as f64,
            r.duration_ms
        );
    }

    // 4. Tokens, then the servers: authentication is on, as it is everywhere.
    let me = fstore_control::Principal::local("quickstart");
    let admin = cp
        .create_token(&me, "quickstart-admin", "admin", None)
        .await?;
    let consumer = cp
        .create_token(&me, "quickstart-consumer", "consumer", None)
        .await?;
    let edge_token = cp
        .create_token(&me, "quickstart-edge", "edge", None)
        .await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let wait = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };
    let cl = tokio::net::TcpListener::bind(&args.control_addr)
        .await
        .with_context(|| format!("binding {}", args.control_addr))?;
    let control_url = format!("http://{}", cl.local_addr()?);
    let control = tokio::spawn(fstore_dashboard::serve(
        cp.clone(),
        cl,
        wait(stop_rx.clone()),
    ));
    let el = tokio::net::TcpListener::bind(&args.edge_addr)
        .await
        .with_context(|| format!("binding {}", args.edge_addr))?;
    let edge_url = format!("http://{}", el.local_addr()?);
    let mut cfg = fstore_edge::EdgeConfig::new(dir.join("objects").to_string_lossy().into_owned());
    cfg.cache_dir = dir.join("edge-cache");
    cfg.poll_interval = Duration::from_secs(1);
    // Reports to the control plane, so `fstore lineage` and `GET /v1/edges` show it.
    cfg.control_plane_url = Some(control_url.clone());
    cfg.edge_id = Some("quickstart-edge".into());
    cfg.auth_public_key = Some(cp.public_key().await?);
    cfg.control_plane_token = Some(edge_token.token.clone());
    let edge = tokio::spawn(fstore_edge::serve(cfg, el, wait(stop_rx.clone())));
    println!("4. control plane on {control_url}, edge on {edge_url}");
    println!(
        "   tokens (shown once; `fstore token list` lists them, `fstore token revoke` ends them):"
    );
    println!("     admin     {}", admin.token);
    println!("     consumer  {}", consumer.token);

    let client = reqwest::Client::builder()
        .default_headers(
            [(
                reqwest::header::AUTHORIZATION,
                reqwest::header::HeaderValue::from_str(&format!("Bearer {}", consumer.token))?,
            )]
            .into_iter()
            .collect(),
        )
        .build()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client.get(format!("{edge_url}/readyz")).send().await
            && r.status().is_success()
        {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "edge did not become ready within 30s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // 5. Sample lookups, each timed end to end over HTTP.
    println!("5. sample lookups (POST {edge_url}/v1/features, feature_service segmentation_v1):");
    for id in [1_000i64, 1_001, 1_002, 1_003, 99_999_999] {
        let body = serde_json::json!({"feature_service": "segmentation_v1", "entities": {"customer_id": [id]}});
        let t = Instant::now();
        let resp: serde_json::Value = client
            .post(format!("{edge_url}/v1/features"))
            .json(&body)
            .send()
            .await?
            .json()
            .await?;
        let us = t.elapsed().as_micros();
        let r = &resp["results"][0];
        let v = &r["values"];
        if r["statuses"][0] == "NOT_FOUND" {
            println!("   customer {id:>8}: not found ({us} µs)");
        } else {
            println!(
                "   customer {id:>8}: recency {}d, 90d orders {}, 90d spend {}, last channel {}, active {}, segment {} ({us} µs)",
                v[0], v[2], v[5], v[11], v[12], v[16]
            );
        }
    }
    // 6. Features computed by WebAssembly transforms: stored ones (segment, clv, value tier)
    // were computed in batch at materialization; the offer is computed per request, at the
    // edge, from the stored features and the cart.
    println!(
        "6. personalization at checkout (feature_service personalization_v1, computed by WebAssembly transforms):"
    );
    for (id, cart, channel) in [
        (1_000i64, 35.0, "web"),
        (1_001, 180.0, "mobile"),
        (1_002, 95.5, "store"),
    ] {
        let body = serde_json::json!({
            "feature_service": "personalization_v1",
            "entities": {"customer_id": [id]},
            "request_context": {"cart_value": cart, "channel": channel},
        });
        let t = Instant::now();
        let resp: serde_json::Value = client
            .post(format!("{edge_url}/v1/features"))
            .json(&body)
            .send()
            .await?
            .json()
            .await?;
        let us = t.elapsed().as_micros();
        let v = &resp["results"][0]["values"];
        println!(
            "   customer {id:>8}, cart {cart:>6.2} via {channel:<6}: segment {}, clv {}, tier {} → offer {}, discount {}% ({us} µs)",
            v[0], v[1], v[2], v[3], v[4]
        );
    }
    println!(
        "   try it:  curl -s {edge_url}/v1/features -H 'Authorization: Bearer {}' -d '{{\"feature_service\":\"segmentation_v1\",\"entities\":{{\"customer_id\":[1000]}}}}'",
        consumer.token
    );
    println!(
        "   Feast:   curl -s {edge_url}/get-online-features -H 'Authorization: Bearer {}' -d '{{\"features\":[\"customer_rfm:recency_days\"],\"entities\":{{\"customer_id\":[1000]}}}}'",
        consumer.token
    );

    // 7. A training set, point-in-time correct: each labelled row gets the features as they
    // were at its timestamp, computed by the same aggregations and components.
    let entity_rows = (args.customers * 10).min(1_000_000);
    let entities = dir.join("data/training_entities.parquet");
    datagen::write_entity_rows(&entities, args.customers, entity_rows, today, args.seed)?;
    let out = dir.join("training_set.parquet");
    let r = cp
        .historical(&fstore_control::HistoricalParams {
            entities: entities.to_string_lossy().into_owned(),
            feature_service: Some("segmentation_v1".into()),
            features: Vec::new(),
            out: out.to_string_lossy().into_owned(),
            full_feature_names: false,
            timestamp_column: "event_timestamp".into(),
            principal: None,
        })
        .await?;
    println!(
        "7. training set: {} entity rows × {} columns → {} in {} ms",
        r.rows,
        r.columns.len(),
        out.display(),
        r.duration_ms
    );
    for v in &r.views {
        println!(
            "   {}: {} of {} rows had history at their timestamp",
            v.view, v.entity_rows_matched, r.rows
        );
    }
    println!(
        "   again:   fstore --database-url {0}/registry.db --store {0}/objects historical --entities {1} --service segmentation_v1 --out train.parquet",
        dir.display(),
        entities.display()
    );

    // 8. The catalog: what a data scientist would type to find a feature.
    let q = "spend in the last month";
    let found = cp
        .search(&fstore_registry::SearchQuery {
            q: q.into(),
            limit: 3,
            ..Default::default()
        })
        .await?;
    println!("8. catalog search \"{q}\" ({} matches):", found.total);
    for h in &found.hits {
        println!("   {:>6.3}  {} {}", h.score, h.kind, h.name);
    }
    println!(
        "   more:    fstore --database-url {0}/registry.db --store {0}/objects catalog search \"{q}\" | lineage source orders | history view customer_rfm",
        dir.display()
    );
    println!(
        "            curl -s -H 'Authorization: Bearer {}' '{control_url}/v1/lineage/source/orders?direction=downstream&format=dot'",
        admin.token
    );

    println!(
        "   dashboard: {control_url}/ (log in with the admin token above; the consumer's sees no governance)"
    );

    if !args.exit {
        println!("Serving until Ctrl-C.");
        let _ = tokio::signal::ctrl_c().await;
    }
    let _ = stop_tx.send(true);
    let _ = control.await;
    let _ = edge.await;
    Ok(())
}
