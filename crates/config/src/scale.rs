//! The scale limits: how many instances a process may be asked for.
//!
//! One rule, used by validation (for `scale` and `max_scale` in the file)
//! and by the supervisor (for scale requests from the API, a reload or the
//! autoscaler). A desired scale of process `p` is allowed when it is
//! (checked in this order):
//! 1. at most `p.max_scale`, when set;
//! 2. at most `global.max_process_scale`;
//! 3. small enough that `port_base + desired` is still a port (≤ 65535),
//!    when `p.port_base` is set.

use crate::ProcessConfig;

/// A limit that a desired scale breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ScaleLimit {
    /// Above the process's own `max_scale`.
    #[error("above max_scale {max}")]
    AboveMaxScale { max: u32 },
    /// Above `global.max_process_scale`.
    #[error("above max_process_scale {max}")]
    AboveGlobalMax { max: u32 },
    /// `port_base + desired` would be past port 65535.
    #[error("would give ports past 65535 (port_base {port_base})")]
    PortsPastEnd { port_base: u16 },
}

impl ScaleLimit {
    /// The API's sentence for a refused scale request, e.g. ``desired 6 is
    /// above max_scale 5 of `web` ``.
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

impl ProcessConfig {
    /// `Ok` when `desired` instances are allowed, else the first limit it
    /// breaks (in the order of the module doc).
    pub fn check_scale(&self, desired: u32, max_process_scale: u32) -> Result<(), ScaleLimit> {
        match self.scale_limits(desired, max_process_scale).first() {
            Some(limit) => Err(*limit),
            None => Ok(()),
        }
    }

    /// Every limit `desired` breaks, in the order of the module doc.
    pub fn scale_limits(&self, desired: u32, max_process_scale: u32) -> Vec<ScaleLimit> {
        let mut broken = Vec::new();
        if let Some(max) = self.max_scale.filter(|&max| desired > max) {
            broken.push(ScaleLimit::AboveMaxScale { max });
        }
        if desired > max_process_scale {
            broken.push(ScaleLimit::AboveGlobalMax {
                max: max_process_scale,
            });
        }
        if let Some(port_base) = self.port_base {
            if u64::from(port_base) + u64::from(desired) > u64::from(u16::MAX) {
                broken.push(ScaleLimit::PortsPastEnd { port_base });
            }
        }
        broken
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::default_process;

    fn process(max_scale: Option<u32>, port_base: Option<u16>) -> ProcessConfig {
        let mut p = default_process();
        p.max_scale = max_scale;
        p.port_base = port_base;
        p
    }

    #[test]
    fn within_every_limit() {
        assert_eq!(process(None, None).check_scale(0, 10), Ok(()));
        assert_eq!(process(None, None).check_scale(10, 10), Ok(()));
        assert_eq!(process(Some(5), None).check_scale(5, 10), Ok(()));
        assert_eq!(process(None, Some(65_530)).check_scale(5, 10), Ok(()));
    }

    #[test]
    fn each_limit() {
        assert_eq!(
            process(Some(5), None).check_scale(6, 10),
            Err(ScaleLimit::AboveMaxScale { max: 5 })
        );
        assert_eq!(
            process(None, None).check_scale(11, 10),
            Err(ScaleLimit::AboveGlobalMax { max: 10 })
        );
        assert_eq!(
            process(None, Some(65_530)).check_scale(6, 10),
            Err(ScaleLimit::PortsPastEnd { port_base: 65_530 })
        );
        assert_eq!(
            process(None, Some(u16::MAX)).check_scale(u32::MAX, u32::MAX),
            Err(ScaleLimit::PortsPastEnd {
                port_base: u16::MAX
            })
        );
    }

    #[test]
    fn limits_in_order() {
        let p = process(Some(5), Some(65_530));
        assert_eq!(
            p.scale_limits(20, 10),
            vec![
                ScaleLimit::AboveMaxScale { max: 5 },
                ScaleLimit::AboveGlobalMax { max: 10 },
                ScaleLimit::PortsPastEnd { port_base: 65_530 },
            ]
        );
        assert_eq!(
            p.check_scale(20, 10),
            Err(ScaleLimit::AboveMaxScale { max: 5 })
        );
        assert_eq!(
            p.check_scale(8, 10),
            Err(ScaleLimit::AboveMaxScale { max: 5 })
        );
        let p = process(Some(50), Some(65_530));
        assert_eq!(
            p.check_scale(20, 10),
            Err(ScaleLimit::AboveGlobalMax { max: 10 })
        );
    }

    #[test]
    fn api_sentences() {
        assert_eq!(
            ScaleLimit::AboveMaxScale { max: 5 }.message("web", 6),
            "desired 6 is above max_scale 5 of `web`"
        );
        assert_eq!(
            ScaleLimit::AboveGlobalMax { max: 1000 }.message("web", 1001),
            "desired 1001 is above max_process_scale 1000"
        );
        assert_eq!(
            ScaleLimit::PortsPastEnd { port_base: 65_530 }.message("web", 6),
            "desired 6 would give ports past 65535 (port_base 65530)"
        );
        assert_eq!(
            ScaleLimit::AboveMaxScale { max: 5 }.to_string(),
            "above max_scale 5"
        );
    }
}
