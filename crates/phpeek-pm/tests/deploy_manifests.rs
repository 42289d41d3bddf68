//! deploy/ against the manager it deploys: every probe path, port, Secret,
//! volume and metric name in the Kubernetes manifests, the compose file, the
//! Dockerfiles and the Grafana dashboard is one the manager serves. The
//! real binary runs on the config the manifests ship (with stand-ins for
//! php, php-fpm and nginx on PATH and a real Redis for the autoscaler).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use phpeek_config::{Config, Env};
use serde_json::Value;

const TOKEN: &str = "deploy-test-token";

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn text(rel: &str) -> String {
    let p = deploy().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn yaml(rel: &str) -> Value {
    serde_saphyr::from_str(&text(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The shipped config, loaded as the manager loads it.
fn shipped_config() -> Config {
    let env = Env::from_pairs([("PHPEEK_PM_API_TOKEN", TOKEN)]);
    phpeek_config::parse_str(&text("phpeek-pm.yaml"), "deploy/phpeek-pm.yaml", &env)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The longest a shutdown of `config` can take: processes stop in reverse
/// dependency order, so a process's stop ends after everything depending on
/// it has stopped plus its own pre_stop/post_stop hooks and grace; global
/// stop hooks come on top.
fn longest_shutdown(config: &Config) -> Duration {
    fn hooks(h: &[phpeek_config::Hook]) -> Duration {
        h.iter().map(|h| h.timeout * (h.retries + 1)).sum()
    }
    fn done(
        name: &str,
        config: &Config,
        memo: &mut BTreeMap<String, Duration>,
        depth: usize,
    ) -> Duration {
        assert!(depth <= config.processes.len(), "dependency cycle");
        if let Some(d) = memo.get(name) {
            return *d;
        }
        let p = &config.processes[name];
        let own = p.shutdown.timeout.unwrap_or(config.global.shutdown_timeout)
            + hooks(&p.hooks.pre_stop)
            + hooks(&p.hooks.post_stop);
        let after = config
            .processes
            .iter()
            .filter(|(_, q)| q.depends_on.iter().any(|d| d.process == name))
            .map(|(n, _)| done(n, config, memo, depth + 1))
            .max()
            .unwrap_or_default();
        memo.insert(name.to_string(), own + after);
        own + after
    }
    let mut memo = BTreeMap::new();
    let chain = config
        .processes
        .keys()
        .map(|n| done(n, config, &mut memo, 0))
        .max()
        .unwrap_or_default();
    chain + hooks(&config.global.hooks.pre_stop) + hooks(&config.global.hooks.post_stop)
}

/// The one container of the Deployment.
fn container(deployment: &Value) -> &Value {
    let cs = deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(cs.len(), 1, "one container");
    &cs[0]
}

/// Container port by name.
fn port_named(c: &Value, name: &str) -> u64 {
    c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| p["containerPort"].as_u64())
        .unwrap_or_else(|| panic!("no container port named {name}"))
}

/// Every `phpeek_pm_…` series name in a PromQL text.
fn metric_names(promql: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = promql;
    while let Some(at) = rest.find("phpeek_pm_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

/// Every PromQL expression of the dashboard, with its variables' queries.
fn dashboard_promql() -> Vec<String> {
    let dash: Value = serde_json::from_str(&text("grafana/phpeek-pm.json")).unwrap();
    fn walk(panels: &Value, out: &mut Vec<String>) {
        for p in panels.as_array().into_iter().flatten() {
            for t in p["targets"].as_array().into_iter().flatten() {
                out.extend(t["expr"].as_str().map(str::to_string));
            }
            walk(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dash["panels"], &mut out);
    for v in dash["templating"]["list"].as_array().unwrap() {
        out.extend(v["query"]["query"].as_str().map(str::to_string));
    }
    out
}

/// Series names a scrape (text format) can carry: each `# TYPE` family,
/// with a histogram's `_bucket`/`_sum`/`_count`.
fn served_names(scrape: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for l in scrape.lines() {
        let Some(rest) = l.strip_prefix("# TYPE ") else {
            continue;
        };
        let Some((name, kind)) = rest.split_once(' ') else {
            continue;
        };
        out.insert(name.to_string());
        if kind == "histogram" {
            for s in ["_bucket", "_sum", "_count"] {
                out.insert(format!("{name}{s}"));
            }
        }
    }
    out
}

#[test]
fn configmap_carries_the_shipped_config() {
    let cm = yaml("k8s/configmap.yaml");
    assert_eq!(cm["kind"], "ConfigMap");
    assert_eq!(
        cm["data"]["phpeek-pm.yaml"].as_str(),
        Some(text("phpeek-pm.yaml").as_str()),
        "k8s/configmap.yaml must carry deploy/phpeek-pm.yaml verbatim"
    );
}

#[test]
fn manifests_use_the_configs_ports_paths_secret_and_grace() {
    let config = shipped_config();
    let g = &config.global;
    assert!(g.watch_config, "the ConfigMap update is followed");
    assert_eq!(
        g.api_auth.as_deref(),
        Some(TOKEN),
        "api_auth from the Secret"
    );

    let dep = yaml("k8s/deployment.yaml");
    assert_eq!(dep["kind"], "Deployment");
    let c = container(&dep);
    assert_eq!(port_named(c, "api"), u64::from(g.api_port));
    assert_eq!(port_named(c, "metrics"), u64::from(g.metrics_port));
    let live = &c["livenessProbe"]["httpGet"];
    assert_eq!(live["path"], "/api/v1/health");
    assert_eq!(live["port"], "api");
    let ready = &c["readinessProbe"]["httpGet"];
    assert_eq!(ready["path"], "/api/v1/ready");
    assert_eq!(ready["port"], "api");

    // The token from the Secret, under the variable api_auth substitutes.
    let secret = yaml("k8s/secret.yaml");
    let env = c["env"].as_array().unwrap();
    let tok = env
        .iter()
        .find(|e| e["name"] == "PHPEEK_PM_API_TOKEN")
        .expect("PHPEEK_PM_API_TOKEN in the container's env");
    let sref = &tok["valueFrom"]["secretKeyRef"];
    assert_eq!(sref["name"], secret["metadata"]["name"]);
    let key = sref["key"].as_str().unwrap();
    assert!(secret["stringData"][key].is_string(), "{key} in the Secret");
    assert!(text("phpeek-pm.yaml").contains(r#"api_auth: "${PHPEEK_PM_API_TOKEN}""#));

    // The ConfigMap as a directory at the default config path (no subPath:
    // its ..data swap must reach the manager).
    let cm = yaml("k8s/configmap.yaml");
    let vols = dep["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap();
    let vol = vols
        .iter()
        .find(|v| v["configMap"]["name"] == cm["metadata"]["name"])
        .expect("a volume of the ConfigMap");
    let mount = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == vol["name"])
        .expect("the ConfigMap mounted");
    assert_eq!(mount["mountPath"], "/etc/phpeek-pm");
    assert!(mount["subPath"].is_null(), "no subPath");

    // Grace above the longest shutdown the config allows.
    let longest = longest_shutdown(&config);
    let longest_single = config
        .processes
        .values()
        .map(|p| p.shutdown.timeout.unwrap_or(g.shutdown_timeout))
        .max()
        .unwrap();
    assert!(longest >= longest_single);
    let grace = dep["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .unwrap();
    assert!(
        Duration::from_secs(grace) > longest,
        "terminationGracePeriodSeconds {grace} must exceed the longest shutdown {longest:?}"
    );
    let compose = yaml("compose.yaml");
    let stop = compose["services"]["app"]["stop_grace_period"]
        .as_str()
        .unwrap();
    let stop: u64 = stop.strip_suffix('s').unwrap().parse().unwrap();
    assert!(
        Duration::from_secs(stop) > longest,
        "compose stop_grace_period"
    );

    // The Service and the PodMonitor name container ports that exist; the
    // PodMonitor scrapes the config's metrics path.
    let svc = yaml("k8s/service.yaml");
    assert_eq!(
        svc["spec"]["selector"],
        dep["spec"]["selector"]["matchLabels"]
    );
    for p in svc["spec"]["ports"].as_array().unwrap() {
        port_named(c, p["targetPort"].as_str().unwrap());
    }
    let pm = yaml("k8s/podmonitor.yaml");
    assert_eq!(pm["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(pm["kind"], "PodMonitor");
    assert_eq!(
        pm["spec"]["selector"]["matchLabels"],
        dep["spec"]["template"]["metadata"]["labels"]
    );
    for e in pm["spec"]["podMetricsEndpoints"].as_array().unwrap() {
        assert_eq!(
            port_named(c, e["port"].as_str().unwrap()),
            u64::from(g.metrics_port)
        );
        assert_eq!(e["path"].as_str(), Some(g.metrics_path.as_str()));
    }

    // KEDA: max() of the recommendation of an autoscaled process, on this
    // Deployment; the threshold is that process's per-pod max.
    let so = yaml("k8s/scaledobject.yaml");
    assert_eq!(so["apiVersion"], "keda.sh/v1alpha1");
    assert_eq!(so["kind"], "ScaledObject");
    assert_eq!(
        so["spec"]["scaleTargetRef"]["name"],
        dep["metadata"]["name"]
    );
    let trig = &so["spec"]["triggers"][0];
    assert_eq!(trig["type"], "prometheus");
    let q = trig["metadata"]["query"].as_str().unwrap();
    let process = q
        .strip_prefix("max(phpeek_pm_autoscale_recommended_instances{name=\"")
        .and_then(|s| s.strip_suffix("\"})"))
        .unwrap_or_else(|| panic!("unexpected KEDA query {q}"));
    let auto = config.processes[process]
        .autoscale
        .as_ref()
        .unwrap_or_else(|| panic!("{process} has no autoscale block"));
    assert_eq!(
        trig["metadata"]["threshold"].as_str(),
        Some(auto.max.to_string().as_str())
    );
}

#[test]
fn dockerfiles_run_phpeek_pm_as_pid_1_with_health_checks() {
    let config = shipped_config();
    let mut seen = 0;
    for entry in std::fs::read_dir(deploy().join("docker")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.starts_with("Dockerfile") {
            continue;
        }
        seen += 1;
        let df = std::fs::read_to_string(&path).unwrap();
        let has = |prefix: &str| df.lines().find(|l| l.starts_with(prefix));
        let entry = has("ENTRYPOINT ").unwrap_or_else(|| panic!("{name}: ENTRYPOINT"));
        assert!(entry.contains("phpeek-pm\"]"), "{name}: {entry}");
        assert!(has("STOPSIGNAL ").is_some(), "{name}: STOPSIGNAL");
        assert!(has("HEALTHCHECK ").is_some(), "{name}: HEALTHCHECK");
        // Every COPY source from the repository exists (or is the binary
        // scripts/release builds).
        for l in df.lines().filter(|l| l.starts_with("COPY ")) {
            let src = l.split_whitespace().nth(1).unwrap();
            if src.starts_with("target/") {
                assert_eq!(src, "target/x86_64-unknown-linux-gnu/release/phpeek-pm");
                continue;
            }
            let p = deploy().join("..").join(src);
            assert!(p.exists(), "{name}: COPY {src}: no such file");
        }
        if name == "Dockerfile.debian" || name == "Dockerfile.alpine" {
            assert!(df.contains("COPY deploy/phpeek-pm.yaml /etc/phpeek-pm/phpeek-pm.yaml"));
            assert!(
                df.contains(&format!(
                    "http://127.0.0.1:{}/api/v1/health",
                    config.global.api_port
                )),
                "{name}: HEALTHCHECK on the API's health"
            );
        }
    }
    assert!(seen >= 3, "Dockerfile.debian, .alpine, .scratch");
    // The scratch image's config loads; its HEALTHCHECK is the CLI.
    let scratch = text("docker/scratch.yaml");
    phpeek_config::parse_str(&scratch, "scratch.yaml", &Env::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        text("docker/Dockerfile.scratch").contains(r#"CMD ["/usr/local/bin/phpeek-pm", "status"]"#)
    );
}

/// Stand-ins for the Laravel image's programs: `php artisan …`, `php-fpm
/// -F` (listening where the health check looks) and `nginx`.
fn stand_ins(dir: &Path, fpm_port: u16) {
    script(
        dir,
        "php",
        r#"[ "$1" = artisan ] || { echo "php: $*" >&2; exit 1; }
case "$2" in
  config:cache) echo 'Configuration cached successfully.' ;;
  migrate) echo 'Migrated.' ;;
  queue:work|horizon) trap 'exit 0' TERM; while true; do sleep 0.2; done ;;
  horizon:terminate) echo 'Sending TERM signal to Horizon' ;;
  schedule:run) echo 'No scheduled commands are ready to run.' ;;
  *) echo "artisan: $*" >&2; exit 1 ;;
esac"#,
    );
    script(
        dir,
        "php-fpm",
        &format!("exec python3 -m http.server --bind 127.0.0.1 {fpm_port}"),
    );
    script(
        dir,
        "nginx",
        "trap 'exit 0' QUIT TERM; while true; do sleep 0.2; done",
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[test]
fn the_shipped_config_serves_every_probe_and_metric_the_manifests_name() {
    const TEST: &str = "deploy_manifests";
    if !require(TEST, &["python3"]) {
        return;
    }
    let Some(redis) = Redis::start(TEST) else {
        return;
    };
    let bin = tempfile::tempdir().unwrap();
    let fpm_port = free_port();
    stand_ins(bin.path(), fpm_port);
    // The artisan processes run as www-data: they must reach the stand-ins
    // and the manager's directory (their working directory).
    let open = |d: &Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    open(bin.path());
    let www_data = nix::unistd::User::from_name("www-data").ok().flatten();
    let app_user = match &www_data {
        Some(u) if nix::unistd::Uid::effective().is_root() => u.uid,
        // Not root, or no such user here: run them as ourselves.
        _ => nix::unistd::Uid::effective(),
    };
    let app_user_value = app_user.to_string();
    // Only the php-fpm port moves (tests bind free ports); the listeners
    // go to loopback on ephemeral ports through the documented overrides.
    let shipped =
        text("phpeek-pm.yaml").replace("127.0.0.1:9000", &format!("127.0.0.1:{fpm_port}"));
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let redis_url = format!("redis://127.0.0.1:{}/0", redis.port);
    let mut m = Manager::start_with(
        &shipped,
        &[
            ("PATH", path.as_str()),
            ("PHPEEK_PM_API_TOKEN", TOKEN),
            ("REDIS_URL", redis_url.as_str()),
            ("APP_USER", app_user_value.as_str()),
            ("PHPEEK_PM_GLOBAL_API_HOST", "127.0.0.1"),
            ("PHPEEK_PM_GLOBAL_API_PORT", "0"),
            ("PHPEEK_PM_GLOBAL_METRICS_HOST", "127.0.0.1"),
            ("PHPEEK_PM_GLOBAL_METRICS_PORT", "0"),
        ],
        |d| open(d),
    );
    let api = m.api();

    // The probes answer without the token; everything else needs it.
    let (status, body) = http("GET", &format!("{api}/api/v1/health"), None, None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        http("GET", &format!("{api}/api/v1/processes"), None, None).0,
        401
    );
    m.token = Some(TOKEN.to_string());
    // Ready once migrate is done, php-fpm healthy, nginx and the workers up.
    let mut last = String::new();
    let ready = poll(DEADLINE, || {
        let (s, b) = http("GET", &format!("{api}/api/v1/ready"), None, None);
        last = b;
        (s == 200).then_some(())
    });
    assert!(ready.is_some(), "never ready: {last}\n{}", m.stderr());
    m.wait_healthy("php-fpm", 1);
    m.wait_running("nginx", 1);
    let workers = m.wait_running("queue-default", 2);
    for (name, pid) in workers {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let uid = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().next())
            .unwrap();
        assert_eq!(uid, app_user.to_string(), "{name} runs as APP_USER");
    }
    // The autoscaler sampled Redis (an empty queue: the min).
    let q = m.wait_process("queue-default", |p| {
        p.autoscale
            .as_ref()
            .is_some_and(|a| a.recommended.is_some())
    });
    assert_eq!(q.autoscale.unwrap().state, "active");

    // Every metric the dashboard and the ScaledObject name is served.
    let mut wanted = BTreeSet::new();
    for e in dashboard_promql() {
        wanted.extend(metric_names(&e));
    }
    let so = yaml("k8s/scaledobject.yaml");
    let keda = so["spec"]["triggers"][0]["metadata"]["query"]
        .as_str()
        .unwrap();
    wanted.extend(metric_names(keda));
    assert!(wanted.len() >= 20, "{wanted:?}");
    // The last-run families appear with a first run: run the scheduler now
    // rather than wait for the minute.
    let (status, body) = m.post("/api/v1/processes/scheduler/run", "");
    assert!((200..300).contains(&status), "{status} {body}");
    let url = m.metrics_url();
    let mut scrape = String::new();
    let mut missing: Vec<String> = Vec::new();
    let all = poll(DEADLINE, || {
        scrape = http("GET", &url, None, None).1;
        let served = served_names(&scrape);
        missing = wanted.difference(&served).cloned().collect();
        missing.is_empty().then_some(())
    });
    assert!(all.is_some(), "not served: {missing:?}\n{scrape}");
    // And the KEDA metric has a value for the process it names.
    assert!(
        scrape.contains("phpeek_pm_autoscale_recommended_instances{name=\"queue-default\"}"),
        "{scrape}"
    );

    m.signal(nix::sys::signal::Signal::SIGTERM);
    let code = m.wait_exit(DEADLINE * 4);
    assert_eq!(code, 0, "{}", m.stderr());
}

/// The static binary: `$PHPEEK_PM_STATIC_BIN` (`.ci/run` builds the release
/// one), else the debug one tests/static_chroot.rs builds, if it did.
fn static_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PHPEEK_PM_STATIC_BIN") {
        return Some(PathBuf::from(p));
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/static-test/x86_64-unknown-linux-gnu/debug/phpeek-pm");
    p.is_file().then_some(p)
}

/// `podman` with a private store in `dir` (vfs: no overlay needed), so the
/// test leaves no image behind; fails the test when podman does.
fn podman(dir: &Path, cwd: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("podman")
        .arg("--root")
        .arg(dir.join("storage"))
        .arg("--runroot")
        .arg(dir.join("run"))
        .args(["--storage-driver", "vfs"])
        .args(args)
        .current_dir(cwd)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run podman");
    assert!(
        out.status.success(),
        "podman {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// deploy/docker/Dockerfile.scratch, built offline by podman: the image
/// holds the binary and its config only, and its entrypoint, stop signal,
/// health check and user are the Dockerfile's. Podman cannot run a
/// container here (crun: setrlimit and hybrid cgroups), so the exported
/// rootfs runs under chroot as the image's user, and the image's own
/// HEALTHCHECK command is run against it.
#[test]
fn the_scratch_image_builds_offline_and_its_rootfs_runs() {
    const TEST: &str = "scratch_image";
    if !nix::unistd::Uid::effective().is_root() {
        skip(TEST, "needs root (chroot, a mount namespace)");
        return;
    }
    if !require(TEST, &["podman", "tar", "unshare", "chroot"]) {
        return;
    }
    let Some(bin) = static_binary() else {
        skip(
            TEST,
            "no static binary: set PHPEEK_PM_STATIC_BIN (scripts/release) or run tests/static_chroot.rs first",
        );
        return;
    };
    let work = tempfile::tempdir().unwrap();
    // The build context: the repository paths the Dockerfile copies from.
    let ctx = work.path().join("ctx");
    let bin_dst = ctx.join("target/x86_64-unknown-linux-gnu/release/phpeek-pm");
    std::fs::create_dir_all(bin_dst.parent().unwrap()).unwrap();
    std::fs::copy(&bin, &bin_dst).unwrap();
    std::fs::create_dir_all(ctx.join("deploy/docker")).unwrap();
    for f in ["Dockerfile.scratch", "scratch.yaml"] {
        std::fs::copy(
            deploy().join("docker").join(f),
            ctx.join("deploy/docker").join(f),
        )
        .unwrap();
    }
    let iid = work.path().join("iid");
    podman(
        work.path(),
        &ctx,
        &[
            "build",
            "--network=none",
            "--format",
            "docker",
            "--iidfile",
            iid.to_str().unwrap(),
            "-f",
            "deploy/docker/Dockerfile.scratch",
            ".",
        ],
    );
    let id = std::fs::read_to_string(&iid).unwrap().trim().to_string();
    let inspect: Value =
        serde_json::from_str(&podman(work.path(), &ctx, &["image", "inspect", &id])).unwrap();
    let cfg = &inspect[0]["Config"];
    assert_eq!(
        cfg["Entrypoint"],
        serde_json::json!(["/usr/local/bin/phpeek-pm"]),
        "{inspect:#}"
    );
    assert_eq!(cfg["StopSignal"], "SIGTERM", "{inspect:#}");
    assert_eq!(cfg["User"], "65534:65534", "{inspect:#}");
    let health = inspect[0]["Healthcheck"]["Test"]
        .as_array()
        .or_else(|| cfg["Healthcheck"]["Test"].as_array())
        .unwrap_or_else(|| panic!("no health check: {inspect:#}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect::<Vec<_>>();
    assert_eq!(health[0], "CMD", "{health:?}");
    let health_cmd = health[1..].to_vec();

    // The image's filesystem: the binary and the config, nothing else.
    let cid = podman(work.path(), &ctx, &["create", &id])
        .trim()
        .to_string();
    let tar = work.path().join("rootfs.tar");
    podman(
        work.path(),
        &ctx,
        &["export", "-o", tar.to_str().unwrap(), &cid],
    );
    podman(work.path(), &ctx, &["rm", &cid]);
    let root = work.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let out = std::process::Command::new("tar")
        .arg("-xf")
        .arg(&tar)
        .arg("-C")
        .arg(&root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut files = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if std::fs::metadata(&p).unwrap().len() > 0 {
                files.push(p.strip_prefix(&root).unwrap().display().to_string());
            }
        }
    }
    files.sort();
    assert_eq!(
        files,
        ["etc/phpeek-pm/phpeek-pm.yaml", "usr/local/bin/phpeek-pm"],
        "non-empty files in the image"
    );
    std::fs::create_dir_all(root.join("proc")).unwrap();

    // Its entrypoint, as its user, with only what the image holds; the
    // listeners on loopback ephemeral ports through the overrides.
    // The image's Env (its PATH also finds unshare and chroot on the host).
    let entry = cfg["Entrypoint"][0].as_str().unwrap().to_string();
    let image_env: Vec<&str> = cfg["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        image_env.iter().any(|e| e.starts_with("PATH=")),
        "{image_env:?}"
    );
    let script = format!(
        "exec env -i {env} PHPEEK_PM_GLOBAL_API_PORT=0 PHPEEK_PM_GLOBAL_METRICS_HOST=127.0.0.1 \
         PHPEEK_PM_GLOBAL_METRICS_PORT=0 unshare --mount --mount-proc={root}/proc \
         chroot --userspec=65534:65534 {root} {entry}",
        env = image_env.join(" "),
        root = root.display()
    );
    let mut m = Manager::start_wrapped("", &["sh", "-c", &script, "sh"], |_| {});
    let api = m.api();
    let (status, body) = http("GET", &format!("{api}/api/v1/health"), None, None);
    assert_eq!(status, 200, "{body}\n{}", m.stderr());
    let list = m.instances();
    assert!(
        list.is_empty() || list.iter().all(|i| i.process == "heartbeat"),
        "{list:?}"
    );
    let me = proc_stat(m.pid()).unwrap();
    let uid = std::fs::read_to_string(format!("/proc/{}/status", me.pid)).unwrap();
    assert!(
        uid.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("65534")),
        "{uid}"
    );
    // The image's HEALTHCHECK command, in the image, as its user.
    let out = std::process::Command::new("chroot")
        .arg("--userspec=65534:65534")
        .arg(&root)
        .args(&health_cmd)
        .env_clear()
        .envs(image_env.iter().filter_map(|e| e.split_once('=')))
        .env("PHPEEK_PM_API_URL", &api)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{health_cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    m.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(m.wait_exit(DEADLINE), 0, "{}", m.stderr());
}
