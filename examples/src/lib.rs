//! Runnable examples live in this package: `cargo run --example NAME`.
//!
//! The README's Rust code blocks are compiled and run as doc tests of this package, with this
//! package's dependencies, so the README's snippets build as pasted.

#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
