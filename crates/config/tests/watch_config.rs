//! `global.watch_config`: a flag, off by default, refused with its
//! position when it is not a boolean, settable from the environment.

use phpeek_config::{parse_str, Env};

const WEB: &str = "processes:\n  web:\n    command: [\"./web\"]\n";

#[test]
fn watch_config_is_off_by_default_and_reads_a_flag() {
    let none = Env::from_pairs(Vec::<(String, String)>::new());
    let off = parse_str(WEB, "phpeek-pm.yaml", &none);
    assert!(
        matches!(off, Ok(ref c) if !c.global.watch_config),
        "{off:?}"
    );
    let on = parse_str(
        &format!("global:\n  watch_config: true\n{WEB}"),
        "phpeek-pm.yaml",
        &none,
    );
    assert!(matches!(on, Ok(ref c) if c.global.watch_config), "{on:?}");

    let over = Env::from_pairs([("PHPEEK_PM_GLOBAL_WATCH_CONFIG", "true")]);
    let from_env = parse_str(WEB, "phpeek-pm.yaml", &over);
    assert!(
        matches!(from_env, Ok(ref c) if c.global.watch_config),
        "{from_env:?}"
    );
}

#[test]
fn a_watch_config_that_is_not_a_flag_is_an_error_with_its_position() {
    let none = Env::from_pairs(Vec::<(String, String)>::new());
    let text = format!("global:\n  watch_config: sometimes\n{WEB}");
    match parse_str(&text, "phpeek-pm.yaml", &none) {
        Ok(c) => panic!("accepted: {c:?}"),
        Err(e) => {
            let e = e.to_string();
            assert!(e.contains("2:17: global.watch_config:"), "{e}");
        }
    }
    let typo = format!("global:\n  watch_confg: true\n{WEB}");
    match parse_str(&typo, "phpeek-pm.yaml", &none) {
        Ok(c) => panic!("accepted: {c:?}"),
        Err(e) => assert!(e.to_string().contains("watch_config"), "{e}"),
    }
}
