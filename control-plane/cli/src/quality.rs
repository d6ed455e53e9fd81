//! `fstore quality show` and `fstore alerts`: a view's latest quality report and the alerts
//! that quality checks, drift and serving anomalies raised.

use clap::{Args, Subcommand};
use fstore_registry::AlertQuery;
use serde_json::Value;

use crate::{Global, open_control};

#[derive(Debug, Subcommand)]
pub enum QualityCommand {
    /// A view's statistics, the change against its previous version, every rule's result and
    /// its drift: of the latest evaluated run, or of one version.
    Show {
        view: String,
        #[arg(long)]
        version: Option<u64>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct AlertsArgs {
    /// Only `open` or `resolved` alerts.
    #[arg(long)]
    status: Option<String>,
    /// Only alerts about this view.
    #[arg(long)]
    view: Option<String>,
    #[arg(long, default_value_t = 20)]
    limit: usize,
    #[arg(long)]
    json: bool,
}

fn num(v: &Value) -> String {
    match v.as_f64() {
        None => "-".into(),
        Some(x) if x.fract() == 0.0 && x.abs() < 1e15 => format!("{x:.0}"),
        Some(x) if x.abs() >= 1e6 || x.abs() < 1e-3 => format!("{x:.3e}"),
        Some(x) => format!("{x:.3}"),
    }
}

pub async fn quality(g: &Global, what: QualityCommand) -> anyhow::Result<()> {
    let QualityCommand::Show {
        view,
        version,
        json,
    } = what;
    let cp = open_control(g).await?;
    let mut q = cp.quality(&view, version).await?;
    let principal = crate::access::principal(g, &cp).await?;
    cp.scrub_quality(&principal, &view, &mut q).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&q)?);
        return Ok(());
    }
    let r = &q.report;
    println!(
        "{} v{} — {} — evaluated {}; {} entities{}",
        q.view,
        q.version,
        if q.published {
            "published"
        } else {
            "REJECTED (not published)"
        },
        q.created_at,
        num(&r["stats"]["rows"]),
        r["previous_version"]
            .as_u64()
            .map(|p| format!(
                " (v{p}: {}, change {})",
                num(&r["change"]["rows_before"]),
                num(&r["change"]["rows_change"])
            ))
            .unwrap_or_default()
    );
    println!();
    println!(
        "{:<24} {:<14} {:>7} {:>11} {:>11} {:>11} {:>11} {:>11} {:>9} {:>10}",
        "feature", "type", "null%", "min", "p50", "mean", "max", "stddev", "distinct", "Δmean"
    );
    let changes = r["change"]["features"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for f in r["stats"]["features"].as_array().into_iter().flatten() {
        let name = f["name"].as_str().unwrap_or("");
        let change = changes
            .iter()
            .find(|c| c["name"] == name)
            .map_or("-".to_string(), |c| num(&c["mean_change"]));
        println!(
            "{:<24} {:<14} {:>7.2} {:>11} {:>11} {:>11} {:>11} {:>11} {:>9} {:>10}",
            name,
            f["type"].as_str().unwrap_or(""),
            f["null_rate"].as_f64().unwrap_or(0.0) * 100.0,
            num(&f["min"]),
            num(&f["quantiles"]["p50"]),
            num(&f["mean"]),
            num(&f["max"]),
            num(&f["stddev"]),
            format!(
                "{}{}",
                if f["distinct_approximate"] == true {
                    "~"
                } else {
                    ""
                },
                num(&f["distinct"])
            ),
            change
        );
        if let Some(top) = f["top_values"].as_array().filter(|t| !t.is_empty()) {
            let shown: Vec<String> = top
                .iter()
                .take(5)
                .map(|t| {
                    format!(
                        "{} ({})",
                        t["value"].as_str().unwrap_or(""),
                        num(&t["count"])
                    )
                })
                .collect();
            println!("{:<24} top: {}", "", shown.join(", "));
        }
    }
    let checks = r["checks"].as_array().cloned().unwrap_or_default();
    if !checks.is_empty() {
        println!();
        println!("checks:");
        for c in &checks {
            let mark = match (c["passed"].as_bool(), c["severity"].as_str()) {
                (Some(true), _) => "pass",
                (_, Some("warn")) => "WARN",
                _ => "FAIL",
            };
            println!("  {mark}  {}", c["message"].as_str().unwrap_or(""));
        }
    }
    if let Some(note) = r["drift_note"].as_str() {
        println!();
        println!("drift: {note}");
    }
    let drift = r["drift"].as_array().cloned().unwrap_or_default();
    if !drift.is_empty() {
        println!();
        println!("{:<24} {:>10} {:>10} {:>10}", "drift", "psi", "ks", "js");
        for d in &drift {
            println!(
                "{:<24} {:>10} {:>10} {:>10}",
                d["feature"].as_str().unwrap_or(""),
                num(&d["psi"]),
                num(&d["ks"]),
                num(&d["js"])
            );
        }
    }
    if q.history.len() > 1 {
        println!();
        println!("history:");
        for h in &q.history {
            let failing: Vec<String> = h["failing"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|f| match f["feature"].as_str() {
                    Some(feat) => format!("{feat}:{}", f["rule"].as_str().unwrap_or("")),
                    None => f["rule"].as_str().unwrap_or("").to_string(),
                })
                .collect();
            println!(
                "  v{:<6} {:<10} {:>10} rows  {}",
                h["version"],
                if h["published"] == true {
                    "published"
                } else {
                    "rejected"
                },
                num(&h["rows"]),
                if failing.is_empty() {
                    "all rules pass".to_string()
                } else {
                    format!("failing: {}", failing.join(", "))
                }
            );
        }
    }
    Ok(())
}

pub async fn alerts(g: &Global, a: AlertsArgs) -> anyhow::Result<()> {
    let cp = open_control(g).await?;
    let items = cp
        .alerts(&AlertQuery {
            status: a.status,
            view: a.view,
            limit: a.limit,
        })
        .await?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "items": items }))?
        );
        return Ok(());
    }
    if items.is_empty() {
        println!("No alerts.");
        return Ok(());
    }
    for al in &items {
        println!(
            "#{:<5} {:<8} {:<5} {:<7} ×{:<3} opened {}{}  {}",
            al.id,
            al.status,
            al.severity,
            al.kind,
            al.occurrences,
            al.opened_at,
            al.resolved_at
                .as_deref()
                .map(|r| format!(", resolved {r}"))
                .unwrap_or_default(),
            al.summary
        );
    }
    Ok(())
}
