//! `exec [-i] [-t] [--timeout S] [--env K=V] -- CMD...`: runs a command in the guest.
//!
//! With phoenix-rs (which has the exec extensions) the output is streamed to stdout
//! and stderr as it comes, `-i` streams the local standard input, `-t` runs the
//! command on a terminal in the guest with the local terminal in raw mode (its window
//! size followed on SIGWINCH), and Ctrl-C is forwarded as SIGINT to the remote process
//! group. Against qemu-ga, which has none of them, the command runs with its output
//! captured (16 MiB per stream at most), `-i` sends the whole local input first, and
//! the status is polled until the exit. Either way phoenix-ctl exits with the remote
//! command's status (128 + N for a death by signal N, as a shell reports it).

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::time::Duration;

use nix::sys::signal::{SigSet, Signal};
use nix::sys::termios::{self, SetArg, Termios};
use phoenix_client::api::exec::decode;
use phoenix_client::{Client, ClientError, Dialect};
use phoenix_proto::types::exec::{GuestExecArgs, GuestExecCaptureOutput, GuestExecReadArgs};

use crate::{Result, Usage};

/// What `exec` was asked.
#[derive(Debug)]
pub struct ExecOptions<'a> {
    /// `-i`: stream the local standard input.
    pub interactive: bool,
    /// `-t`: a terminal in the guest.
    pub tty: bool,
    /// `--timeout`: seconds after which the remote process group is killed.
    pub timeout: Option<f64>,
    /// `--env`: the command's environment.
    pub env: &'a [String],
    /// The command and its arguments.
    pub cmd: &'a [String],
}

/// Bytes of local input sent per write.
const CHUNK: usize = 64 << 10;

/// How often qemu-ga's status is polled.
const POLL: Duration = Duration::from_millis(50);

/// Runs the command; exits with its status (returns only an error met before the
/// command started).
#[expect(
    clippy::exit,
    reason = "phoenix-ctl's status is the remote command's; the input thread may be \
              blocked reading the local terminal and cannot be joined"
)]
pub fn exec(client: &Client, o: &ExecOptions<'_>) -> Result {
    let (path, rest) = o
        .cmd
        .split_first()
        .ok_or_else(|| Usage("exec: no command given".into()))?;
    let mut args = GuestExecArgs {
        path: path.clone(),
        arg: Some(rest.to_vec()),
        env: (!o.env.is_empty()).then(|| o.env.to_vec()),
        ..GuestExecArgs::default()
    };
    let code = if client.info()?.streams_exec() {
        streamed(client, o, &mut args)?
    } else {
        polled(client, o, &mut args)?
    };
    std::io::stdout().flush()?;
    std::process::exit(code);
}

/// A shell's exit status for an end: the code, or 128 + the signal.
fn status_code(exitcode: Option<i64>, signal: Option<i64>) -> i32 {
    match (exitcode, signal) {
        (Some(c), _) => i32::try_from(c & 0xff).unwrap_or(1),
        (None, Some(s)) => 128 + i32::try_from(s & 0x7f).unwrap_or(0),
        (None, None) => 1,
    }
}

/// qemu-ga: captured output, input sent whole, the status polled.
fn polled(client: &Client, o: &ExecOptions<'_>, args: &mut GuestExecArgs) -> Result<i32> {
    if o.tty {
        return Err(
            Usage("exec -t needs phoenix-ga: this agent has no terminal mode".into()).into(),
        );
    }
    if o.timeout.is_some() {
        return Err(
            Usage("exec --timeout needs phoenix-ga: this agent has no timeout".into()).into(),
        );
    }
    if o.interactive {
        let mut input = Vec::new();
        std::io::stdin().read_to_end(&mut input)?;
        args.input_data = Some(base64_encode(&input));
    }
    args.capture_output = Some(GuestExecCaptureOutput::Flag(true));
    let pid = client.exec(args)?;
    loop {
        let s = client.exec_status(pid, None)?;
        if s.exited {
            if let Some(out) = &s.out_data {
                std::io::stdout().write_all(&decode(out)?)?;
            }
            if let Some(err) = &s.err_data {
                std::io::stderr().write_all(&decode(err)?)?;
            }
            if s.out_truncated == Some(true) || s.err_truncated == Some(true) {
                eprintln!("phoenix-ctl: the agent cut the output at its capture limit");
            }
            return Ok(status_code(s.exitcode, s.signal));
        }
        std::thread::sleep(POLL);
    }
}

fn base64_encode(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// The local terminal's window size, when stdout is one.
fn window_size() -> Option<(u16, u16)> {
    nix::ioctl_read_bad!(tiocgwinsz, nix::libc::TIOCGWINSZ, nix::libc::winsize);
    let mut ws = nix::libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `winsize` into `ws`, which lives across the call.
    let got = unsafe { tiocgwinsz(1, &mut ws) };
    (got.is_ok() && ws.ws_row > 0 && ws.ws_col > 0).then_some((ws.ws_row, ws.ws_col))
}

/// The local terminal in raw mode while held; restored on drop.
struct Raw(Termios);

impl Raw {
    fn enter() -> Result<Self> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd())?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw)?;
        Ok(Raw(saved))
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &self.0);
    }
}

/// phoenix-rs: streamed output, streamed input, signals forwarded.
#[expect(
    clippy::exit,
    reason = "the input and signal threads block (a read of the terminal, sigwait) \
              and cannot be joined: the scope ends the process with the remote status"
)]
fn streamed(client: &Client, o: &ExecOptions<'_>, args: &mut GuestExecArgs) -> Result<i32> {
    args.stream = Some(true);
    args.timeout = o.timeout;
    if o.tty {
        args.pty = Some(true);
        args.stream = None;
        let (rows, cols) = window_size().unwrap_or((24, 80));
        args.rows = Some(rows.into());
        args.cols = Some(cols.into());
        if let Some(env) = args.env.as_mut() {
            if !env.iter().any(|e| e.starts_with("TERM=")) {
                let term = std::env::var("TERM").unwrap_or_else(|_| "xterm".into());
                env.push(format!("TERM={term}"));
            }
        }
    } else if o.interactive {
        args.stdin = Some(true);
    }
    // Ctrl-C and window changes are taken by a thread of their own, once the remote
    // process exists; blocked in every thread from here on.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGWINCH);
    signals.thread_block()?;
    let pid = client.exec(args)?;
    let raw = match o.tty && nix::unistd::isatty(0).unwrap_or(false) {
        true => Some(Raw::enter()?),
        false => None,
    };
    // The threads borrow the client; they never end (a read of the local input, a
    // wait for a signal), so the scope ends the process itself rather than join them.
    std::thread::scope(|scope| {
        let tty = o.tty;
        scope.spawn(move || forward_signals(client, pid, &signals, tty));
        if o.interactive || o.tty {
            // A failed write means the remote process has gone: its end and output
            // come through the reading loop.
            scope.spawn(move || pump_input(client, pid));
        }
        // Nothing here may unwind out of the scope, which would then wait for the
        // threads for ever: a panic is caught, and stderr written without `eprintln!`
        // (which panics when the reader of stderr has gone).
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read_output(client, pid)));
        drop(raw);
        let code = match result {
            Ok(Ok(code)) => code,
            Ok(Err(e)) => {
                let report = phoenix_client::Report(&*e);
                let _ = writeln!(std::io::stderr(), "phoenix-ctl: {report}");
                i32::from(crate::exit_status(&*e))
            }
            Err(_) => 101,
        };
        let _ = std::io::stdout().flush();
        std::process::exit(code)
    })
}

/// Copies the streamed output to stdout and stderr until the remote process ended and
/// both streams are at their end; its exit status.
fn read_output(client: &Client, pid: i64) -> Result<i32> {
    // In the qemu-ga dialect a connection runs one request at a time: short waits,
    // so the input and the signals get their turn.
    let wait = match client.dialect() {
        Dialect::Phoenix => 5.0,
        Dialect::Qga => 0.2,
    };
    let (mut out_at, mut err_at) = (0u64, 0u64);
    let (mut stdout, mut stderr) = (std::io::stdout(), std::io::stderr());
    loop {
        let r = client.exec_read(&GuestExecReadArgs {
            pid,
            out_offset: Some(out_at),
            err_offset: Some(err_at),
            count: None,
            wait: Some(wait),
        })?;
        let (out, err) = (decode(&r.out_data)?, decode(&r.err_data)?);
        if !out.is_empty() {
            stdout.write_all(&out)?;
            stdout.flush()?;
        }
        if !err.is_empty() {
            stderr.write_all(&err)?;
        }
        out_at += u64::try_from(out.len())?;
        err_at += u64::try_from(err.len())?;
        if r.exited && r.out_eof && r.err_eof {
            return Ok(status_code(r.exitcode, r.signal));
        }
    }
}

/// Takes Ctrl-C (SIGINT to the remote group), SIGTERM (the same) and window changes
/// (the remote terminal's size).
fn forward_signals(client: &Client, pid: i64, signals: &SigSet, tty: bool) {
    while let Ok(sig) = signals.wait() {
        let done = match sig {
            Signal::SIGWINCH if tty => match window_size() {
                Some((rows, cols)) => client.exec_resize(pid, rows, cols),
                None => Ok(()),
            },
            Signal::SIGWINCH => Ok(()),
            other => client.exec_kill(pid, Some(other as i64), true),
        };
        // An error: it has exited meanwhile, and the output loop ends on its own.
        drop(done);
    }
}

/// Streams the local standard input to the remote process; closes it at end of file.
fn pump_input(client: &Client, pid: i64) -> std::result::Result<(), ClientError> {
    let mut stdin = std::io::stdin().lock();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match stdin.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ClientError::Io(e)),
        };
        client.exec_write_all(pid, &buf[..n], n == 0)?;
        if n == 0 {
            return Ok(());
        }
    }
}
