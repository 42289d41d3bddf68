//! Locating and reading the configuration file.
//!
//! Lookup order: `--config PATH`, `$PHPEEK_PM_CONFIG`, `./phpeek-pm.yaml`,
//! `/etc/phpeek-pm/phpeek-pm.yaml`. A path given explicitly (flag or
//! variable) must exist: falling back to another file would silently run a
//! config the operator did not ask for. An empty `PHPEEK_PM_CONFIG` counts
//! as unset.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::{parse_str, Config, ConfigErrors, Env};

/// Largest file accepted, in bytes.
const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

pub(crate) const DEFAULT_PATHS: [&str; 2] = ["./phpeek-pm.yaml", "/etc/phpeek-pm/phpeek-pm.yaml"];

pub(crate) fn find_config_path(cli: Option<&Path>, env: &Env) -> Result<PathBuf, ConfigErrors> {
    let defaults: Vec<PathBuf> = DEFAULT_PATHS.iter().map(PathBuf::from).collect();
    find_in(cli, env, &defaults)
}

fn explicit(path: &Path, how: &str) -> Result<PathBuf, ConfigErrors> {
    let shown = path.display().to_string();
    if path.is_file() {
        Ok(path.to_path_buf())
    } else if path.is_dir() {
        Err(ConfigErrors::single(
            shown,
            format!("config file given by {how} is a directory, not a file"),
        ))
    } else {
        Err(ConfigErrors::single(
            shown,
            format!("config file given by {how} does not exist"),
        ))
    }
}

pub(crate) fn find_in(
    cli: Option<&Path>,
    env: &Env,
    defaults: &[PathBuf],
) -> Result<PathBuf, ConfigErrors> {
    if let Some(path) = cli {
        return explicit(path, "--config");
    }
    if let Some(p) = env.vars.get("PHPEEK_PM_CONFIG").filter(|p| !p.is_empty()) {
        return explicit(Path::new(p), "$PHPEEK_PM_CONFIG");
    }
    if let Some(found) = defaults.iter().find(|p| p.is_file()) {
        return Ok(found.clone());
    }
    let looked: Vec<String> = defaults.iter().map(|p| p.display().to_string()).collect();
    Err(ConfigErrors::single(
        "phpeek-pm",
        format!(
            "no config file found: looked at --config (not given), $PHPEEK_PM_CONFIG (not set), {}; pass --config PATH or set PHPEEK_PM_CONFIG",
            looked.join(", ")
        ),
    ))
}

pub(crate) fn load_file(path: &Path, env: &Env) -> Result<Config, ConfigErrors> {
    let source = path.display().to_string();
    let fail = |m: String| Err(ConfigErrors::single(source.clone(), m));
    // A FIFO or a device would block the reader (and a reload) forever.
    match std::fs::metadata(path) {
        Ok(m) if !m.is_file() => return fail("the config path is not a regular file".to_string()),
        Ok(_) => {}
        Err(e) => return fail(format!("cannot read the config file: {e}")),
    }
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => return fail(format!("cannot read the config file: {e}")),
    };
    let mut bytes = Vec::new();
    if let Err(e) = file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes) {
        return fail(format!("cannot read the config file: {e}"));
    }
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return fail(format!(
            "the config file is larger than {} MiB",
            MAX_FILE_BYTES / (1024 * 1024)
        ));
    }
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            let before = e.as_bytes().get(..at).unwrap_or(&[]);
            let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
            return fail(format!(
                "the config file is not UTF-8 text (invalid byte at line {line}, byte offset {at})"
            ));
        }
    };
    parse_str(&text, &source, env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_order() {
        let dir = tempfile::tempdir().ok();
        let Some(dir) = dir else { return };
        let a = dir.path().join("a.yaml");
        let b = dir.path().join("b.yaml");
        let c = dir.path().join("c.yaml");
        std::fs::write(&a, "processes: {}\n").ok();
        std::fs::write(&b, "processes: {}\n").ok();
        let defaults = vec![c.clone(), b.clone()];
        let none = Env::default();
        // Defaults in order; the first existing wins.
        assert_eq!(find_in(None, &none, &defaults).ok(), Some(b.clone()));
        // The variable beats the defaults.
        let env = Env::from_pairs([("PHPEEK_PM_CONFIG", a.display().to_string())]);
        assert_eq!(find_in(None, &env, &defaults).ok(), Some(a.clone()));
        // The flag beats the variable.
        assert_eq!(find_in(Some(&b), &env, &defaults).ok(), Some(b.clone()));
        // An explicit path must exist.
        let err = find_in(Some(&c), &env, &defaults).err();
        assert!(err.is_some_and(|e| e.to_string().contains("does not exist")));
        let env_missing = Env::from_pairs([("PHPEEK_PM_CONFIG", c.display().to_string())]);
        let err = find_in(None, &env_missing, &defaults).err();
        assert!(err.is_some_and(|e| e.to_string().contains("PHPEEK_PM_CONFIG")));
        // Nothing found: every place is named.
        let err = find_in(None, &none, std::slice::from_ref(&c)).err();
        let text = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(text.contains("--config"), "{text}");
        assert!(text.contains("PHPEEK_PM_CONFIG"), "{text}");
        assert!(text.contains(&c.display().to_string()), "{text}");
        // The public function names the real default places.
        let text = find_config_path(None, &none)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        if !Path::new("./phpeek-pm.yaml").exists() && !Path::new(DEFAULT_PATHS[1]).exists() {
            assert!(text.contains("./phpeek-pm.yaml"));
            assert!(text.contains("/etc/phpeek-pm/phpeek-pm.yaml"));
        }
        // A directory is not a config file.
        let err = find_in(Some(dir.path()), &none, &defaults).err();
        assert!(err.is_some_and(|e| e.to_string().contains("directory")));
    }

    #[test]
    fn load_errors() {
        let Some(dir) = tempfile::tempdir().ok() else {
            return;
        };
        let missing = dir.path().join("missing.yaml");
        let e = load_file(&missing, &Env::default()).err();
        assert!(e.is_some_and(|e| e.errors.len() == 1 && e.to_string().contains("cannot read")));
        let bad = dir.path().join("bad.yaml");
        std::fs::write(&bad, b"processes:\n  web:\n    command: [\"\xff\"]\n").ok();
        let e = load_file(&bad, &Env::default()).err();
        let text = e.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            text.contains("not UTF-8") && text.contains("line 3"),
            "{text}"
        );
        let good = dir.path().join("good.yaml");
        std::fs::write(&good, "processes:\n  web:\n    command: [\"./web\"]\n").ok();
        let c = load_file(&good, &Env::default());
        assert!(c.is_ok_and(|c| c.processes.contains_key("web")));
    }
}
