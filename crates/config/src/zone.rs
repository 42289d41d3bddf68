//! Time zones of `schedule.timezone`: IANA names from the database compiled
//! into the binary (jiff's bundled copy, never the image's
//! `/usr/share/zoneinfo`), so an image needs no tzdata and every image
//! agrees on the rules.
//!
//! Names are matched exactly (as the database spells them). The default is
//! the loader's `TZ` variable when it names a zone (a leading `:` is
//! dropped; a path ending in `zoneinfo/<Name>` names `<Name>`), else `UTC`.

use std::sync::OnceLock;

use jiff::tz::{TimeZone, TimeZoneDatabase};

use crate::suggest;

/// The compiled-in database, opened once.
fn db() -> &'static TimeZoneDatabase {
    static DB: OnceLock<TimeZoneDatabase> = OnceLock::new();
    DB.get_or_init(TimeZoneDatabase::bundled)
}

/// The zone for a name exactly as the database spells it (the database
/// itself matches case-insensitively; `europe/amsterdam` is refused here
/// with a hint instead).
pub fn zone_by_name(name: &str) -> Option<TimeZone> {
    let tz = db().get(name).ok()?;
    (tz.iana_name() == Some(name)).then_some(tz)
}

impl crate::Schedule {
    /// The schedule's zone (validated at load; `UTC` if it were not).
    pub fn zone(&self) -> TimeZone {
        zone_by_name(&self.timezone).unwrap_or(TimeZone::UTC)
    }
}

/// The database's name for `input`, or a sentence fragment with a hint.
pub(crate) fn resolve(input: &str) -> Result<String, String> {
    let name = input.trim();
    if zone_by_name(name).is_some() {
        return Ok(name.to_string());
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
    let all: Vec<String> = db().available().map(|n| n.as_str().to_string()).collect();
    let names = || all.iter().map(String::as_str);
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
pub(crate) fn default_zone(tz_var: Option<&str>) -> String {
    let Some(raw) = tz_var else {
        return "UTC".to_string();
    };
    let v = raw.trim();
    let v = v.strip_prefix(':').unwrap_or(v);
    let v = match v.rfind("zoneinfo/") {
        Some(i) => v.get(i + "zoneinfo/".len()..).unwrap_or(""),
        None => v,
    };
    match zone_by_name(v) {
        Some(_) => v.to_string(),
        None => "UTC".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            resolve("Europe/Amsterdam").as_deref(),
            Ok("Europe/Amsterdam")
        );
        assert_eq!(resolve("UTC").as_deref(), Ok("UTC"));
        assert_eq!(
            resolve(" America/New_York ").as_deref(),
            Ok("America/New_York")
        );
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
