//! Conduit's real-time layer (work in progress; see CONTRACT.md).

fn main() {}
