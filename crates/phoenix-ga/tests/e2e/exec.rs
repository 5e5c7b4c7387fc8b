//! The exec commands through the guest's real ports, in both dialects: output, exit
//! status, input, a grandchild holding the pipe, a timeout, streamed output.

use std::time::Duration;

use phoenix_client::api::exec::decode;
use phoenix_client::{Client, Dialect, Options, Report};
use phoenix_proto::types::exec::{GuestExecArgs, GuestExecCaptureOutput, GuestExecReadArgs};

use crate::guest;
use crate::qga::QGA_PORT;

/// The two clients: the Phoenix port and qemu-ga's.
fn clients(g: &phoenix_e2e::Guest) -> Vec<Client> {
    let opts = Options {
        dialect: Some(Dialect::Qga),
        timeout: Some(Duration::from_secs(90)),
        ..Options::default()
    };
    let qga = Client::connect_with(g.port_socket(QGA_PORT), opts).unwrap();
    vec![g.client(), qga]
}

fn sh(script: &str) -> GuestExecArgs {
    GuestExecArgs {
        path: "sh".into(),
        arg: Some(vec!["-c".into(), script.into()]),
        capture_output: Some(GuestExecCaptureOutput::Flag(true)),
        ..GuestExecArgs::default()
    }
}

/// Starts `args` and waits for the status that reports its exit.
fn run(c: &Client, args: &GuestExecArgs) -> phoenix_proto::types::exec::GuestExecStatus {
    let pid = c
        .exec(args)
        .unwrap_or_else(|e| panic!("{args:?}: {}", Report(&e)));
    for _ in 0..10 {
        let s = c.exec_status(pid, Some(20.0)).unwrap();
        if s.exited {
            return s;
        }
    }
    panic!("{args:?}: never exited");
}

fn out(s: &phoenix_proto::types::exec::GuestExecStatus) -> String {
    String::from_utf8(decode(s.out_data.as_deref().unwrap_or("")).unwrap()).unwrap()
}

#[test]
fn exec_in_the_guest_through_both_ports() {
    let Some(g) = guest() else { return };
    for c in clients(&g) {
        let d = c.dialect();
        // Output, error and the exit status; the uname is the guest's.
        let s = run(&c, &sh("uname -n; echo err >&2; exit 3"));
        assert_eq!(s.exitcode, Some(3), "{d:?}");
        assert_eq!(out(&s).trim(), g.sh_ok("uname -n").trim(), "{d:?}");
        assert_eq!(decode(s.err_data.as_deref().unwrap()).unwrap(), b"err\n");
        // Input.
        let mut cat = sh("cat");
        cat.input_data = Some("aGVsbG8=".into());
        assert_eq!(out(&run(&c, &cat)), "hello", "{d:?}");
        // A grandchild keeps standard output: the exit is reported all the same.
        let s = run(&c, &sh("sleep 1000 & echo $!"));
        assert_eq!(s.exitcode, Some(0), "{d:?}");
        let grandchild = out(&s).trim().to_string();
        assert!(g
            .sh_ok(&format!("[ -d /proc/{grandchild} ] && echo yes"))
            .contains("yes"));
        g.sh_ok(&format!("kill -9 {grandchild}"));
        // A timeout ends a group that ignores SIGTERM, its children too.
        let mut stubborn = sh("trap '' TERM; sleep 1000 & echo $! > /tmp/exec-child; wait");
        stubborn.timeout = Some(1.0);
        let s = run(&c, &stubborn);
        assert_eq!(s.signal, Some(9), "{d:?}");
        let child = g.sh_ok("cat /tmp/exec-child").trim().to_string();
        let state = g.sh_ok(&format!(
            "for i in $(seq 50); do [ -d /proc/{child} ] || break; \
             grep -q '^State:.*Z' /proc/{child}/status && break; sleep 0.1; done; \
             cat /proc/{child}/status 2>/dev/null | grep ^State; true"
        ));
        assert!(
            state.is_empty() || state.contains('Z'),
            "{d:?}: the child lives on: {state}"
        );
        // Streamed output, read as it comes.
        let mut stream = sh("seq 1 20000");
        stream.capture_output = None;
        stream.stream = Some(true);
        let pid = c.exec(&stream).unwrap();
        let mut got = Vec::new();
        loop {
            let r = c
                .exec_read(&GuestExecReadArgs {
                    pid,
                    out_offset: Some(got.len() as u64),
                    wait: Some(20.0),
                    ..GuestExecReadArgs::default()
                })
                .unwrap();
            got.extend(decode(&r.out_data).unwrap());
            if r.exited && r.out_eof && r.err_eof {
                assert_eq!(r.exitcode, Some(0));
                break;
            }
        }
        let want: String = (1..=20000).map(|i| format!("{i}\n")).collect();
        assert_eq!(String::from_utf8(got).unwrap(), want, "{d:?}");
    }
}
