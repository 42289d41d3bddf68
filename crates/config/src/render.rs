//! The effective configuration as YAML (`check-config`).
//!
//! The rendering uses the file's own format and key names, so it can be
//! saved and loaded again: `parse_str(to_yaml(c))` gives back `c`. String
//! values are written with `$` doubled (`$$`) so that substitution on the
//! way back in restores them, except the per-instance `${PHPEEK_PM_…}`
//! tokens, which load verbatim anyway. Note that `api_auth` is included.

use std::path::PathBuf;

use crate::substitute::escape_for_file;
use crate::{Autoscale, Config, HealthCheckKind, Hook, IdleDetection, MetricSource, ScaleDown};

fn esc(s: &str) -> String {
    escape_for_file(s)
}

fn esc_path(p: &std::path::Path) -> PathBuf {
    PathBuf::from(esc(&p.to_string_lossy()))
}

fn esc_hooks(hooks: &mut [Hook]) {
    for h in hooks {
        h.command = h.command.iter().map(|s| esc(s)).collect();
    }
}

fn esc_autoscale(a: &mut Autoscale) {
    for m in &mut a.metrics {
        match &mut m.source {
            MetricSource::Redis { url, llen } => {
                *url = esc(url);
                *llen = esc(llen);
            }
            MetricSource::Command(argv) => *argv = argv.iter().map(|s| esc(s)).collect(),
            MetricSource::Http { url, json } => {
                *url = esc(url);
                *json = esc(json);
            }
            MetricSource::Prometheus {
                url,
                metric,
                labels,
            } => {
                *url = esc(url);
                *metric = esc(metric);
                // Label names are keys (never substituted); values are not.
                for v in labels.values_mut() {
                    *v = esc(v);
                }
            }
            MetricSource::Cpu { .. } => {}
        }
    }
    for w in &mut a.windows {
        w.start = esc(&w.start);
        w.end = esc(&w.end);
        w.timezone = esc(&w.timezone);
    }
}

fn esc_scale_down(sd: &mut ScaleDown) {
    if let Some(IdleDetection::Regex { busy, idle }) = &mut sd.idle {
        *busy = esc(busy);
        *idle = esc(idle);
    }
}

fn escaped(config: &Config) -> Config {
    let mut c = config.clone();
    c.version = esc(&c.version);
    let g = &mut c.global;
    g.api_host = esc(&g.api_host);
    g.api_auth = g.api_auth.as_deref().map(esc);
    g.api_socket = g.api_socket.as_deref().map(esc_path);
    for tls in [&mut g.api_tls, &mut g.metrics_tls].into_iter().flatten() {
        tls.cert = esc_path(&tls.cert);
        tls.key = esc_path(&tls.key);
        tls.client_ca = tls.client_ca.as_deref().map(esc_path);
    }
    g.metrics_host = esc(&g.metrics_host);
    g.metrics_path = esc(&g.metrics_path);
    for list in [
        &mut g.hooks.pre_start,
        &mut g.hooks.post_start,
        &mut g.hooks.pre_stop,
        &mut g.hooks.post_stop,
    ] {
        esc_hooks(list);
    }
    for p in c.processes.values_mut() {
        p.command = p.command.iter().map(|s| esc(s)).collect();
        p.env = p.env.iter().map(|(k, v)| (k.clone(), esc(v))).collect();
        p.working_dir = p.working_dir.as_deref().map(esc_path);
        p.user = p.user.as_deref().map(esc);
        p.group = p.group.as_deref().map(esc);
        // `depends_on` is rendered as a mapping of process names (keys are
        // never substituted, and names hold no `$`).
        for list in [
            &mut p.hooks.pre_start,
            &mut p.hooks.pre_stop,
            &mut p.hooks.post_stop,
        ] {
            esc_hooks(list);
        }
        if let Some(s) = &mut p.schedule {
            s.cron = esc(&s.cron);
            s.timezone = esc(&s.timezone);
        }
        if let Some(a) = &mut p.autoscale {
            esc_autoscale(a);
        }
        esc_scale_down(&mut p.scale_down);
        if let Some(hc) = &mut p.health_check {
            match &mut hc.kind {
                HealthCheckKind::Tcp { address } => *address = esc(address),
                HealthCheckKind::Http { url, .. } => *url = esc(url),
                HealthCheckKind::Exec { command } => {
                    *command = command.iter().map(|s| esc(s)).collect()
                }
            }
        }
    }
    c
}

pub(crate) fn to_yaml(config: &Config) -> String {
    match serde_saphyr::to_string(&escaped(config)) {
        Ok(s) => s,
        Err(e) => format!("# could not render the configuration: {e}\n"),
    }
}
