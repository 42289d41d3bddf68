//! Link options of the `phpeek-pm` binary.
//!
//! Linux: relative relocations packed as DT_RELR (`-z pack-relative-relocs`,
//! glibc 2.36, lld and GNU ld 2.38). A PIE of this size carries about 45 000
//! relative relocations; as RELA entries they are a megabyte the loader
//! reads at every start and that then stays resident, as RELR they are
//! 20 KiB (issue 13: manager RSS). The static build (the one that ships)
//! relocates itself with glibc's own start-up code, which reads DT_RELR as
//! well; a dynamic build needs glibc 2.36 or later at run time.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
