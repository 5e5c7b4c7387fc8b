//! Starting agents for the file tests, and what the OS shows of a file.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

pub(crate) use phoenix_testkit::path_str as s;
pub(crate) use phoenix_testkit::{
    call, fails, md5_of, md5sum, ok, random_bytes, Launch, TestAgent, MIB,
};

use crate::AGENT;

/// An agent whose umask is 077, so perms that come out right were set exactly.
pub(crate) fn agent(args: &[&str]) -> TestAgent {
    Launch::new(AGENT)
        .wrapper(&["sh", "-c", "umask 077; exec \"$@\"", "sh"])
        .start(args)
}

/// An agent running as nobody, listening in `dir` (which nobody must own).
pub(crate) fn agent_as_nobody(dir: tempfile::TempDir) -> TestAgent {
    Launch::new(AGENT)
        .wrapper(&[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ])
        .dir(dir)
        .start(&[])
}

pub(crate) fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().mode()
}
