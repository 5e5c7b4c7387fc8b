//! File and directory commands against the real binary, checked against what the OS
//! shows afterwards (contents, md5sum, lstat, /proc).

#[path = "../common/mod.rs"]
mod common;
mod handles;
mod helpers;
mod metadata;
mod open;
mod pipeline;
mod transfer;
