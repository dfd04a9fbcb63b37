//! A Rust client for Conduit's hubs (work in progress).

fn main() {}
