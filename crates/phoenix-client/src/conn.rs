//! The client connection: unique tags, concurrent calls, replies matched by tag,
//! per-call timeouts and resynchronisation.
//!
//! There is no background thread: the caller whose reply is awaited reads the stream
//! itself ("leader"), parks replies meant for other callers, and hands the reading
//! role on when its own reply arrives. A lone caller thus pays no thread hand-off.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use phoenix_proto::{parse_reply, Dialect, Reply, WireError, RESYNC_BYTE};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::api::AgentInfo;
use crate::error::{AgentError, ClientError};
use crate::stream::{Line, LineReader, Stream};
use crate::Target;

/// How a client talks.
#[derive(Debug, Clone)]
pub struct Options {
    /// Default time to wait for each reply (`None`: forever).
    pub timeout: Option<Duration>,
    /// The dialect the agent speaks on this socket; `None`: find out on connect, with a
    /// `guest-sync-delimited` that qemu-ga's dialect answers and Phoenix's refuses.
    pub dialect: Option<Dialect>,
    /// On connect, resynchronise: send 0xFF and discard everything until the reply
    /// to a fresh `ping` (`guest-ping`), so stale replies of an earlier client never
    /// reach us.
    pub resync_on_connect: bool,
    /// How long a vsock connection may take: the AF_VSOCK connect, or the hybrid vsock
    /// socket's `CONNECT`/`OK` handshake.
    pub connect_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            timeout: Some(Duration::from_secs(30)),
            dialect: Some(Dialect::Phoenix),
            resync_on_connect: true,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// How long closing a hybrid vsock stream may read what the agent still sends.
const CLOSE_LIMIT: Duration = Duration::from_secs(5);

impl Options {
    /// The default options for an agent speaking `dialect`.
    pub fn dialect(dialect: Dialect) -> Self {
        Self {
            dialect: Some(dialect),
            ..Self::default()
        }
    }
}

/// The request member that carries a call's tag.
fn tag_field(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Phoenix => "tag",
        Dialect::Qga => "id",
    }
}

/// The command whose reply ends a resynchronisation.
fn ping_command(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Phoenix => "ping",
        Dialect::Qga => "guest-ping",
    }
}

type Outcome = Result<Box<RawValue>, WireError>;

/// A connection to one agent. `Sync`: share it between threads to run calls
/// concurrently.
pub struct Client {
    writer: Mutex<Stream>,
    reader: Mutex<LineReader>,
    state: Mutex<State>,
    changed: Condvar,
    next_tag: AtomicU64,
    prefix: String,
    opts: Options,
    dialect: Dialect,
    /// Set after a timeout: the next call resynchronises first.
    needs_resync: AtomicBool,
    /// What `ping` and `get-commands` said, once asked.
    info: Mutex<Option<Arc<AgentInfo>>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("prefix", &self.prefix)
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let reader = self.reader.get_mut().unwrap_or_else(|p| p.into_inner());
        reader.stream().close(CLOSE_LIMIT);
    }
}

#[derive(Default)]
struct State {
    /// Tags whose callers are still waiting.
    waiting: HashSet<String>,
    /// Replies read by another caller, parked for theirs.
    arrived: HashMap<String, Outcome>,
    /// Whether some caller is reading the stream.
    reading: bool,
    /// The connection failed; every call fails with this.
    closed: bool,
    /// Callers asleep on `changed`, waiting for the reader to hand over.
    sleepers: usize,
}

impl Client {
    /// Connects with the default options (30 s timeout, resync on connect). `path` may
    /// also be a vsock address, `vsock:CID:PORT` or `hvsock:PATH:PORT` ([`Target`]).
    pub fn connect(path: impl AsRef<Path>) -> Result<Self, ClientError> {
        Self::connect_with(path, Options::default())
    }

    /// Connects with explicit options; `path` as [`Client::connect`] takes it.
    pub fn connect_with(path: impl AsRef<Path>, opts: Options) -> Result<Self, ClientError> {
        Self::connect_to(&Target::from(path.as_ref()), opts)
    }

    /// Connects to `target` with explicit options.
    pub fn connect_to(target: &Target, opts: Options) -> Result<Self, ClientError> {
        let stream = target
            .open(opts.connect_timeout)
            .map_err(|source| ClientError::Connect {
                path: target.to_string(),
                source,
            })?;
        // A guest whose agent reads nothing (not started, or stuck) fails a write after
        // the timeout instead of blocking it for ever.
        stream.set_write_timeout(opts.timeout)?;
        let mut reader = LineReader::new(stream.try_clone()?);
        let mut writer = stream;
        let dialect = match opts.dialect {
            Some(d) => d,
            None => detect(&mut writer, &mut reader, opts.timeout)?,
        };
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let client = Self {
            writer: Mutex::new(writer),
            reader: Mutex::new(reader),
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            next_tag: AtomicU64::new(1),
            prefix: format!("{:x}{:x}", std::process::id(), nanos),
            opts,
            dialect,
            needs_resync: AtomicBool::new(false),
            info: Mutex::new(None),
        };
        if client.opts.resync_on_connect {
            client.resync()?;
        }
        Ok(client)
    }

    /// The options in use.
    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// The dialect the agent speaks on this connection.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The command that checks the agent is there: `ping` or `guest-ping`.
    pub fn ping_command(&self) -> &'static str {
        ping_command(self.dialect)
    }

    /// Calls `execute` with `args` and decodes the return value.
    pub fn call<A, R>(&self, execute: &str, args: &A) -> Result<R, ClientError>
    where
        A: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        self.call_timeout(execute, args, self.opts.timeout)
    }

    /// [`Client::call`] with its own timeout, for a call known to be slow (the md5 of
    /// a large file) or one that must fail fast.
    pub fn call_timeout<A, R>(
        &self,
        execute: &str,
        args: &A,
        timeout: Option<Duration>,
    ) -> Result<R, ClientError>
    where
        A: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        let args = serde_json::value::to_raw_value(args)
            .map_err(|e| ClientError::Protocol(format!("arguments: {e}")))?;
        let raw = self.call_raw(execute, Some(&args), timeout)?;
        decode(execute, &raw)
    }

    /// Calls a command that takes no arguments; the request carries no `arguments`
    /// member at all, as hosts of the original agent send it.
    pub fn call_no_args<R: DeserializeOwned>(&self, execute: &str) -> Result<R, ClientError> {
        let raw = self.call_raw(execute, None, self.opts.timeout)?;
        decode(execute, &raw)
    }

    /// Calls `execute` with raw JSON arguments (or none) and returns the raw return
    /// value, waiting at most `timeout`.
    pub fn call_raw(
        &self,
        execute: &str,
        args: Option<&RawValue>,
        timeout: Option<Duration>,
    ) -> Result<Box<RawValue>, ClientError> {
        if self.needs_resync.swap(false, Ordering::SeqCst) {
            self.resync()?;
        }
        self.request(execute, args, timeout)
    }

    /// Sends 0xFF (the agent drops any partial line) and waits for the reply to a
    /// `ping` with a fresh tag; replies to abandoned calls are discarded on the way.
    pub fn resync(&self) -> Result<(), ClientError> {
        self.writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .write_all(&[RESYNC_BYTE])?;
        self.request(
            ping_command(self.dialect),
            None,
            self.opts.timeout.or(Some(Duration::from_secs(30))),
        )
        .map(drop)
    }

    /// Sends raw bytes as they are (tests and `phoenix-ctl raw`).
    pub fn send_bytes(&self, bytes: &[u8]) -> Result<(), ClientError> {
        Ok(self
            .writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .write_all(bytes)?)
    }

    pub(crate) fn info_cache(&self) -> MutexGuard<'_, Option<Arc<AgentInfo>>> {
        self.info.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn request(
        &self,
        execute: &str,
        args: Option<&RawValue>,
        timeout: Option<Duration>,
    ) -> Result<Box<RawValue>, ClientError> {
        self.send_tagged(execute, args)?.wait(timeout)
    }

    /// Sends a request without waiting for its reply: [`Pending::wait`] gets it. A
    /// transfer keeps several requests in flight this way, so the agent works on the
    /// next chunk while this side handles the last. (Only pipeline requests whose
    /// order does not matter, or that the agent runs in order: see
    /// [`AgentInfo::ordered_io`](crate::AgentInfo::ordered_io).)
    pub fn send_request(
        &self,
        execute: &str,
        args: Option<&RawValue>,
    ) -> Result<Pending<'_>, ClientError> {
        if self.needs_resync.swap(false, Ordering::SeqCst) {
            self.resync()?;
        }
        self.send_tagged(execute, args)
    }

    fn send_tagged(
        &self,
        execute: &str,
        args: Option<&RawValue>,
    ) -> Result<Pending<'_>, ClientError> {
        let tag = format!(
            "{}-{}",
            self.prefix,
            self.next_tag.fetch_add(1, Ordering::Relaxed)
        );
        let mut line = Vec::with_capacity(64 + args.map_or(0, |a| a.get().len()));
        line.extend_from_slice(b"{\"execute\":");
        serde_json::to_writer(&mut line, execute)
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        if let Some(args) = args {
            line.extend_from_slice(b",\"arguments\":");
            line.extend_from_slice(args.get().as_bytes());
        }
        line.extend_from_slice(
            format!(",\"{}\":\"{tag}\"}}\r\n", tag_field(self.dialect)).as_bytes(),
        );

        {
            let mut st = self.state();
            if st.closed {
                return Err(ClientError::Closed);
            }
            st.waiting.insert(tag.clone());
        }
        let pending = Pending {
            client: self,
            tag,
            execute: execute.to_string(),
        };
        let written = self
            .writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .write_all(&line);
        if let Err(e) = written {
            // Part of the line may have gone: the next call starts with a resync.
            self.state().waiting.remove(&pending.tag);
            self.needs_resync.store(true, Ordering::SeqCst);
            return Err(e.into());
        }
        Ok(pending)
    }

    /// Waits for the reply tagged `tag`, reading the stream when nobody else is.
    fn wait_for(&self, tag: &str, deadline: Option<Instant>) -> Result<Outcome, ClientError> {
        let mut st = self.state();
        loop {
            if let Some(out) = st.arrived.remove(tag) {
                st.waiting.remove(tag);
                return Ok(out);
            }
            if st.closed {
                st.waiting.remove(tag);
                return Err(ClientError::Closed);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                st.waiting.remove(tag);
                return Err(ClientError::Timeout {
                    command: String::new(),
                    timeout: Duration::ZERO,
                });
            }
            if st.reading {
                st.sleepers += 1;
                st = match deadline {
                    None => self.changed.wait(st).unwrap_or_else(|p| p.into_inner()),
                    Some(d) => {
                        let left = d.saturating_duration_since(Instant::now());
                        self.changed
                            .wait_timeout(st, left)
                            .unwrap_or_else(|p| p.into_inner())
                            .0
                    }
                };
                st.sleepers -= 1;
                continue;
            }
            // Become the reader for one line.
            st.reading = true;
            drop(st);
            // The reply is parsed straight from the reader's buffer.
            let got = {
                let mut reader = self.reader.lock().unwrap_or_else(|p| p.into_inner());
                reader.read_line(deadline).map(|line| match line {
                    Line::Complete(bytes) => Read::Reply(salvage_reply(bytes)),
                    Line::Timeout => Read::Timeout,
                    Line::Closed => Read::Closed,
                })
            };
            st = self.state();
            st.reading = false;
            match got {
                Ok(Read::Reply(reply)) => self.file_reply(&mut st, reply),
                Ok(Read::Timeout) => {}
                Ok(Read::Closed) => st.closed = true,
                Err(e) => {
                    st.closed = true;
                    st.waiting.remove(tag);
                    self.changed.notify_all();
                    return Err(e.into());
                }
            }
            // A lone caller (the usual case) wakes nobody: no futex call per reply.
            if st.sleepers > 0 {
                self.changed.notify_all();
            }
        }
    }

    /// Parks a reply for its caller; replies nobody waits for are dropped.
    fn file_reply(&self, st: &mut State, reply: Option<Reply>) {
        let Some(reply) = reply else {
            return; // garbage from before a resync
        };
        if let Some(tag) = reply.tag {
            if st.waiting.contains(&tag) {
                st.arrived.insert(tag, reply.result);
            }
        }
    }
}

/// What one turn of reading the stream gave.
enum Read {
    /// A line: the reply it holds, or `None` for garbage.
    Reply(Option<Reply>),
    Timeout,
    Closed,
}

/// A request sent with [`Client::send_request`] whose reply has not been taken yet.
/// Dropping it abandons the reply (it is discarded when it comes).
#[derive(Debug)]
#[must_use = "the reply is lost unless waited for"]
pub struct Pending<'c> {
    client: &'c Client,
    tag: String,
    execute: String,
}

impl Pending<'_> {
    /// Waits at most `timeout` (`None`: forever) for the reply and returns its value,
    /// or the agent's error.
    pub fn wait(self, timeout: Option<Duration>) -> Result<Box<RawValue>, ClientError> {
        // A wait too long for the clock to express is a wait for ever.
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let got = self.client.wait_for(&self.tag, deadline);
        match got {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(w)) => Err(ClientError::Agent(AgentError {
                command: self.execute.clone(),
                message: w.message,
                code: w.code,
                class: w.class,
            })),
            Err(ClientError::Timeout { .. }) => {
                self.client.needs_resync.store(true, Ordering::SeqCst);
                Err(ClientError::Timeout {
                    command: self.execute.clone(),
                    timeout: timeout.unwrap_or_default(),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// The command this request runs.
    pub fn command(&self) -> &str {
        &self.execute
    }

    /// The client it was sent on.
    pub fn client(&self) -> &Client {
        self.client
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        let mut st = self.client.state();
        st.waiting.remove(&self.tag);
        st.arrived.remove(&self.tag);
    }
}

/// Finds out which dialect the agent speaks: sends 0xFF and a `guest-sync-delimited`
/// (without a tag, which qemu-ga would refuse). qemu-ga's dialect answers it (or refuses
/// it with a classed error, when an allow list leaves it out); Phoenix agents, ours and
/// the original, answer "unknown command" with their own error body. Replies of an
/// earlier client that come first are skipped.
fn detect(
    writer: &mut Stream,
    reader: &mut LineReader,
    timeout: Option<Duration>,
) -> Result<Dialect, ClientError> {
    let id = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default()
        | 1;
    let probe =
        format!("{{\"execute\":\"guest-sync-delimited\",\"arguments\":{{\"id\":{id}}}}}\r\n");
    writer.write_all(&[RESYNC_BYTE])?;
    writer.write_all(probe.as_bytes())?;
    let wait = timeout.unwrap_or(Duration::from_secs(30));
    let deadline = Instant::now().checked_add(wait);
    loop {
        match reader.read_line(deadline)? {
            Line::Complete(line) => match salvage_reply(line) {
                Some(Reply { result: Ok(v), .. }) if v.get() == id.to_string() => {
                    return Ok(Dialect::Qga)
                }
                Some(Reply { result: Err(e), .. }) if e.class.is_some() => return Ok(Dialect::Qga),
                Some(Reply { result: Err(_), .. }) => return Ok(Dialect::Phoenix),
                // Stale replies of an earlier client.
                _ => {}
            },
            Line::Timeout => {
                return Err(ClientError::Timeout {
                    command: "guest-sync-delimited (which dialect)".into(),
                    timeout: wait,
                })
            }
            Line::Closed => return Err(ClientError::Closed),
        }
    }
}

/// Decodes a return value into the caller's type. The error is clipped: a return
/// value (which serde's message quotes) may be megabytes of base64.
fn decode<R: DeserializeOwned>(execute: &str, raw: &RawValue) -> Result<R, ClientError> {
    serde_json::from_str(raw.get()).map_err(|e| {
        let full = format!("{execute}: {e}: {}", raw.get());
        let end = (0..=full.len().min(300))
            .rev()
            .find(|&i| full.is_char_boundary(i))
            .unwrap_or(0);
        let more = if end < full.len() { "..." } else { "" };
        ClientError::Protocol(format!("{}{more}", &full[..end]))
    })
}

/// Parses a reply line. A line that does not parse may be a reply glued to the tail
/// of a partial line (an agent restarted in the middle of a reply, or the rest of a
/// reply meant for an earlier client): the last reply object that starts inside it
/// and parses to the end is taken. Base64 and escaped JSON strings never contain
/// `{"return"` or `{"error"`, so a match inside a reply's own data is impossible.
fn salvage_reply(line: &[u8]) -> Option<Reply> {
    if let Ok(r) = parse_reply(line) {
        return Some(r);
    }
    let starts = memchr::memmem::find_iter(line, b"{\"return\"")
        .chain(memchr::memmem::find_iter(line, b"{\"error\""))
        .filter(|&i| i > 0);
    let mut starts: Vec<usize> = starts.collect();
    starts.sort_unstable();
    starts
        .into_iter()
        .find_map(|i| parse_reply(&line[i..]).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_errors_quote_the_start_of_the_value() {
        let long = RawValue::from_string(format!("\"{}\"", "é".repeat(500))).unwrap();
        let e = decode::<u64>("file-read", &long).unwrap_err().to_string();
        assert!(
            e.starts_with("unexpected reply: file-read: invalid type"),
            "{e}"
        );
        assert!(e.ends_with("..."), "{e}");
        assert!(e.len() < 400, "{e}");
    }

    #[test]
    fn salvages_a_reply_glued_to_garbage() {
        let r = salvage_reply(br#"{"return":"AAAA"x{"return":true,"tag":"t1"}"#).unwrap();
        assert_eq!(r.tag.as_deref(), Some("t1"));
        let r = salvage_reply(
            b"\x00\x01junk{\"error\":{\"bufb64\":\"eA==\",\"code\":2},\"tag\":\"e\"}",
        )
        .unwrap();
        assert_eq!(r.tag.as_deref(), Some("e"));
        assert_eq!(r.result.unwrap_err().code, 2);
        assert!(salvage_reply(b"just garbage").is_none());
        assert!(salvage_reply(br#"{"return":"#).is_none());
    }
}
