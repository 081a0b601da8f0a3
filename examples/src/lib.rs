//! Runnable examples live in this package: `cargo run --example NAME`.
