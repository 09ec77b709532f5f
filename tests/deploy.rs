//! The deployment files agree with the server they deploy: the Kubernetes
//! manifests in deploy/kubernetes/ and the Dockerfile are parsed and held to
//! the real `airlock` binary (its flags, from `--help`) and to the server's
//! constants (the connection grace after a drain), so a renamed flag, a
//! moved port or a longer drain breaks this test instead of a rollout.
//!
//! Nothing here talks to a cluster or builds an image: the files are read
//! as text, the manifests with a YAML 1.2 parser (saphyr). Kubernetes reads
//! YAML 1.1, where `0400` is octal and YAML 1.2 reads it as decimal 400, so
//! file modes in the manifests are written as decimal (256 for 0400) and
//! checked as such here.

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const MANIFESTS: &str = "deploy/kubernetes";
const DEPLOYMENT_FILE: &str = "deploy/kubernetes/deployment.yaml";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("runner/ has a parent")
        .to_owned()
}

/// A manifest: the file it came from and its content as JSON.
struct Manifest {
    file: String,
    doc: Value,
}

impl Manifest {
    fn kind(&self) -> &str {
        self.doc["kind"].as_str().unwrap_or("")
    }
}

/// saphyr's tree as JSON, which the assertions below can index with `[]`.
fn to_json(node: &saphyr::YamlOwned) -> Value {
    use saphyr::{ScalarOwned, YamlOwned};
    match node {
        YamlOwned::Value(scalar) => match scalar {
            ScalarOwned::Null => Value::Null,
            ScalarOwned::Boolean(b) => Value::Bool(*b),
            ScalarOwned::Integer(i) => Value::from(*i),
            ScalarOwned::FloatingPoint(f) => Value::from(f.into_inner()),
            ScalarOwned::String(s) => Value::String(s.clone()),
        },
        YamlOwned::Representation(s, _, _) => Value::String(s.clone()),
        YamlOwned::Sequence(items) => Value::Array(items.iter().map(to_json).collect()),
        YamlOwned::Mapping(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let key = match to_json(k) {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
        YamlOwned::Tagged(_, inner) => to_json(inner),
        YamlOwned::Alias(_) | YamlOwned::BadValue => {
            panic!(
                "unsupported YAML node {node:?} (aliases and bad values are not allowed in the manifests)"
            )
        }
    }
}

fn load_yaml(path: &Path) -> Vec<Value> {
    use saphyr::LoadableYamlNode;
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let docs = saphyr::YamlOwned::load_from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}; fix that file", path.display()));
    docs.iter().map(to_json).filter(|d| !d.is_null()).collect()
}

/// Every manifest under deploy/kubernetes, and the kustomization.
fn manifests() -> (Vec<Manifest>, Value) {
    let dir = repo().join(MANIFESTS);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    paths.sort();
    let mut out = Vec::new();
    let mut kustomization = Value::Null;
    for path in paths {
        let file = format!(
            "{MANIFESTS}/{}",
            path.file_name().expect("file name").to_string_lossy()
        );
        for doc in load_yaml(&path) {
            assert!(
                doc["apiVersion"].is_string() && doc["kind"].is_string(),
                "{file}: every document needs apiVersion and kind; fix {file}"
            );
            if doc["kind"] == "Kustomization" {
                kustomization = doc;
            } else {
                out.push(Manifest {
                    file: file.clone(),
                    doc,
                });
            }
        }
    }
    (out, kustomization)
}

fn one<'a>(all: &'a [Manifest], kind: &str, name: &str) -> &'a Manifest {
    let found: Vec<&Manifest> = all
        .iter()
        .filter(|m| m.kind() == kind && m.doc["metadata"]["name"] == name)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected exactly one {kind} named {name:?} under {MANIFESTS}/, found {}; add or fix it there",
        found.len()
    );
    found[0]
}

/// The `airlock` container of the Deployment.
fn airlock_container(pod: &Value) -> &Value {
    pod["containers"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == "airlock"))
        .unwrap_or_else(|| {
            panic!("the Deployment has no container named airlock; fix {DEPLOYMENT_FILE}")
        })
}

fn args(container: &Value) -> Vec<String> {
    container["args"]
        .as_array()
        .unwrap_or_else(|| panic!("the airlock container has no args; fix {DEPLOYMENT_FILE}"))
        .iter()
        .map(|a| match a {
            Value::String(s) => s.clone(),
            other => {
                panic!("container arg {other} is not a string (quote it); fix {DEPLOYMENT_FILE}")
            }
        })
        .collect()
}

/// The value of `--flag VALUE` or `--flag=VALUE` in `args`.
fn flag(args: &[String], name: &str) -> Option<String> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == name {
            return Some(
                it.next()
                    .unwrap_or_else(|| {
                        panic!("{name} has no value in the container args; fix {DEPLOYMENT_FILE}")
                    })
                    .clone(),
            );
        }
        if let Some(v) = a.strip_prefix(&format!("{name}=")) {
            return Some(v.to_owned());
        }
    }
    None
}

/// The literal value of environment variable `name` in `container`.
fn env_value(container: &Value, name: &str) -> Option<String> {
    container["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
        .and_then(|e| e["value"].as_str().map(str::to_owned))
}

/// A setting given as `--flag` (which wins) or as its environment variable.
fn setting(container: &Value, flag_name: &str, env: &str) -> Option<String> {
    flag(&args(container), flag_name).or_else(|| env_value(container, env))
}

fn listen_port(container: &Value) -> i64 {
    let listen = flag(&args(container), "--listen").unwrap_or_else(|| {
        panic!("the airlock container does not pass --listen, so serve binds 127.0.0.1:7878, unreachable from the Service; add `--listen 0.0.0.0:7878` in {DEPLOYMENT_FILE}")
    });
    let (host, port) = listen
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("--listen {listen} has no port; fix {DEPLOYMENT_FILE}"));
    assert!(
        host == "0.0.0.0" || host == "[::]",
        "--listen {listen} binds {host}, which the kubelet's probes and the Service cannot reach; listen on 0.0.0.0 in {DEPLOYMENT_FILE}"
    );
    port.parse().unwrap_or_else(|_| {
        panic!("--listen {listen}: {port} is not a port; fix {DEPLOYMENT_FILE}")
    })
}

/// A probe's or Service's port: a number, or the name of a container port.
fn resolve_port(container: &Value, port: &Value, what: &str, file: &str) -> i64 {
    match port {
        Value::Number(n) => n.as_i64().expect("integer port"),
        Value::String(name) => container["ports"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == name.as_str()))
            .and_then(|p| p["containerPort"].as_i64())
            .unwrap_or_else(|| panic!("{what} names port {name:?}, which the airlock container does not declare; fix {file}")),
        other => panic!("{what} has port {other}, neither a number nor a name; fix {file}"),
    }
}

fn volume<'a>(pod: &'a Value, name: &str) -> &'a Value {
    pod["volumes"]
        .as_array()
        .and_then(|vs| vs.iter().find(|v| v["name"] == name))
        .unwrap_or_else(|| panic!("the pod has no volume named {name:?}, but a container mounts it; fix {DEPLOYMENT_FILE}"))
}

/// The volume mount of `container` at exactly `path`.
fn mount_at<'a>(container: &'a Value, path: &str) -> Option<&'a Value> {
    container["volumeMounts"].as_array()?.iter().find(|m| {
        m["mountPath"].as_str().map(|p| p.trim_end_matches('/')) == Some(path.trim_end_matches('/'))
    })
}

/// The volume mount of `container` that holds `path` (at or under it).
fn mount_holding<'a>(container: &'a Value, path: &str) -> Option<&'a Value> {
    container["volumeMounts"]
        .as_array()?
        .iter()
        .filter(|m| {
            let at = m["mountPath"].as_str().unwrap_or("").trim_end_matches('/');
            Path::new(path).starts_with(at)
        })
        .max_by_key(|m| m["mountPath"].as_str().unwrap_or("").len())
}

/// What `airlock --help`, `serve --help` and `runs verify --help` print,
/// from the binary this test was built with.
fn help_text() -> String {
    let mut text = String::new();
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["runs", "verify", "--help"],
    ] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_airlock"));
        cmd.args(args).env_clear();
        if let Some(path) = std::env::var_os("PATH") {
            cmd.env("PATH", path);
        }
        let out = cmd.output().expect("run airlock --help");
        assert!(out.status.success(), "airlock {args:?} failed: {out:?}");
        text.push_str(&String::from_utf8_lossy(&out.stdout));
    }
    text
}

/// Whether `help` documents `--flag` (followed by a space, `=`, `,` or the line's end).
fn documents(help: &str, flag: &str) -> bool {
    help.match_indices(flag).any(|(i, _)| {
        let before = help[..i].chars().next_back();
        let after = help[i + flag.len()..].chars().next();
        !matches!(before, Some(c) if c.is_alphanumeric() || c == '-')
            && !matches!(after, Some(c) if c.is_alphanumeric() || c == '-' || c == '_')
    })
}

/// The server's grace for open connections after a drain, read from its
/// source so this test follows it.
fn connection_grace() -> Duration {
    let file = "runner/src/frontend/http/mod.rs";
    let src = std::fs::read_to_string(repo().join(file)).expect("read the HTTP server source");
    let line = src
        .lines()
        .find(|l| l.contains("const CONNECTION_GRACE: Duration"))
        .unwrap_or_else(|| panic!("CONNECTION_GRACE is no longer in {file}; update tests/deploy.rs to find the server's shutdown grace"));
    let secs = line
        .split("from_secs(")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|n| n.trim().parse::<u64>().ok())
        .unwrap_or_else(|| {
            panic!(
                "cannot read seconds from `{}` in {file}; update tests/deploy.rs",
                line.trim()
            )
        });
    Duration::from_secs(secs)
}

/// Seconds a `preStop` hook of `sleep N` holds the pod before SIGTERM.
fn pre_stop_sleep(container: &Value) -> u64 {
    let hook = &container["lifecycle"]["preStop"];
    if let Some(secs) = hook["sleep"]["seconds"].as_u64() {
        return secs;
    }
    match hook["exec"]["command"].as_array().map(Vec::as_slice) {
        Some([cmd, n]) if cmd == "sleep" => {
            n.as_str().and_then(|n| n.parse().ok()).unwrap_or_else(|| {
                panic!("preStop sleep {n} is not whole seconds; fix {DEPLOYMENT_FILE}")
            })
        }
        Some(other) => panic!(
            "preStop runs {other:?}; tests/deploy.rs only knows `sleep N` (count its time in terminationGracePeriodSeconds) in {DEPLOYMENT_FILE}"
        ),
        None => 0,
    }
}

fn labels_match(selector: &Value, labels: &Value) -> bool {
    selector
        .as_object()
        .is_some_and(|sel| !sel.is_empty() && sel.iter().all(|(k, v)| labels[k] == *v))
}

#[test]
fn the_manifests_line_up_with_the_server() {
    let (all, kustomization) = manifests();
    let deployment = one(&all, "Deployment", "airlock");
    let file = deployment.file.as_str();
    let spec = &deployment.doc["spec"];
    let pod = &spec["template"]["spec"];
    let pod_labels = &spec["template"]["metadata"]["labels"];
    let container = airlock_container(pod);

    // Replicas and rollout.
    assert_eq!(
        spec["replicas"], 3,
        "the Deployment must run 3 replicas; fix {file}"
    );
    let rolling = &spec["strategy"]["rollingUpdate"];
    assert!(
        spec["strategy"]["type"] == "RollingUpdate"
            && rolling["maxSurge"] == 1
            && rolling["maxUnavailable"] == 0,
        "the rollout must be RollingUpdate with maxSurge 1, maxUnavailable 0 (a new replica claims a spare key slot before an old one drains); fix {file}"
    );
    assert!(
        labels_match(&spec["selector"]["matchLabels"], pod_labels),
        "the Deployment's selector does not match its pod labels; fix {file}"
    );

    // Ports: --listen, containerPort, probes and the Service agree.
    let port = listen_port(container);
    let declared: Vec<i64> = container["ports"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .filter_map(|p| p["containerPort"].as_i64())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        declared,
        vec![port],
        "the airlock container must declare containerPort {port}, the port of --listen (and only it); fix {file}"
    );
    for probe in ["readinessProbe", "livenessProbe", "startupProbe"] {
        let p = &container[probe];
        if p.is_null() {
            assert_ne!(
                probe, "readinessProbe",
                "the airlock container has no readinessProbe; add one on /healthz in {file}"
            );
            assert_ne!(
                probe, "livenessProbe",
                "the airlock container has no livenessProbe; add one on /healthz in {file}"
            );
            continue;
        }
        assert_eq!(
            p["httpGet"]["path"], "/healthz",
            "{probe} must GET /healthz (the only unauthenticated health route); fix {file}"
        );
        let probe_port = resolve_port(container, &p["httpGet"]["port"], probe, file);
        assert_eq!(
            probe_port, port,
            "{probe} checks port {probe_port}, but serve listens on {port}; fix {file}"
        );
    }
    // Liveness must outlast readiness: a 503 means the database is out of
    // reach, which restarting does not fix.
    let patience = |p: &Value| {
        p["periodSeconds"].as_u64().unwrap_or(10) * p["failureThreshold"].as_u64().unwrap_or(3)
    };
    let (ready, live) = (
        patience(&container["readinessProbe"]),
        patience(&container["livenessProbe"]),
    );
    assert!(
        live >= 3 * ready,
        "livenessProbe gives up after {live}s and readinessProbe after {ready}s: a replica that lost its database must be taken out of the Service, not restarted in a loop; make liveness far more tolerant in {file}"
    );

    let service = one(&all, "Service", "airlock");
    let sfile = service.file.as_str();
    assert!(
        service.doc["spec"]["type"].is_null() || service.doc["spec"]["type"] == "ClusterIP",
        "the Service must be ClusterIP; fix {sfile}"
    );
    assert!(
        labels_match(&service.doc["spec"]["selector"], pod_labels),
        "the Service's selector does not match the Deployment's pod labels; fix {sfile}"
    );
    let sports = service.doc["spec"]["ports"]
        .as_array()
        .expect("Service ports");
    assert_eq!(
        sports.len(),
        1,
        "the Service should expose one port; fix {sfile}"
    );
    assert_eq!(
        sports[0]["port"], 80,
        "the Service should listen on port 80; fix {sfile}"
    );
    let target = resolve_port(
        container,
        &sports[0]["targetPort"],
        "the Service's targetPort",
        sfile,
    );
    assert_eq!(
        target, port,
        "the Service targets port {target}, but serve listens on {port}; fix {sfile}"
    );

    let pdb = one(&all, "PodDisruptionBudget", "airlock");
    let pfile = pdb.file.as_str();
    assert!(
        labels_match(&pdb.doc["spec"]["selector"]["matchLabels"], pod_labels),
        "the PodDisruptionBudget's selector does not match the Deployment's pod labels; fix {pfile}"
    );
    assert!(
        pdb.doc["spec"]["maxUnavailable"] == 1 || pdb.doc["spec"]["minAvailable"] == 2,
        "the PodDisruptionBudget must allow one replica down at a time (maxUnavailable 1 or minAvailable 2); fix {pfile}"
    );

    // Shutdown: the kubelet must not SIGKILL before the drain and the
    // connection grace are over.
    let drain = flag(&args(container), "--drain-timeout")
        .map(|d| {
            humantime::parse_duration(&d)
                .unwrap_or_else(|e| panic!("--drain-timeout {d}: {e}; fix {file}"))
        })
        .unwrap_or(Duration::from_secs(30));
    let grace = connection_grace();
    let sleep = pre_stop_sleep(container);
    let needed = drain.as_secs() + grace.as_secs() + sleep + 5;
    let period = pod["terminationGracePeriodSeconds"].as_u64().unwrap_or(30);
    assert!(
        period >= needed,
        "terminationGracePeriodSeconds is {period}s but shutdown needs {}s drain + {}s connection grace + {sleep}s preStop + 5s margin = {needed}s; raise it in {file}",
        drain.as_secs(),
        grace.as_secs()
    );

    // The database URL is a secret.
    let store = container["env"]
        .as_array()
        .and_then(|es| es.iter().find(|e| e["name"] == "AIRLOCK_STORE"))
        .unwrap_or_else(|| {
            panic!("the airlock container has no AIRLOCK_STORE; set it from a Secret in {file}")
        });
    assert!(
        store["value"].is_null()
            && store["valueFrom"]["secretKeyRef"]["name"].is_string()
            && store["valueFrom"]["secretKeyRef"]["key"].is_string(),
        "AIRLOCK_STORE (it holds the database password) must come from valueFrom.secretKeyRef; fix {file}"
    );
    assert!(
        flag(&args(container), "--store").is_none(),
        "--store in the args puts the database password in the pod spec; use AIRLOCK_STORE from a Secret in {file}"
    );

    // Key slots: a Secret, 0400, read-only, at the path airlock reads.
    key_slots(pod, container, file);

    // Writable state only on emptyDirs, under a read-only root.
    let home = setting(container, "--home", "AIRLOCK_HOME")
        .unwrap_or_else(|| panic!("the airlock container sets no AIRLOCK_HOME/--home; put the home under an emptyDir in {file}"));
    let home_mount = mount_holding(container, &home)
        .unwrap_or_else(|| panic!("the home {home} is on the read-only root filesystem; mount an emptyDir at or above it in {file}"));
    assert!(
        volume(pod, home_mount["name"].as_str().unwrap_or(""))["emptyDir"].is_object(),
        "the home {home} must be on an emptyDir (per-replica state); fix {file}"
    );
    assert_ne!(
        home_mount["mountPath"]
            .as_str()
            .map(|p| p.trim_end_matches('/')),
        Some(home.trim_end_matches('/')),
        "the home {home} is an emptyDir's mount point, which is not private (0700); point it at a subdirectory airlock creates, in {file}"
    );
    let tmp = mount_at(container, "/tmp").unwrap_or_else(|| {
        panic!("nothing is mounted at /tmp under a read-only root; add an emptyDir in {file}")
    });
    assert!(
        volume(pod, tmp["name"].as_str().unwrap_or(""))["emptyDir"].is_object(),
        "/tmp must be an emptyDir; fix {file}"
    );

    // Trust file and profiles come from ConfigMaps (or Secrets) that exist.
    let trust = env_value(container, "AIRLOCK_TRUST")
        .unwrap_or_else(|| panic!("the airlock container sets no AIRLOCK_TRUST, so `runs verify` in the pod trusts unpinned keys; fix {file}"));
    mounted_config_file(&all, pod, container, &trust, "AIRLOCK_TRUST", file);
    let profiles = flag(&args(container), "--profiles")
        .unwrap_or_else(|| panic!("serve gets no --profiles, so it reads ./profiles; mount the profiles ConfigMap and pass --profiles in {file}"));
    let pm = mount_at(container, &profiles)
        .unwrap_or_else(|| panic!("--profiles {profiles} is not a mounted volume; fix {file}"));
    let pv = volume(pod, pm["name"].as_str().unwrap_or(""));
    assert!(
        pv["configMap"].is_object() || pv["secret"].is_object(),
        "--profiles {profiles} must be a ConfigMap (or Secret) volume; fix {file}"
    );

    security_context(pod, file);

    // Every flag the container passes exists in this airlock, and every
    // AIRLOCK_ variable it sets is one airlock reads.
    let help = help_text();
    for a in args(container) {
        if let Some(name) = a.strip_prefix("--") {
            let name = format!("--{}", name.split('=').next().unwrap_or(name));
            assert!(
                documents(&help, &name),
                "the container passes {name}, which `airlock --help` / `airlock serve --help` do not list (renamed or removed?); fix {file}"
            );
        }
    }
    assert_eq!(
        args(container).first().map(String::as_str),
        Some("serve"),
        "the container's args must start with `serve`; fix {file}"
    );
    for e in container["env"].as_array().into_iter().flatten() {
        let name = e["name"].as_str().unwrap_or("");
        if name.starts_with("AIRLOCK_") {
            assert!(
                help.contains(&format!("[env: {name}=")),
                "the container sets {name}, which no `airlock --help` output names as its variable (renamed or removed?); fix {file}"
            );
        }
    }

    // kubectl apply -k applies every manifest except the example Secrets.
    let listed: Vec<&str> = kustomization["resources"]
        .as_array()
        .unwrap_or_else(|| {
            panic!("{MANIFESTS}/kustomization.yaml is missing or lists no resources")
        })
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let mut files: Vec<&str> = all
        .iter()
        .map(|m| m.file.trim_start_matches(&format!("{MANIFESTS}/")))
        .filter(|f| !f.contains(".example."))
        .collect();
    files.dedup();
    for f in &files {
        assert!(
            listed.contains(f),
            "{f} is not listed in {MANIFESTS}/kustomization.yaml; add it there"
        );
    }
    for f in &listed {
        assert!(
            files.contains(f),
            "{MANIFESTS}/kustomization.yaml lists {f}, which is missing or an example; fix kustomization.yaml"
        );
    }
}

/// The key slots airlock reads (`--key-slots`/`AIRLOCK_KEY_SLOTS`) come from
/// a Secret with defaultMode 0400, mounted read-only.
///
/// A Secret mounted straight at that path cannot work for a non-root
/// server: the kubelet writes Secret files as root, so without `fsGroup`
/// the server cannot read a 0400 file, and with `fsGroup` the kubelet adds
/// group read (0440), which airlock refuses for a private key
/// (kubernetes/kubernetes#57923). So the path must be a memory-backed
/// emptyDir, mounted read-only in the server, that an init container fills
/// from the Secret with `install -m 0400`.
fn key_slots(pod: &Value, container: &Value, file: &str) {
    let slots = setting(container, "--key-slots", "AIRLOCK_KEY_SLOTS").unwrap_or_else(|| {
        panic!("the airlock container sets neither --key-slots nor AIRLOCK_KEY_SLOTS, so replicas sharing the database have no pinned keys to sign with; fix {file}")
    });
    let mount = mount_at(container, &slots)
        .unwrap_or_else(|| panic!("the key slots directory {slots} is not a volume mount of the airlock container; fix {file}"));
    assert_eq!(
        mount["readOnly"], true,
        "the key slots at {slots} must be mounted readOnly in the airlock container; fix {file}"
    );
    let name = mount["name"].as_str().unwrap_or("");
    let vol = volume(pod, name);
    assert!(
        vol["secret"].is_null(),
        "the Secret volume {name} is mounted straight at {slots}: its files are root's, so a non-root airlock cannot read them at 0400 and refuses them at the 0440 fsGroup makes; copy them with an init container into a Memory emptyDir (see {file})"
    );
    assert_eq!(
        vol["emptyDir"]["medium"], "Memory",
        "the key slots volume {name} must be a memory-backed emptyDir (medium: Memory), so private keys never touch the node's disk; fix {file}"
    );
    let init = pod["initContainers"]
        .as_array()
        .and_then(|cs| {
            cs.iter().find(|c| {
                c["volumeMounts"]
                    .as_array()
                    .is_some_and(|ms| ms.iter().any(|m| m["name"] == name && m["readOnly"] != true))
            })
        })
        .unwrap_or_else(|| panic!("no init container writes the key slots volume {name}; add one that copies the Secret into it in {file}"));
    let secret_mount = init["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| volume(pod, m["name"].as_str().unwrap_or(""))["secret"].is_object())
        .unwrap_or_else(|| {
            panic!(
                "the init container {} mounts no Secret to copy the key slots from; fix {file}",
                init["name"]
            )
        });
    let secret = &volume(pod, secret_mount["name"].as_str().unwrap_or(""))["secret"];
    assert!(
        secret["secretName"].is_string(),
        "the key slots Secret volume names no secretName; fix {file}"
    );
    assert_eq!(
        secret["defaultMode"].as_u64(),
        Some(0o400),
        "the key slots Secret must have defaultMode 0400, written as decimal 256 (YAML 1.1 reads 0400 as octal, YAML 1.2 as decimal); fix {file}"
    );
    assert_eq!(
        secret_mount["readOnly"], true,
        "the key slots Secret must be mounted readOnly in the init container; fix {file}"
    );
    let command: Vec<&str> = init["command"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(init["args"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .collect();
    let script = command.join(" ");
    let from = secret_mount["mountPath"].as_str().unwrap_or("");
    let to = init["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["name"] == name)
        .and_then(|m| m["mountPath"].as_str())
        .unwrap_or("");
    assert!(
        script.contains("-m 0400")
            && script.contains(from)
            && script.contains(to)
            && script.contains("*.pk8"),
        "the init container must copy {from}/*.pk8 into {to} with mode 0400 (airlock refuses a key group or others can read); its command is `{script}`; fix {file}"
    );
    // The Secret is for the init container only.
    for m in container["volumeMounts"].as_array().into_iter().flatten() {
        assert!(
            volume(pod, m["name"].as_str().unwrap_or(""))["secret"] != *secret,
            "the airlock container also mounts the key slots Secret; it needs only the 0400 copy at {slots}; fix {file}"
        );
    }
}

/// `path` is a file of a ConfigMap or Secret volume mounted read-only, and
/// the ConfigMap (when it is among the manifests) has that key.
fn mounted_config_file(
    all: &[Manifest],
    pod: &Value,
    container: &Value,
    path: &str,
    what: &str,
    file: &str,
) {
    let (dir, key) = path
        .rsplit_once('/')
        .unwrap_or_else(|| panic!("{what} {path} is not an absolute file path; fix {file}"));
    let mount = mount_at(container, dir).unwrap_or_else(|| {
        panic!("{what} {path}: nothing is mounted at {dir}; mount the ConfigMap there in {file}")
    });
    assert_eq!(
        mount["readOnly"], true,
        "{what}: the volume at {dir} must be readOnly; fix {file}"
    );
    let vol = volume(pod, mount["name"].as_str().unwrap_or(""));
    if let Some(cm) = vol["configMap"]["name"].as_str() {
        let map = one(all, "ConfigMap", cm);
        assert!(
            map.doc["data"][key].is_string(),
            "{what} {path} needs key {key:?} in ConfigMap {cm}; fix {}",
            map.file
        );
        if let Some(mode) = vol["configMap"]["defaultMode"].as_u64() {
            assert_eq!(
                mode & 0o022,
                0,
                "{what}: ConfigMap {cm} is mounted with mode {mode:o}, which airlock refuses (writable by others); fix {file}"
            );
        }
    } else {
        assert!(
            vol["secret"].is_object(),
            "{what} {path} must come from a ConfigMap or Secret volume; fix {file}"
        );
    }
}

fn security_context(pod: &Value, file: &str) {
    let psc = &pod["securityContext"];
    assert_eq!(
        psc["runAsNonRoot"], true,
        "the pod must set securityContext.runAsNonRoot: true; fix {file}"
    );
    let uid = psc["runAsUser"].as_i64().unwrap_or(0);
    assert!(
        uid > 0,
        "the pod must run as a non-root numeric runAsUser; fix {file}"
    );
    let containers = pod["containers"].as_array().into_iter().flatten();
    let inits = pod["initContainers"].as_array().into_iter().flatten();
    for c in containers.chain(inits) {
        let name = c["name"].as_str().unwrap_or("?");
        let sc = &c["securityContext"];
        assert_eq!(
            sc["readOnlyRootFilesystem"], true,
            "container {name} must set readOnlyRootFilesystem: true; fix {file}"
        );
        assert_eq!(
            sc["allowPrivilegeEscalation"], false,
            "container {name} must set allowPrivilegeEscalation: false; fix {file}"
        );
        assert!(
            sc["capabilities"]["drop"]
                .as_array()
                .is_some_and(|d| d.iter().any(|c| c == "ALL")),
            "container {name} must drop ALL capabilities; fix {file}"
        );
        assert!(
            sc["runAsUser"].is_null() || sc["runAsUser"].as_i64().is_some_and(|u| u > 0),
            "container {name} overrides runAsUser with root; fix {file}"
        );
    }
    // The image's user and the pod's agree, so files the image prepared
    // (and the emptyDirs, through fsGroup) belong to the running user.
    let docker_uid = dockerfile_user();
    assert_eq!(
        docker_uid,
        uid.to_string(),
        "the Dockerfile's USER is {docker_uid} but the pod runs as {uid}; make them one uid (Dockerfile and {file})"
    );
}

/// The Dockerfile's instructions, continuation lines joined, comments dropped.
fn dockerfile() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo().join("Dockerfile"))
        .expect("read Dockerfile at the repository root");
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(part) = trimmed.strip_suffix('\\') {
            current.push_str(part);
            current.push(' ');
            continue;
        }
        current.push_str(trimmed);
        let (instruction, rest) = current
            .split_once(char::is_whitespace)
            .unwrap_or((&current, ""));
        out.push((instruction.to_uppercase(), rest.trim().to_owned()));
        current.clear();
    }
    out
}

/// The uid the Dockerfile's final stage runs as.
fn dockerfile_user() -> String {
    let instructions = dockerfile();
    let last_from = instructions
        .iter()
        .rposition(|(i, _)| i == "FROM")
        .expect("the Dockerfile has no FROM");
    let user = instructions[last_from..]
        .iter()
        .rfind(|(i, _)| i == "USER")
        .map(|(_, u)| u.clone())
        .unwrap_or_else(|| panic!("the Dockerfile's final stage has no USER, so it runs as root; add a numeric non-root USER to Dockerfile"));
    let uid = user.split(':').next().unwrap_or("").to_owned();
    assert!(
        uid.parse::<u32>().is_ok_and(|u| u > 0),
        "the Dockerfile's final stage runs as USER {user}: it must be a numeric non-root uid (runAsNonRoot can only check numbers); fix Dockerfile"
    );
    uid
}

#[test]
fn the_dockerfile_builds_locked_and_runs_as_non_root() {
    let instructions = dockerfile();
    let uid = dockerfile_user();
    assert_ne!(uid, "0");

    let cargo_build: Vec<&String> = instructions
        .iter()
        .filter(|(i, r)| i == "RUN" && r.contains("cargo build"))
        .map(|(_, r)| r)
        .collect();
    assert!(
        !cargo_build.is_empty(),
        "the Dockerfile runs no `cargo build`; fix Dockerfile"
    );
    for run in &cargo_build {
        assert!(
            run.contains("--locked"),
            "the Dockerfile's `{run}` lacks --locked, so the image may build other dependency versions than Cargo.lock; fix Dockerfile"
        );
        assert!(
            run.contains("--release"),
            "the Dockerfile's `{run}` must build --release; fix Dockerfile"
        );
    }

    // The builder's Rust is the one rust-toolchain.toml pins.
    let toolchain: toml::Table = toml::from_str(
        &std::fs::read_to_string(repo().join("rust-toolchain.toml"))
            .expect("read rust-toolchain.toml"),
    )
    .expect("parse rust-toolchain.toml");
    let channel = toolchain["toolchain"]["channel"]
        .as_str()
        .expect("toolchain.channel");
    let args: BTreeMap<String, String> = instructions
        .iter()
        .filter(|(i, _)| i == "ARG")
        .filter_map(|(_, r)| {
            r.split_once('=')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        })
        .collect();
    let builder = instructions
        .iter()
        .find(|(i, r)| i == "FROM" && r.starts_with("rust:"))
        .map(|(_, r)| r.split_whitespace().next().unwrap_or("").to_owned())
        .unwrap_or_else(|| panic!("no `FROM rust:…` builder stage; fix Dockerfile"));
    let builder = args.iter().fold(builder, |image, (k, v)| {
        image.replace(&format!("${{{k}}}"), v)
    });
    assert_eq!(
        builder,
        format!("rust:{channel}-bookworm"),
        "the builder image must be rust:{channel}-bookworm, the version rust-toolchain.toml pins on Debian bookworm; fix Dockerfile"
    );

    let last_from = instructions
        .iter()
        .rposition(|(i, _)| i == "FROM")
        .expect("FROM");
    let runtime = &instructions[last_from].1;
    assert!(
        runtime.starts_with("debian:bookworm-slim") || runtime.starts_with("gcr.io/distroless/cc"),
        "the runtime stage is {runtime}; use debian:bookworm-slim (glibc, like the builder) in Dockerfile"
    );
    let last = &instructions[last_from..];
    let get = |name: &str| {
        last.iter()
            .rfind(|(i, _)| i == name)
            .map(|(_, r)| r.as_str())
    };
    assert_eq!(
        get("ENTRYPOINT"),
        Some(r#"["airlock"]"#),
        "the final stage's ENTRYPOINT must be [\"airlock\"]; fix Dockerfile"
    );
    let cmd: Vec<String> = serde_json::from_str(get("CMD").unwrap_or("[]")).unwrap_or_else(|e| {
        panic!("the Dockerfile's CMD is not an exec-form JSON array: {e}; fix Dockerfile")
    });
    let listen = cmd
        .iter()
        .position(|a| a == "--listen")
        .and_then(|i| cmd.get(i + 1))
        .unwrap_or_else(|| panic!("the Dockerfile's CMD must pass `--listen 0.0.0.0:PORT` (the default 127.0.0.1 is unreachable from outside the container); fix Dockerfile"));
    let port = listen.strip_prefix("0.0.0.0:").unwrap_or_else(|| {
        panic!("the Dockerfile's CMD listens on {listen}; listen on 0.0.0.0 in Dockerfile")
    });
    assert_eq!(
        cmd.first().map(String::as_str),
        Some("serve"),
        "the Dockerfile's CMD must start with serve; fix Dockerfile"
    );
    assert!(
        get("EXPOSE").is_some_and(|e| e
            .split_whitespace()
            .any(|p| p.split('/').next() == Some(port))),
        "the Dockerfile must EXPOSE {port}, the port its CMD listens on; fix Dockerfile"
    );
    let help = help_text();
    for a in cmd.iter().filter(|a| a.starts_with("--")) {
        assert!(
            documents(&help, a),
            "the Dockerfile's CMD passes {a}, which `airlock serve --help` does not list; fix Dockerfile"
        );
    }

    let ignore = std::fs::read_to_string(repo().join(".dockerignore")).expect("read .dockerignore");
    assert!(
        ignore
            .lines()
            .any(|l| matches!(l.trim(), "target" | "/target" | "target/" | "**/target")),
        ".dockerignore must exclude target/ (gigabytes of build output in the context); fix .dockerignore"
    );
}
