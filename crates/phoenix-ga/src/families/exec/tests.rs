//! The operations on a real agent state, with real children (harmless programs).

use std::time::Duration;

use clap::Parser;

use super::ops::Start;
use super::proc::Ended;
use super::Exec;
use crate::agent::Agent;

fn agent() -> (Agent, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let cli = crate::config::Cli::try_parse_from([
        "phoenix-ga",
        "--state-dir",
        dir.path().to_str().unwrap(),
    ])
    .unwrap();
    (Agent::new(cli).unwrap(), dir)
}

fn start<'a>(path: &'a str, args: &'a [String]) -> Start<'a> {
    Start {
        path,
        args,
        env: None,
        input: Vec::new(),
        out: true,
        err: true,
        merged: false,
        stream: false,
        stdin: false,
        pty: None,
        timeout: None,
    }
}

fn strings(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

const LONG: Duration = Duration::from_secs(20);

#[test]
fn the_status_that_reports_the_exit_forgets_the_pid() {
    let (a, _d) = agent();
    let exec = a.family::<Exec>();
    let args = strings(&["-c", "echo out; echo err >&2; exit 3"]);
    let pid = exec.start(start("/bin/sh", &args)).unwrap();
    let s = exec.status(pid.into(), LONG).unwrap();
    assert!(s.exited);
    assert_eq!(s.ended, Some(Ended::Code(3)));
    assert_eq!(s.out.unwrap().data, b"out\n");
    assert_eq!(s.err.unwrap().data, b"err\n");
    assert_eq!(exec.shared.table.counts(), (0, 0));
    let e = exec.status(pid.into(), Duration::ZERO).unwrap_err();
    assert_eq!(e.message(), format!("PID {pid} does not exist"));
}

#[test]
fn a_grandchild_holding_the_pipe_does_not_hide_the_exit() {
    let (a, _d) = agent();
    let exec = a.family::<Exec>();
    let args = strings(&["-c", "sleep 3 & echo started"]);
    let pid = exec.start(start("/bin/sh", &args)).unwrap();
    let s = exec.status(pid.into(), LONG).unwrap();
    assert!(s.exited, "the exit is reported after the drain");
    assert_eq!(s.out.unwrap().data, b"started\n");
}

#[test]
fn streamed_output_comes_whole_from_offsets_and_input_goes_in() {
    let (a, _d) = agent();
    let exec = a.family::<Exec>();
    let mut s = start("/bin/cat", &[]);
    s.stream = true;
    s.stdin = true;
    s.input = b"first ".to_vec();
    let pid: i64 = exec.start(s).unwrap().into();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut written = 0;
    let mut got = Vec::new();
    let reader = std::thread::scope(|scope| {
        let r = scope.spawn(|| {
            let mut out = Vec::new();
            loop {
                let c = exec.read(pid, (out.len() as u64, 0), 1 << 20, LONG).unwrap();
                out.extend_from_slice(&c.out);
                if c.out_eof && c.ended.is_some() {
                    return (out, c.ended);
                }
            }
        });
        while written < data.len() {
            let end = (written + 100_000).min(data.len());
            written += exec.write(pid, &data[written..end], false, LONG).unwrap();
        }
        assert_eq!(exec.write(pid, b"", true, LONG).unwrap(), 0);
        r.join().unwrap()
    });
    got.extend_from_slice(b"first ");
    got.extend_from_slice(&data);
    assert_eq!(reader.0.len(), got.len());
    assert!(reader.0 == got, "the bytes differ");
    assert_eq!(reader.1, Some(Ended::Code(0)));
    assert_eq!(exec.shared.table.counts(), (0, 0), "the last read forgot it");
    let e = exec.write(pid, b"x", false, Duration::ZERO).unwrap_err();
    assert_eq!(e.code(), 3);
}

#[test]
fn a_pty_has_its_size_and_is_the_controlling_terminal() {
    let (a, _d) = agent();
    let exec = a.family::<Exec>();
    let args = strings(&["-c", "stty size; test -t 0 && tty >/dev/null && echo tty"]);
    let mut s = start("/bin/sh", &args);
    s.pty = Some((33, 99));
    s.stream = true;
    let pid: i64 = exec.start(s).unwrap().into();
    let mut out = Vec::new();
    loop {
        let c = exec.read(pid, (out.len() as u64, 0), 1 << 20, LONG).unwrap();
        out.extend_from_slice(&c.out);
        if c.out_eof && c.ended.is_some() {
            break;
        }
    }
    assert_eq!(String::from_utf8_lossy(&out), "33 99\r\ntty\r\n");
    exec.resize(pid, 1, 1).unwrap_err();
}

#[test]
fn kill_signals_the_group_and_no_one_else() {
    let (a, _d) = agent();
    let exec = a.family::<Exec>();
    let args = strings(&["60"]);
    let pid: i64 = exec.start(start("/bin/sleep", &args)).unwrap().into();
    assert!(!exec.status(pid, Duration::ZERO).unwrap().exited);
    exec.kill(pid, 0, true).unwrap();
    exec.kill(pid, 9, true).unwrap();
    let s = exec.status(pid, LONG).unwrap();
    assert_eq!(s.ended, Some(Ended::Signal(9)));
    assert_eq!(exec.kill(pid, 9, true).unwrap_err().code(), 3);
    assert_eq!(exec.kill(1 << 40, 9, true).unwrap_err().code(), 3);
}

#[test]
fn the_running_children_are_bounded() {
    let (a, _d) = agent();
    let exec = a.family::<Exec>();
    let args = strings(&["60"]);
    let pids: Vec<i64> = (0..super::table::MAX_RUNNING)
        .map(|_| exec.start(start("/bin/sleep", &args)).unwrap().into())
        .collect();
    let e = exec.start(start("/bin/sleep", &args)).unwrap_err();
    assert_eq!(e.code(), 11, "{}", e.message());
    for &pid in &pids {
        exec.kill(pid, 9, false).unwrap();
    }
    for &pid in &pids {
        assert!(exec.status(pid, LONG).unwrap().exited);
    }
    assert_eq!(exec.shared.table.counts(), (0, 0));
    exec.start(start("/bin/true", &[])).unwrap();
}
