//! Codec benchmarks (placeholder until written).
fn main() {}
