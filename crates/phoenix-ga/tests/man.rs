//! The man page (packaging/phoenix-ga.8, shipped in the .deb) is generated from the
//! clap definition in src/config/cli.rs with clap_mangen; this test fails when it is out of
//! date. Regenerate it with `PHOENIX_UPDATE_MAN=1 cargo test -p phoenix-ga --test man`.

// The agent is a binary crate: take its CLI definition from the source file itself.
#[allow(dead_code)]
#[path = "../src/config/cli.rs"]
mod config;

use std::path::PathBuf;

use clap::CommandFactory;

/// Sections clap knows nothing about: where the agent lives and what it talks to.
const EXTRA: &str = r#".SH FILES
.TP
\fI/dev/virtio\-ports/org.guest\-agent.0\fR
The virtio\-serial port served by default (QEMU: \fB\-device virtserialport,name=org.guest\-agent.0\fR).
.TP
\fI/etc/phoenix\-ga.conf\fR
Settings as \fBkey = value\fR lines named like the long options (read when present; see \fB\-\-config\fR); options on the command line win.
.TP
\fI/usr/lib/systemd/system/phoenix\-ga.service\fR, \fI/usr/lib/udev/rules.d/99\-phoenix\-ga.rules\fR
Start the agent when a port or a virtio vsock device appears (serving vsock port 1023 beside the ports) and restart it when it exits.
.SH SIGNALS
SIGTERM, SIGINT and SIGQUIT make the agent exit cleanly (thawing frozen filesystems); SIGHUP reopens the log file.
.SH EXIT STATUS
0 after \fBagent\-shutdown\fR or SIGTERM; 1 on a transport failure; 2 on a bad configuration.
.SH COMPATIBILITY
The Go agent's one\-dash spellings (\fB\-debug\fR, \fB\-path=X\fR) are accepted for every long option.
.SH SEE ALSO
\fBphoenix\-ctl\fR(1), \fBqemu\-ga\fR(8), \fBsystemd.exec\fR(5)
"#;

fn render() -> String {
    let mut page = Vec::new();
    clap_mangen::Man::new(config::Cli::command())
        .section("8")
        .render(&mut page)
        .expect("render the man page");
    let mut page = String::from_utf8(page).expect("UTF-8 man page");
    page.push_str(EXTRA);
    page
}

#[test]
fn man_page_matches_the_cli() {
    let page = render();
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../packaging/phoenix-ga.8");
    if std::env::var_os("PHOENIX_UPDATE_MAN").is_some() {
        std::fs::write(&path, &page).expect("write packaging/phoenix-ga.8");
        return;
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        current == page,
        "packaging/phoenix-ga.8 does not match the CLI in src/config.rs; regenerate it with \
         `PHOENIX_UPDATE_MAN=1 cargo test -p phoenix-ga --test man`"
    );
}

#[test]
fn man_page_documents_every_flag() {
    let page = render();
    for arg in config::Cli::command().get_arguments() {
        if let Some(long) = arg.get_long() {
            assert!(
                page.contains(&format!("\\-\\-{}", long.replace('-', "\\-"))),
                "--{long} missing"
            );
        }
    }
}
