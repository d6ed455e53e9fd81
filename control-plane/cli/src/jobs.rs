//! `fstore jobs`: the materialization runs the registry records, queueing one for a running
//! control plane, and cancelling one.

use anyhow::Context;
use clap::{Args, Subcommand};
use fstore_registry::{RunQuery, RunStatus};

use crate::{Global, open_control, whoami};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct JobsArgs {
    #[command(subcommand)]
    cmd: Option<JobsCommand>,
    /// Only runs of this view.
    #[arg(long)]
    view: Option<String>,
    /// Only runs with this status: queued, running, succeeded, failed, rejected, cancelled.
    #[arg(long)]
    status: Option<String>,
    #[arg(long, default_value_t = 20)]
    limit: usize,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum JobsCommand {
    /// One run, whole.
    Show { id: u64 },
    /// Queue a run of a view; a running control plane (`fstore serve control-plane`) picks
    /// it up. `fstore materialize` runs one here and now instead.
    Run { view: String },
    /// Cancel a queued run, or stop a running one at its next lease renewal.
    Cancel { id: u64 },
}

impl JobsArgs {
    /// What a token needs to run this: `materialize` to queue or cancel, else `describe`.
    pub(crate) fn needs(&self) -> (fstore_access::Action, fstore_access::ResourceKind, String) {
        use fstore_access::{Action, ResourceKind};
        match &self.cmd {
            Some(JobsCommand::Run { view }) => {
                (Action::Materialize, ResourceKind::FeatureView, view.clone())
            }
            Some(JobsCommand::Cancel { .. }) => {
                (Action::Materialize, ResourceKind::Project, String::new())
            }
            _ => (Action::Describe, ResourceKind::Project, String::new()),
        }
    }
}

fn print(v: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

pub async fn jobs(g: &Global, a: JobsArgs) -> anyhow::Result<()> {
    let cp = open_control(g).await?;
    match a.cmd {
        Some(JobsCommand::Show { id }) => print(&cp.job_run(id).await?),
        Some(JobsCommand::Run { view }) => {
            let t = cp.trigger_run(&view, &whoami()).await?;
            println!(
                "queued run #{} of `{view}`; a running control plane picks it up (`fstore jobs show {}`)",
                t.run.id, t.run.id
            );
            Ok(())
        }
        Some(JobsCommand::Cancel { id }) => {
            let run = cp.cancel_run(id, &whoami()).await?;
            match run.status {
                RunStatus::Cancelled => println!("run #{id} cancelled"),
                _ => println!("run #{id} is running; it stops at its next lease renewal"),
            }
            Ok(())
        }
        None => {
            let status = a
                .status
                .as_deref()
                .map(|s| {
                    RunStatus::parse(s).with_context(|| {
                        format!(
                            "`{s}` is not a status: queued, running, succeeded, failed, rejected, cancelled"
                        )
                    })
                })
                .transpose()?;
            let runs = cp
                .job_runs(&RunQuery {
                    view: a.view,
                    status,
                    before_id: None,
                    limit: a.limit,
                })
                .await?;
            if a.json {
                return print(&serde_json::json!({ "items": runs }));
            }
            if runs.is_empty() {
                println!("No runs.");
                return Ok(());
            }
            println!(
                "{:>6}  {:<20} {:<10} {:<9} {:>3}  {:<27} {:<9} {:>10} {:>10} {:>8}  error",
                "run",
                "view",
                "status",
                "trigger",
                "try",
                "requested",
                "mode",
                "read",
                "written",
                "rejected"
            );
            for r in &runs {
                let n = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_else(|| "-".into());
                println!(
                    "{:>6}  {:<20} {:<10} {:<9} {:>3}  {:<27} {:<9} {:>10} {:>10} {:>8}  {}",
                    r.id,
                    r.view,
                    r.status.as_str(),
                    r.trigger,
                    r.attempt,
                    r.requested_at,
                    r.mode.as_deref().unwrap_or("-"),
                    n(r.rows_read),
                    n(r.rows_written),
                    n(r.rows_rejected),
                    r.error.as_deref().unwrap_or("")
                );
            }
            Ok(())
        }
    }
}
