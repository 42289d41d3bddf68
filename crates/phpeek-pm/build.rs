//! Link options of the `phpeek-pm` binary.
//!
//! Linux: relative relocations packed as DT_RELR (`-z pack-relative-relocs`,
//! glibc 2.36, lld and GNU ld 2.38). A PIE of this size carries about 45 000
//! relative relocations; as RELA entries they are a megabyte the loader
//! reads at every start and that then stays resident, as RELR they are
//! 20 KiB (issue 13: manager RSS). The static build (the one that ships)
//! relocates itself with glibc's own start-up code, which reads DT_RELR as
//! well; a dynamic build needs glibc 2.36 or later at run time.
//!
//! Release builds for x86_64 Linux with rustc's own lld (the default there
//! since Rust 1.90, unless a linker is configured): the functions a serving
//! manager runs are placed together (`link/functions.order`, written by
//! `scripts/order-functions`). The kernel maps code 64 KiB at a time around
//! each page touched, so spread over the whole `.text` they kept nearly all
//! of it resident. Names the binary lacks (a stale file) are skipped.
use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=link/functions.order");
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    if var("CARGO_CFG_TARGET_OS") == "linux" && var("CARGO_CFG_TARGET_ENV") == "gnu" {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    let order = Path::new(&var("CARGO_MANIFEST_DIR")).join("link/functions.order");
    if var("TARGET") == "x86_64-unknown-linux-gnu"
        && var("PROFILE") == "release"
        && std::env::var_os("RUSTC_LINKER").is_none()
        && !["linker", "link-self-contained"]
            .iter()
            .any(|k| var("CARGO_ENCODED_RUSTFLAGS").contains(k))
        && rustc_links_with_lld()
        && order.is_file()
    {
        println!(
            "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={},--no-warn-symbol-ordering",
            order.display()
        );
    }
}

/// rustc 1.90 or later, whose x86_64-unknown-linux-gnu target links with
/// its bundled lld by default (GNU ld has no symbol ordering file).
// A build script has no reaper to race: waiting for rustc is fine here.
#[allow(clippy::disallowed_methods)]
fn rustc_links_with_lld() -> bool {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let Ok(out) = Command::new(rustc).arg("--version").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let mut version = text
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (version.next().unwrap_or(0), version.next().unwrap_or(0));
    (major, minor) >= (1, 90)
}
