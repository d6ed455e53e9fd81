//! The HTTP ceiling the edge is measured against: axum on the same tokio runtime defaults as
//! `fstore serve edge`, answering `POST /` with a fixed ~1 KB JSON body (about the size of a
//! one-customer, 16-feature `/v1/features` response) after reading the request body.
//!
//! `cargo run --release -p fstore-edge --example bare_axum -- 127.0.0.1:18080`

use axum::Router;
use axum::body::Bytes;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::post;

fn body() -> &'static str {
    static BODY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BODY.get_or_init(|| {
        let values: Vec<String> = (0..16).map(|i| format!("{}.25", 1000 + i)).collect();
        let statuses = vec!["\"PRESENT\""; 16].join(",");
        let times = vec!["\"2026-01-01T00:00:00Z\""; 16].join(",");
        let mut s = format!(
            r#"{{"manifest":1,"views":{{"customer_rfm":1}},"features":[{}],"results":[{{"entity":{{"customer_id":1000}},"values":[{}],"statuses":[{statuses}],"event_timestamps":[{times}]}}]}}"#,
            (0..16)
                .map(|i| format!("\"customer_rfm:feature_{i:02}\""))
                .collect::<Vec<_>>()
                .join(","),
            values.join(","),
        );
        s.shrink_to_fit();
        s
    })
}

async fn answer(body_in: Bytes) -> impl IntoResponse {
    std::hint::black_box(body_in.len());
    ([(header::CONTENT_TYPE, "application/json")], body())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18080".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!(
        "bare axum on http://{} ({} byte body)",
        listener.local_addr()?,
        body().len()
    );
    axum::serve(listener, Router::new().route("/", post(answer))).await?;
    Ok(())
}
