//! The deployment files are correct, not decorative: the Kubernetes manifests validate against
//! the Kubernetes API's schemas, and every fstore command and setting in the compose file, the
//! manifests and the container file is parsed by the binary's own argument parser, values
//! included. Wiring between objects (probes, selectors, config and secret keys, the balancer's
//! upstreams) is checked too. The fleet test runs the nginx configuration itself.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::CommandFactory;
use serde_json::Value;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// Every YAML document in `path` (documents separated by `---` lines), as JSON values with
/// every scalar a string.
fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("read");
    text.split("\n---\n")
        .filter(|d| {
            d.lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        })
        .map(|d| marked_yaml::from_yaml(0, d).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .collect()
}

fn k8s_objects() -> Vec<(String, Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(deploy_dir().join("k8s"))
        .expect("deploy/k8s")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| {
            let name = f.file_name().expect("name").to_string_lossy().into_owned();
            documents(f).into_iter().map(move |d| (name.clone(), d))
        })
        .collect()
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// The clap subcommand `fstore <path…>` and every environment variable it (or a global flag)
/// reads, with the long flag it sets.
fn env_flags(path: &[&str]) -> BTreeMap<String, String> {
    let mut cmd = fstore_cli::Cli::command();
    cmd.build();
    let mut out = BTreeMap::new();
    let mut add = |c: &clap::Command| {
        for a in c.get_arguments() {
            if let (Some(env), Some(long)) = (a.get_env(), a.get_long()) {
                out.insert(env.to_string_lossy().into_owned(), long.to_string());
            }
        }
    };
    add(&cmd);
    let mut c = &cmd;
    for p in path {
        c = c
            .find_subcommand(p)
            .unwrap_or_else(|| panic!("no subcommand `{p}` in {path:?}"));
        add(c);
    }
    out
}

/// `${VAR:-default}` → `default`, as compose would give it with VAR unset.
fn compose_default(v: &str) -> String {
    let mut out = v.to_string();
    while let Some(start) = out.find("${") {
        let Some(end) = out[start..].find('}') else {
            break;
        };
        let inner = &out[start + 2..start + end];
        let default = inner.split_once(":-").map_or("", |(_, d)| d).to_string();
        out.replace_range(start..start + end + 1, &default);
    }
    out
}

/// Parses `fstore <args>` with the `FSTORE_*` settings of `env` turned into the flags they
/// stand for, so the binary's parser checks each name and each value. Other variables (the
/// object store's `AWS_*`) are not fstore's to check.
fn check_command(what: &str, args: &[String], env: &BTreeMap<String, String>) {
    let path: Vec<&str> = args.iter().map(String::as_str).take(2).collect();
    let known = env_flags(&path);
    let mut argv = vec!["fstore".to_string()];
    argv.extend(args.iter().cloned());
    for (k, v) in env {
        if !k.starts_with("FSTORE_") {
            continue;
        }
        let long = known
            .get(k)
            .unwrap_or_else(|| panic!("{what}: `fstore {}` reads no {k}", path.join(" ")));
        // Kubernetes' $(VAR) references are filled in at run time; any URL stands in.
        let v = if v.contains("$(") {
            "http://10.0.0.1:6566".to_string()
        } else {
            v.clone()
        };
        argv.push(format!("--{long}={v}"));
    }
    if let Err(e) = <fstore_cli::Cli as clap::Parser>::try_parse_from(&argv) {
        panic!("{what}: `{}` does not parse: {e}", argv.join(" "));
    }
}

#[test]
fn compose_services_run_the_binary_with_flags_it_has() {
    let compose = documents(&deploy_dir().join("compose.yaml"))
        .pop()
        .expect("a document");
    let services = compose["services"].as_object().expect("services");
    let mut fstore_services = 0;
    let mut edges = BTreeMap::new();
    for (name, svc) in services {
        let target = s(&svc["build"]["target"]);
        if target.is_empty() {
            continue;
        }
        fstore_services += 1;
        assert_eq!(
            s(&svc["build"]["dockerfile"]),
            "deploy/Dockerfile",
            "{name}"
        );
        let args: Vec<String> = svc["command"]
            .as_array()
            .expect("command")
            .iter()
            .map(|a| s(a).to_string())
            .collect();
        assert_eq!(
            args[1], target,
            "{name} runs the role its image is built for"
        );
        let env: BTreeMap<String, String> = svc["environment"]
            .as_object()
            .expect("environment")
            .iter()
            .map(|(k, v)| (k.clone(), compose_default(s(v))))
            .collect();
        check_command(&format!("compose service {name}"), &args, &env);
        if target == "edge" {
            edges.insert(name.clone(), env);
        } else {
            // The control plane is the one that publishes: it needs the registry.
            assert!(env["FSTORE_DATABASE_URL"].starts_with("postgres://"));
        }
    }
    assert_eq!(fstore_services, 4, "a control plane and three edges");
    assert_eq!(edges.len(), 3);
    // All edges read one store, each in its own region, each reachable where it says.
    let stores: BTreeSet<&String> = edges.values().map(|e| &e["FSTORE_STORE_URL"]).collect();
    assert_eq!(stores.len(), 1, "{stores:?}");
    let regions: BTreeSet<&String> = edges.values().map(|e| &e["FSTORE_EDGE_REGION"]).collect();
    assert_eq!(regions.len(), 3);
    for (name, env) in &edges {
        let port = env["FSTORE_EDGE_ADDR"].rsplit(':').next().expect("port");
        assert_eq!(
            env["FSTORE_EDGE_ADVERTISE"],
            format!("http://{name}:{port}")
        );
        assert_eq!(env["FSTORE_CONTROL_PLANE_URL"], "http://control-plane:6565");
    }
    // The balancer forwards to exactly these edges, at these ports.
    let nginx = std::fs::read_to_string(deploy_dir().join("nginx/nginx.conf")).expect("nginx");
    let upstreams: BTreeSet<String> = nginx
        .lines()
        .filter(|l| l.trim_end().ends_with(';'))
        .filter_map(|l| l.trim().strip_prefix("server "))
        .map(|l| l.split_whitespace().next().unwrap_or_default().to_string())
        .collect();
    let expected: BTreeSet<String> = edges
        .iter()
        .map(|(name, env)| {
            format!(
                "{name}:{}",
                env["FSTORE_EDGE_ADDR"]
                    .rsplit(':')
                    .next()
                    .unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(upstreams, expected);
    let lb_deps: BTreeSet<String> = services["lb"]["depends_on"]
        .as_array()
        .expect("lb depends_on")
        .iter()
        .map(|v| s(v).to_string())
        .collect();
    assert_eq!(lb_deps, edges.keys().cloned().collect());
}

#[test]
fn the_container_file_builds_three_roles_that_run_as_non_root() {
    let text = std::fs::read_to_string(deploy_dir().join("Dockerfile")).expect("Dockerfile");
    let mut stage = String::new();
    let mut stages: BTreeMap<String, (BTreeMap<String, String>, Vec<String>)> = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("FROM ") {
            stage = rest.rsplit(" AS ").next().unwrap_or_default().to_string();
            stages.entry(stage.clone()).or_default();
        } else if let Some(rest) = line.strip_prefix("ENV ") {
            for pair in rest.trim_end_matches('\\').split_whitespace() {
                if let Some((k, v)) = pair.split_once('=') {
                    stages
                        .entry(stage.clone())
                        .or_default()
                        .0
                        .insert(k.into(), v.into());
                }
            }
        } else if line.starts_with("FSTORE_") {
            // A continuation line of a multi-line ENV.
            let pair = line.trim_end_matches('\\').trim();
            if let Some((k, v)) = pair.split_once('=') {
                stages
                    .entry(stage.clone())
                    .or_default()
                    .0
                    .insert(k.into(), v.into());
            }
        } else if let Some(rest) = line.strip_prefix("CMD ") {
            let cmd: Vec<String> = serde_json::from_str(rest).expect("CMD as a JSON array");
            stages.entry(stage.clone()).or_default().1 = cmd;
        }
    }
    assert!(
        text.contains("USER 10001:10001"),
        "runtime images drop root"
    );
    assert!(text.contains("FROM rust:") && text.contains("FROM debian:bookworm-slim"));
    for role in ["control-plane", "edge", "router"] {
        let (env, cmd) = stages
            .get(role)
            .unwrap_or_else(|| panic!("no `{role}` target"));
        assert_eq!(cmd.get(1).map(String::as_str), Some(role));
        let mut env = env.clone();
        if role == "router" {
            // A router needs its edges; the deployment gives them.
            env.insert("FSTORE_ROUTER_EDGES".into(), "http://edge:6566".into());
        }
        check_command(&format!("Dockerfile target {role}"), cmd, &env);
    }
}

#[test]
fn manifests_wire_edges_as_the_binary_expects() {
    let objects = k8s_objects();
    let of_kind = |kind: &str| -> Vec<&Value> {
        objects
            .iter()
            .map(|(_, o)| o)
            .filter(|o| s(&o["kind"]) == kind)
            .collect()
    };
    let mut keys: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for (kind, field) in [("ConfigMap", "data"), ("Secret", "stringData")] {
        for o in of_kind(kind) {
            let names = o[field]
                .as_object()
                .expect("data")
                .keys()
                .cloned()
                .collect();
            keys.insert(
                (kind.to_string(), s(&o["metadata"]["name"]).to_string()),
                names,
            );
        }
    }
    let deployments = of_kind("Deployment");
    assert_eq!(deployments.len(), 2, "the control plane and the edges");
    let mut edge = None;
    for d in &deployments {
        let name = s(&d["metadata"]["name"]);
        let labels = &d["spec"]["template"]["metadata"]["labels"];
        assert_eq!(&d["spec"]["selector"]["matchLabels"], labels, "{name}");
        let sec = &d["spec"]["template"]["spec"]["securityContext"];
        assert_eq!(s(&sec["runAsNonRoot"]), "true", "{name} runs as non-root");
        let c = &d["spec"]["template"]["spec"]["containers"][0];
        let args: Vec<String> = c["args"]
            .as_array()
            .expect("args")
            .iter()
            .map(|a| s(a).to_string())
            .collect();
        let mut env = BTreeMap::new();
        for e in c["env"].as_array().expect("env") {
            let var = s(&e["name"]).to_string();
            let value = if let Some(v) = e.get("value") {
                s(v).to_string()
            } else {
                let from = &e["valueFrom"];
                for (kind, field) in [("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")]
                {
                    if let Some(r) = from.get(field) {
                        let (obj, key) = (s(&r["name"]), s(&r["key"]));
                        let held = keys
                            .get(&(kind.to_string(), obj.to_string()))
                            .unwrap_or_else(|| panic!("{name}: no {kind} `{obj}`"));
                        assert!(held.contains(key), "{name}: {kind} `{obj}` has no `{key}`");
                    }
                }
                // Values from config maps and secrets: a stand-in of the right shape.
                match var.as_str() {
                    "FSTORE_EDGE_POLL_INTERVAL" => "5s".into(),
                    "FSTORE_REPLICA_ID" | "FSTORE_EDGE_ID" => "pod-0".into(),
                    _ => "x".into(),
                }
            };
            env.insert(var, value);
        }
        check_command(&format!("Deployment {name}"), &args, &env);
        let probe = s(&c["readinessProbe"]["httpGet"]["path"]);
        if args[1] == "edge" {
            assert_eq!(
                probe, "/readyz",
                "edges take traffic once a snapshot is loaded"
            );
            assert_eq!(
                s(&c["volumeMounts"][0]["mountPath"]),
                env["FSTORE_EDGE_CACHE_DIR"],
                "the snapshot cache is a writable volume"
            );
            edge = Some((name.to_string(), labels.clone()));
        } else {
            assert_eq!(probe, "/healthz");
        }
    }
    let (edge_name, edge_labels) = edge.expect("an edge Deployment");
    let hpa = of_kind("HorizontalPodAutoscaler");
    assert_eq!(s(&hpa[0]["spec"]["scaleTargetRef"]["name"]), edge_name);
    let pdb = of_kind("PodDisruptionBudget");
    assert_eq!(pdb[0]["spec"]["selector"]["matchLabels"], edge_labels);
    for svc in of_kind("Service") {
        let sel = &svc["spec"]["selector"];
        assert!(
            deployments
                .iter()
                .any(|d| &d["spec"]["template"]["metadata"]["labels"] == sel),
            "Service {} selects no Deployment's pods",
            s(&svc["metadata"]["name"])
        );
    }
}

/// `kubernetes-validate` (PyPI; offline, schemas bundled) installed by `.ci/run`.
fn validator() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("FSTORE_KUBE_VALIDATE") {
        return Some(PathBuf::from(p));
    }
    let home = std::env::var("HOME").ok()?;
    let p = Path::new(&home).join(".cache/fstore/kube-venv/bin/kubernetes-validate");
    p.exists().then_some(p)
}

#[test]
fn kubernetes_manifests_validate_against_the_api_schemas() {
    let Some(validate) = validator() else {
        assert!(
            std::env::var("CI").is_err(),
            "kubernetes-validate is missing; .ci/run installs it"
        );
        eprintln!("skipping: kubernetes-validate is not installed (see .ci/run)");
        return;
    };
    let dir = deploy_dir().join("k8s");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("k8s")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let run = |files: &[PathBuf]| {
        Command::new(&validate)
            .args(["--strict", "--kubernetes-version", "1.33.0"])
            .args(files)
            .output()
            .expect("run kubernetes-validate")
    };
    let out = run(&files);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The validator is not a rubber stamp: a misspelt field and a wrong type are caught.
    let tmp = tempfile::tempdir().expect("tmp");
    let edge = std::fs::read_to_string(dir.join("edge.yaml")).expect("edge.yaml");
    for (from, to) in [
        ("readinessProbe:", "readinessProb:"),
        ("replicas: 3", "replicas: three"),
    ] {
        let bad = tmp.path().join("bad.yaml");
        std::fs::write(&bad, edge.replacen(from, to, 1)).expect("write");
        let out = run(&[bad]);
        assert!(!out.status.success(), "`{to}` passed validation");
    }
}
