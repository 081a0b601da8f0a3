//! Helpers shared by the test files (`mod common;`).

/// Sizes for real runs, cut down under Miri, which is some thousand times slower.
pub const fn size(n: usize) -> usize {
    if cfg!(miri) && n > 100 { 100 } else { n }
}
