//! A process's `forward_signals:` (SPEC 7): which of the manager's SIGUSR1
//! and SIGUSR2 are passed on to its instances.

use serde::ser::SerializeSeq;
use serde::Serialize;

/// Which user signals reach the instances of a process. Both by default
/// (php-fpm's master reopens its logs on SIGUSR1 and reloads on SIGUSR2);
/// a program that dies of them (php's built-in server, redis-server) or
/// reads them differently (nginx: SIGUSR2 is a binary upgrade) opts out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardSignals {
    pub usr1: bool,
    pub usr2: bool,
}

impl Default for ForwardSignals {
    fn default() -> Self {
        ForwardSignals {
            usr1: true,
            usr2: true,
        }
    }
}

impl ForwardSignals {
    /// The only signals that can be forwarded.
    pub const FORWARDABLE: [i32; 2] = [libc::SIGUSR1, libc::SIGUSR2];

    pub const NONE: ForwardSignals = ForwardSignals {
        usr1: false,
        usr2: false,
    };

    pub fn is_default(&self) -> bool {
        *self == ForwardSignals::default()
    }

    /// Whether `signo` (SIGUSR1 or SIGUSR2) is passed on; any other: no.
    pub fn forwards(&self, signo: i32) -> bool {
        match signo {
            libc::SIGUSR1 => self.usr1,
            libc::SIGUSR2 => self.usr2,
            _ => false,
        }
    }

    /// Adds `signo`; false when it is not SIGUSR1 or SIGUSR2.
    pub fn add(&mut self, signo: i32) -> bool {
        match signo {
            libc::SIGUSR1 => self.usr1 = true,
            libc::SIGUSR2 => self.usr2 = true,
            _ => return false,
        }
        true
    }
}

/// As the file writes it: a list of names, e.g. `[SIGUSR1]`.
impl Serialize for ForwardSignals {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let names: Vec<&str> = [(self.usr1, "SIGUSR1"), (self.usr2, "SIGUSR2")]
            .into_iter()
            .filter_map(|(on, name)| on.then_some(name))
            .collect();
        let mut seq = s.serialize_seq(Some(names.len()))?;
        for n in names {
            seq.serialize_element(n)?;
        }
        seq.end()
    }
}
