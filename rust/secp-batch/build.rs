//! Compiles csrc/shim.c against the libsecp256k1 headers vendored in depend/ (the revision
//! secp256k1-sys 0.14.1 ships; see depend/README.md).

fn main() {
    println!("cargo:rerun-if-changed=csrc/shim.c");
    println!("cargo:rerun-if-changed=csrc/vsqrt.h");
    println!("cargo:rerun-if-changed=depend");
    cc::Build::new()
        .file("csrc/shim.c")
        .include("csrc")
        .include("depend/secp256k1/src")
        // The G tables are not used by the shim's multiplications (G goes in as an ordinary
        // point), so the smallest window keeps them at one entry each.
        .define("ECMULT_WINDOW_SIZE", Some("2"))
        .flag_if_supported("-Wno-unused-function")
        .flag_if_supported("-Wno-unused-parameter")
        // Curve arithmetic at -O0 makes debug test runs crawl; the code is the same either way.
        .opt_level(2)
        .compile("x402b_shim");
}
