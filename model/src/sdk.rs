//! The typed Rust SDK. (being written)
