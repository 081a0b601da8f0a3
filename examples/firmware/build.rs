//! Picks the memory layout for the target's machine and links with cortex-m-rt's `link.x`.

use std::path::PathBuf;
use std::{env, fs};

fn main() {
    let target = env::var("TARGET").expect("cargo sets TARGET");
    // thumbv6m (Cortex-M0) runs on the micro:bit machine, every other Cortex-M target on the
    // LM3S6965 evaluation board.
    let (machine, clock_hz) = if target.starts_with("thumbv6m") {
        ("microbit", 16_000_000)
    } else {
        ("lm3s6965evb", 12_000_000)
    };
    let source = format!("memory/{machine}.x");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::copy(&source, out.join("memory.x")).expect("copy the memory layout");
    // The core clock that drives SysTick, as qemu models each board.
    fs::write(
        out.join("machine.rs"),
        format!(
            "/// The qemu machine this image is built for.\n\
             pub const MACHINE: &str = {machine:?};\n\
             /// Its core clock in Hz (SysTick counts it).\n\
             pub const CORE_CLOCK_HZ: u32 = {clock_hz};\n"
        ),
    )
    .expect("write machine.rs");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rustc-link-arg=-Tlink.x");
    println!("cargo:rerun-if-changed={source}");
    println!("cargo:rerun-if-changed=build.rs");
}
