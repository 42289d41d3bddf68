//! Time zones of `schedule.timezone`: IANA names from the database compiled
//! into the binary (chrono-tz), so an image needs no tzdata.
//!
//! Names are matched exactly (as the database spells them). The default is
//! the loader's `TZ` variable when it names a zone (a leading `:` is
//! dropped; a path ending in `zoneinfo/<Name>` names `<Name>`), else `UTC`.

use chrono_tz::{Tz, TZ_VARIANTS};

use crate::suggest;

/// The zone for a name exactly as the database spells it.
pub fn zone_by_name(name: &str) -> Option<Tz> {
    name.parse::<Tz>().ok()
}

impl crate::Schedule {
    /// The schedule's zone (validated at load; `UTC` if it were not).
    pub fn zone(&self) -> Tz {
        zone_by_name(&self.timezone).unwrap_or(Tz::UTC)
    }
}

/// The database's name for `input`, or a sentence fragment with a hint.
pub(crate) fn resolve(input: &str) -> Result<&'static str, String> {
    let name = input.trim();
    if let Some(tz) = zone_by_name(name) {
        return Ok(tz.name());
    }
    let shown = crate::text::shorten(name, 40);
    Err(format!(
        "unknown time zone `{shown}`: expected an IANA name like Europe/Amsterdam or UTC{}",
        hint(name)
    ))
}

/// ` (did you mean `Europe/Amsterdam`?)`: the same name in another case,
/// else a zone whose last part is the input (`amsterdam`), else the
/// nearest name by edit distance (case-insensitive).
fn hint(input: &str) -> String {
    let lower = input.to_ascii_lowercase();
    let names = || TZ_VARIANTS.iter().map(|tz| tz.name());
    let found = names()
        .find(|n| n.eq_ignore_ascii_case(&lower))
        .or_else(|| {
            names().find(|n| {
                n.rsplit('/')
                    .next()
                    .is_some_and(|last| last.eq_ignore_ascii_case(&lower.replace(' ', "_")))
            })
        })
        .or_else(|| {
            let lowered: Vec<String> = names().map(str::to_ascii_lowercase).collect();
            let refs: Vec<&str> = lowered.iter().map(String::as_str).collect();
            let best = suggest::closest(&lower, &refs)?;
            names().find(|n| n.eq_ignore_ascii_case(best))
        });
    match found {
        Some(n) => format!(" (did you mean `{n}`?)"),
        None => String::new(),
    }
}

/// The default zone: `TZ` when it names one, else `UTC`.
pub(crate) fn default_zone(tz_var: Option<&str>) -> &'static str {
    let Some(raw) = tz_var else {
        return "UTC";
    };
    let v = raw.trim();
    let v = v.strip_prefix(':').unwrap_or(v);
    let v = match v.rfind("zoneinfo/") {
        Some(i) => v.get(i + "zoneinfo/".len()..).unwrap_or(""),
        None => v,
    };
    zone_by_name(v).map_or("UTC", |tz| tz.name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(resolve("Europe/Amsterdam"), Ok("Europe/Amsterdam"));
        assert_eq!(resolve("UTC"), Ok("UTC"));
        assert_eq!(resolve(" America/New_York "), Ok("America/New_York"));
        let e = resolve("europe/amsterdam").err().unwrap_or_default();
        assert!(e.ends_with("(did you mean `Europe/Amsterdam`?)"), "{e}");
        let e = resolve("Amsterdam").err().unwrap_or_default();
        assert!(e.ends_with("(did you mean `Europe/Amsterdam`?)"), "{e}");
        let e = resolve("Europe/Amsterdm").err().unwrap_or_default();
        assert!(e.ends_with("(did you mean `Europe/Amsterdam`?)"), "{e}");
        let e = resolve("Mars/Olympus").err().unwrap_or_default();
        assert!(e.starts_with("unknown time zone `Mars/Olympus`"), "{e}");
    }

    #[test]
    fn defaults() {
        assert_eq!(default_zone(None), "UTC");
        assert_eq!(default_zone(Some("Europe/Berlin")), "Europe/Berlin");
        assert_eq!(default_zone(Some(":Europe/Berlin")), "Europe/Berlin");
        assert_eq!(default_zone(Some(":/etc/localtime")), "UTC");
        assert_eq!(
            default_zone(Some("/usr/share/zoneinfo/Asia/Tokyo")),
            "Asia/Tokyo"
        );
        assert_eq!(default_zone(Some("CET-1CEST")), "UTC");
        assert_eq!(default_zone(Some("")), "UTC");
        assert_eq!(default_zone(Some("europe/berlin")), "UTC");
    }
}
