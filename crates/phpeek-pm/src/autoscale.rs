//! Client commands for autoscaling (SPEC 12): `autoscale NAME [on|off]`,
//! relative `scale NAME +N` / `-N`, and the autoscale lines under `status`.

use phpeek_wire::{AutoscaleResponse, ProcessInfo};

use crate::client::{Client, Failure};

/// `phpeek-pm autoscale NAME [on|off]`: show, enable or pause.
pub async fn autoscale(client: &Client, name: &str, set: Option<&str>) -> Result<(), Failure> {
    let enabled = match set {
        None => {
            let p: ProcessInfo = client.get(&format!("/processes/{name}")).await?;
            match p.autoscale {
                Some(_) => print!("{}", table(std::slice::from_ref(&p))),
                None => println!("{name} has no autoscaler"),
            }
            return Ok(());
        }
        Some("on") => true,
        Some("off") => false,
        Some(other) => {
            return Err(Failure::usage(format!(
                "expected `on` or `off`, not `{other}`"
            )))
        }
    };
    let body = format!("{{\"enabled\": {enabled}}}");
    let answer: AutoscaleResponse = client
        .post(&format!("/processes/{name}/autoscale"), Some(body))
        .await?;
    println!("{}: {} ({})", answer.process, answer.message, answer.state);
    Ok(())
}

/// The count a `scale` argument asks for: `N`, or `+N` / `-N` relative to
/// the process's desired count now.
pub fn relative_target(arg: &str, current: Option<u32>) -> Result<u32, String> {
    let bad = || format!("expected a count like 5, +2 or -1, not `{arg}`");
    if let Some(rest) = arg.strip_prefix('+') {
        let n: u32 = rest.parse().map_err(|_| bad())?;
        let cur = current.ok_or_else(bad)?;
        return Ok(cur.saturating_add(n));
    }
    if let Some(rest) = arg.strip_prefix('-') {
        let n: u32 = rest.parse().map_err(|_| bad())?;
        let cur = current.ok_or_else(bad)?;
        return Ok(cur.saturating_sub(n));
    }
    arg.parse().map_err(|_| bad())
}

/// Resolves a `scale` argument, asking the manager for the current count
/// only when it is relative.
pub async fn scale_target(client: &Client, name: &str, arg: &str) -> Result<u32, Failure> {
    let current = if arg.starts_with('+') || arg.starts_with('-') {
        let p: ProcessInfo = client.get(&format!("/processes/{name}")).await?;
        Some(p.desired)
    } else {
        None
    };
    relative_target(arg, current).map_err(Failure::usage)
}

/// The autoscale table `status` prints (processes with an autoscaler).
pub fn table(processes: &[ProcessInfo]) -> String {
    let rows: Vec<Vec<String>> = processes
        .iter()
        .filter_map(|p| {
            let a = p.autoscale.as_ref()?;
            let metrics = a
                .last
                .as_ref()
                .map(|l| {
                    l.metrics
                        .iter()
                        .map(|m| match (&m.value, &m.error) {
                            (Some(v), _) => format!("{}={v}", m.name),
                            (None, Some(_)) => format!("{}=error", m.name),
                            (None, None) => format!("{}=-", m.name),
                        })
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            Some(vec![
                p.name.clone(),
                a.state.clone(),
                format!("{}-{}", a.min, a.max),
                a.recommended.map_or("-".into(), |r| r.to_string()),
                a.desired.to_string(),
                p.current.to_string(),
                a.last
                    .as_ref()
                    .and_then(|l| l.limited_by.clone())
                    .unwrap_or_else(|| "-".into()),
                metrics,
            ])
        })
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    let headers = [
        "AUTOSCALE",
        "STATE",
        "MIN-MAX",
        "RECOMMENDED",
        "DESIRED",
        "RUNNING",
        "LIMITED BY",
        "METRICS",
    ];
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(parts.join("  ").trim_end());
        out.push('\n');
    };
    line(headers.to_vec());
    for r in &rows {
        line(r.iter().map(String::as_str).collect());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_counts() {
        assert_eq!(relative_target("5", None), Ok(5));
        assert_eq!(relative_target("+2", Some(3)), Ok(5));
        assert_eq!(relative_target("-1", Some(3)), Ok(2));
        assert_eq!(relative_target("-9", Some(3)), Ok(0));
        assert!(relative_target("x", None).is_err());
        assert!(relative_target("+", Some(1)).is_err());
    }
}
