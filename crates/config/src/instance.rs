//! Instance names: instance `N` of process `p` is `p-N`.
//!
//! Invariant: [`split_instance_name`] is the inverse of [`instance_name`]
//! for every process name and every number from 1 up; it accepts no other
//! spelling of the number (no `0`, no leading zeros, no sign), so each
//! instance has exactly one name.

/// `web-3` for instance 3 of process `web`.
pub fn instance_name(process: &str, number: u32) -> String {
    format!("{process}-{number}")
}

/// `Some(("web", 3))` for `web-3`; `None` when `name` has no `-N` suffix
/// with N ≥ 1 written without leading zeros (and fitting a `u32`).
pub fn split_instance_name(name: &str) -> Option<(&str, u32)> {
    let (process, digits) = name.rsplit_once('-')?;
    if digits.starts_with('0') || digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let number = digits.parse::<u32>().ok()?;
    Some((process, number))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn examples() {
        assert_eq!(instance_name("web", 3), "web-3");
        assert_eq!(split_instance_name("web-3"), Some(("web", 3)));
        assert_eq!(
            split_instance_name("queue-default-12"),
            Some(("queue-default", 12))
        );
        for bad in [
            "web",
            "web-",
            "web-0",
            "web-03",
            "web-+3",
            "web-3a",
            "web-99999999999",
            "web-3-",
        ] {
            assert_eq!(split_instance_name(bad), None, "{bad}");
        }
    }

    proptest! {
        #[test]
        fn split_inverts_join(process in "\\PC{0,20}", number in 1u32..) {
            let name = instance_name(&process, number);
            prop_assert_eq!(split_instance_name(&name), Some((process.as_str(), number)));
        }

        #[test]
        fn join_inverts_split(name in "[a-z0-9_-]{0,12}-[0-9]{1,11}") {
            if let Some((process, number)) = split_instance_name(&name) {
                prop_assert!(number >= 1);
                prop_assert_eq!(instance_name(process, number), name);
            }
        }
    }
}
