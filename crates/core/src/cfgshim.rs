//! TEMPORARY: stand-ins for config-crate functions landing in parallel.
use std::time::Duration;

pub fn instance_name(process: &str, number: u32) -> String {
    format!("{process}-{number}")
}

pub fn split_instance_name(name: &str) -> Option<(&str, u32)> {
    let (p, n) = name.rsplit_once('-')?;
    if n.starts_with('0') {
        return None;
    }
    let n: u32 = n.parse().ok()?;
    (n >= 1 && !p.is_empty()).then_some((p, n))
}

pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(60_000) && ms > 0 {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

pub enum ScaleLimit {
    AboveMaxScale { max: u32 },
    AboveGlobalMax { max: u32 },
    PortsPastEnd { port_base: u16 },
}

impl ScaleLimit {
    pub fn message(&self, process: &str, desired: u32) -> String {
        match self {
            ScaleLimit::AboveMaxScale { max } => {
                format!("desired {desired} is above max_scale {max} of `{process}`")
            }
            ScaleLimit::AboveGlobalMax { max } => {
                format!("desired {desired} is above max_process_scale {max}")
            }
            ScaleLimit::PortsPastEnd { port_base } => {
                format!("desired {desired} would give ports past 65535 (port_base {port_base})")
            }
        }
    }
}

pub trait CheckScale {
    fn check_scale(&self, desired: u32, max_process_scale: u32) -> Result<(), ScaleLimit>;
}

impl CheckScale for phpeek_config::ProcessConfig {
    fn check_scale(&self, desired: u32, max_process_scale: u32) -> Result<(), ScaleLimit> {
        if let Some(max) = self.max_scale {
            if desired > max {
                return Err(ScaleLimit::AboveMaxScale { max });
            }
        }
        if desired > max_process_scale {
            return Err(ScaleLimit::AboveGlobalMax {
                max: max_process_scale,
            });
        }
        if let Some(base) = self.port_base {
            if u32::from(base) + desired > u32::from(u16::MAX) {
                return Err(ScaleLimit::PortsPastEnd { port_base: base });
            }
        }
        Ok(())
    }
}
