//! The qemu-ga dialect in tests: calls on a [`RawConn`] ([`qga_call`], [`qga_ok`],
//! [`qga_fails`]), our agent speaking it ([`Launch::start_qga`](crate::Launch)), Debian's
//! qemu-ga beside it ([`QemuGa`]), and the shape of a reply ([`shape`]) for the
//! differential tests that compare the two.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::{json, Map, Value};

use crate::{wait_listening, RawConn};

/// Debian's qemu-ga (package qemu-guest-agent, 10 from bookworm-backports, which
/// `scripts/test` installs).
pub const QEMU_GA: &str = "/usr/sbin/qemu-ga";

/// Sends `execute` with `args` (`null`: no `arguments` member) in the qemu-ga dialect
/// and returns the reply.
pub fn qga_call(c: &mut RawConn, execute: &str, args: Value) -> Value {
    let req = match args {
        Value::Null => json!({"execute": execute}),
        args => json!({"execute": execute, "arguments": args}),
    };
    c.request(req)
}

/// The `return` of a qemu-ga dialect call that must succeed.
pub fn qga_ok(c: &mut RawConn, execute: &str, args: Value) -> Value {
    let reply = qga_call(c, execute, args);
    match reply.get("return") {
        Some(v) => v.clone(),
        None => panic!("{execute}: expected success, got {reply}"),
    }
}

/// The `(class, desc)` of a qemu-ga dialect call that must fail.
pub fn qga_fails(c: &mut RawConn, execute: &str, args: Value) -> (String, String) {
    let reply = qga_call(c, execute, args);
    qga_err(&reply)
}

/// The `(class, desc)` of an error reply of the qemu-ga dialect.
pub fn qga_err(reply: &Value) -> (String, String) {
    let e = reply
        .get("error")
        .unwrap_or_else(|| panic!("expected an error reply, got {reply}"));
    (
        e["class"].as_str().expect("class").to_string(),
        e["desc"].as_str().expect("desc").to_string(),
    )
}

/// Debian's qemu-ga on a unix-listen socket in a temporary directory (its state and pid
/// file there too), killed on drop.
#[derive(Debug)]
pub struct QemuGa {
    /// The process.
    pub child: Child,
    /// The temporary directory.
    pub dir: tempfile::TempDir,
    /// The socket it listens on.
    pub sock: PathBuf,
}

impl QemuGa {
    /// Whether qemu-ga is installed (`scripts/test` installs it; a test that compares
    /// against it fails without it rather than passing silently).
    pub fn installed() -> bool {
        Path::new(QEMU_GA).exists()
    }

    /// Starts qemu-ga with `args` beside `-m unix-listen -p DIR/qga.sock -t DIR -f
    /// DIR/qga.pid`, in the given wrapper command (`unshare -n`, or nothing).
    pub fn start(wrapper: &[&str], args: &[&str]) -> Self {
        assert!(
            Self::installed(),
            "{QEMU_GA} is missing: scripts/test installs qemu-guest-agent (bookworm-backports)"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = dir.path().join("qga.sock");
        let mut cmd = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(QEMU_GA);
                c
            }
            None => Command::new(QEMU_GA),
        };
        let child = cmd
            .args(["-m", "unix-listen", "-p"])
            .arg(&sock)
            .arg("-t")
            .arg(dir.path())
            .arg("-f")
            .arg(dir.path().join("qga.pid"))
            .args(args)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn qemu-ga");
        let qga = QemuGa { child, dir, sock };
        wait_listening(&qga.sock);
        qga
    }

    /// A raw connection.
    pub fn raw(&self) -> RawConn {
        RawConn::connect(&self.sock)
    }
}

impl Drop for QemuGa {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The shape of a JSON value: its structure and types with the values left out, so
/// two agents' replies about the same machine compare equal when their fields and
/// types are the same (`{"count": "int", "buf-b64": "string", "eof": "bool"}`).
/// Integers and floats are told apart, as QAPI tells `int` from `number`; an array's
/// shape is the union of its elements' shapes (`[]` when empty).
pub fn shape(v: &Value) -> Value {
    match v {
        Value::Null => json!("null"),
        Value::Bool(_) => json!("bool"),
        Value::Number(n) if n.is_f64() => json!("number"),
        Value::Number(_) => json!("int"),
        Value::String(_) => json!("string"),
        Value::Array(items) => {
            let mut merged: Option<Value> = None;
            for item in items {
                let s = shape(item);
                merged = Some(match merged {
                    None => s,
                    Some(m) => merge(m, s),
                });
            }
            Value::Array(merged.into_iter().collect())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), shape(v)))
                .collect::<Map<_, _>>(),
        ),
    }
}

/// Two shapes of array elements as one: objects get every key either has.
fn merge(a: Value, b: Value) -> Value {
    match (a, b) {
        (Value::Object(mut a), Value::Object(b)) => {
            for (k, v) in b {
                let merged = match a.remove(&k) {
                    Some(old) => merge(old, v),
                    None => v,
                };
                a.insert(k, merged);
            }
            Value::Object(a)
        }
        (Value::Array(a), Value::Array(b)) => {
            let all: Vec<Value> = a.into_iter().chain(b).collect();
            let mut merged: Option<Value> = None;
            for s in all {
                merged = Some(match merged {
                    None => s,
                    Some(m) => merge(m, s),
                });
            }
            Value::Array(merged.into_iter().collect())
        }
        // "int" and "number" in one array: a number.
        (a, b) if a == b => a,
        (a, b) if a == "int" && b == "number" || a == "number" && b == "int" => json!("number"),
        (a, b) => json!(format!("{}|{}", a.as_str().unwrap_or("?"), b.as_str().unwrap_or("?"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let v = json!({"a": [{"x": 1}, {"x": 2, "y": "s"}], "b": 1.5, "c": true, "d": []});
        assert_eq!(
            shape(&v),
            json!({"a": [{"x": "int", "y": "string"}], "b": "number", "c": "bool", "d": []})
        );
    }
}
