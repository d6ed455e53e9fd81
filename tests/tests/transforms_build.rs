//! The transforms workspace (`transforms/`, a Cargo workspace of its own): its tests pass, and
//! the checked-in components in `transforms/components/` are exactly what `transforms/build.sh`
//! builds from the sources, so a change to the SDK or an example cannot land without its
//! rebuilt component.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const COMPONENTS: [&str; 5] = ["rfm_score", "segment", "clv", "next_offer", "hostile"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

/// A command that does not inherit the settings cargo gives this test process for the root
/// workspace's build.
fn command(program: &str) -> Command {
    let mut c = Command::new(program);
    for var in [
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET_DIR",
        "CARGO_BUILD_TARGET",
    ] {
        c.env_remove(var);
    }
    c
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string())
}

fn check(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether rustc can build for wasm32-wasip2: rustup's list when rustup is there, else the
/// target's library directory in the sysroot.
fn wasip2_installed() -> bool {
    if let Ok(out) = command("rustup")
        .args(["target", "list", "--installed"])
        .output()
        && out.status.success()
    {
        return String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l.trim() == "wasm32-wasip2");
    }
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    command(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .is_some_and(|o| {
            Path::new(String::from_utf8_lossy(&o.stdout).trim())
                .join("lib/rustlib/wasm32-wasip2")
                .is_dir()
        })
}

#[test]
fn transforms_workspace_tests_pass_and_components_are_up_to_date() {
    let transforms = repo().join("transforms");

    // (a) The SDK's and the examples' tests, natively, in the workspace's own target dir.
    let out = command(&cargo())
        .arg("test")
        .arg("--locked")
        .arg("--manifest-path")
        .arg(transforms.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(transforms.join("target"))
        .output()
        .expect("run cargo test for transforms/");
    check("cargo test in transforms/", &out);

    // (b) The checked-in components against a fresh build, the way build.sh makes them.
    if !wasip2_installed() {
        eprintln!(
            "NOTE: the wasm32-wasip2 target is not installed (`rustup target add wasm32-wasip2`); \
             skipping the check that transforms/components/*.wasm match their sources"
        );
        return;
    }
    let scratch = tempfile::tempdir().expect("temp dir");
    let built = scratch.path().join("components");
    let out = command("bash")
        .arg(transforms.join("build.sh"))
        .env("CARGO_TARGET_DIR", scratch.path().join("target"))
        .env("COMPONENTS_DIR", &built)
        .output()
        .expect("run transforms/build.sh");
    check("transforms/build.sh", &out);

    let mut stale = Vec::new();
    for name in COMPONENTS {
        let file = format!("{name}.wasm");
        let fresh = std::fs::read(built.join(&file)).expect("built component");
        let checked_in = std::fs::read(transforms.join("components").join(&file));
        match checked_in {
            Ok(bytes) if bytes == fresh => {}
            Ok(bytes) => {
                let at = bytes
                    .iter()
                    .zip(&fresh)
                    .position(|(a, b)| a != b)
                    .unwrap_or(bytes.len().min(fresh.len()));
                stale.push(format!(
                    "{file}: checked in {} bytes, built {} bytes, first difference at byte {at}",
                    bytes.len(),
                    fresh.len()
                ));
            }
            Err(e) => stale.push(format!("{file}: {e}")),
        }
    }
    assert!(
        stale.is_empty(),
        "transforms/components/ does not match what the sources build; run transforms/build.sh \
         and commit transforms/components/:\n  {}",
        stale.join("\n  ")
    );
}
