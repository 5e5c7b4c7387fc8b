//! The control commands (`guest-set-time`, `guest-shutdown`, `guest-suspend-*`,
//! `guest-set-vcpus`, `guest-set-memory-blocks`) on this machine: argument errors and
//! refusals only, in both dialects, and the same requests to Debian's qemu-ga for their
//! error classes and replies.
//!
//! This machine's clock, RTC, power and CPUs are never changed: every request goes
//! through [`assert_harmless`], which refuses (panics on) anything an agent could act
//! on: a request must be refused while its arguments are decoded, or name a time the
//! RTC cannot hold, a shutdown mode that does not exist, or CPUs and memory blocks this
//! machine does not have. (The agents also run without CAP_SYS_TIME and CAP_SYS_BOOT;
//! that is not what keeps the machine safe, the requests are.) What the commands do is
//! tested in the TCG guest (tests/e2e/control.rs).

use std::path::Path;

use phoenix_testkit::{fails, qga_call, qga_err, Launch, QemuGa, RawConn};
use serde_json::{json, Value};

const AGENT: &str = env!("CARGO_BIN_EXE_phoenix-ga");

const NS: i64 = 1_000_000_000;
/// 2070-01-01 in ns: the first time the RTC cannot hold.
const END_NS: i64 = 3_155_760_000 * NS;

/// Panics unless `args` of `command` is a request no agent can act on, even one that
/// ignored the members it does not know: a time the RTC cannot hold, a shutdown mode
/// that does not exist, CPUs and memory blocks this machine does not have, or a value
/// of a type no agent can take. The suspend commands have no such argument: they are
/// sent only with an unknown member, and to agents whose /sys/power is an empty
/// read-only tmpfs (see [`MASKED`]).
fn assert_harmless(command: &str, args: &Value) {
    let harmless = match command {
        _ if !args.is_object() => true,
        // An absent or null time sets the clock from the RTC; null is an absent mode.
        "guest-set-time" => match args.get("time") {
            None | Some(Value::Null) => false,
            Some(Value::Number(n)) => n.as_i64().is_none_or(|t| !(0..END_NS).contains(&t)),
            Some(_) => true,
        },
        "guest-shutdown" => match args.get("mode") {
            None | Some(Value::Null) => false,
            Some(Value::String(m)) => !["powerdown", "halt", "reboot"].contains(&m.as_str()),
            Some(_) => true,
        },
        "guest-suspend-ram" | "guest-suspend-disk" | "guest-suspend-hybrid" => {
            args.as_object().is_some_and(|o| !o.is_empty())
        }
        "guest-set-vcpus" => {
            list_harmless(args, "vcpus", "logical-id", "/sys/devices/system/cpu/cpu")
        }
        "guest-set-memory-blocks" => list_harmless(
            args,
            "mem-blks",
            "phys-index",
            "/sys/devices/system/memory/memory",
        ),
        _ => false,
    };
    assert!(
        harmless,
        "{command} {args} could change this machine: not sent"
    );
}

/// A list is harmless when it cannot be decoded, or when each entry cannot be (no
/// boolean `online`, an id that is no integer) or names a processor or block this
/// machine does not have (`prefix` + id missing).
fn list_harmless(args: &Value, member: &str, id: &str, prefix: &str) -> bool {
    let Some(list) = args.get(member).and_then(Value::as_array) else {
        return args.get(member).is_some()
            || args.as_object().is_some_and(|o| !o.contains_key(member));
    };
    !list.is_empty()
        && list.iter().all(|item| {
            let online_ok = item.get("online").is_some_and(Value::is_boolean);
            match item.get(id).and_then(Value::as_i64) {
                _ if !online_ok => true,
                Some(n) if n < 0 => true,
                Some(n) => !Path::new(&format!("{prefix}{n}")).exists(),
                None => true,
            }
        })
}

/// The agents' wrapper: a mount namespace of their own where /sys/power is an empty
/// read-only tmpfs, and no CAP_SYS_TIME or CAP_SYS_BOOT. Not what keeps the machine
/// safe (the requests are), a second fence.
const MASKED: &[&str] = &[
    "unshare",
    "-m",
    "--propagation",
    "private",
    "sh",
    "-c",
    "mount -t tmpfs -o ro,size=4k phoenix-masked /sys/power && exec \"$@\"",
    "sh",
    "setpriv",
    "--bounding-set=-sys_time,-sys_boot",
    "--",
];

fn ours_qga() -> phoenix_testkit::TestAgent {
    Launch::new(AGENT)
        .wrapper(MASKED)
        .start(&["--dialect", "qga"])
}

fn ours_phoenix() -> phoenix_testkit::TestAgent {
    Launch::new(AGENT).wrapper(MASKED).start(&[])
}

/// A qemu-ga dialect call, checked harmless first.
fn qga(c: &mut RawConn, command: &str, args: Value) -> Value {
    assert_harmless(command, &args);
    qga_call(c, command, args)
}

/// A Phoenix dialect call that must fail, checked harmless first: `(message, code)`.
fn phoenix_fails(c: &mut RawConn, command: &str, args: Value) -> (String, i64) {
    assert_harmless(command, &args);
    fails(c, command, args)
}

/// The argument errors, worded as QAPI words them, with what qemu-ga 10 says.
const ARG_ERRORS: &[(&str, &str, &str)] = &[
    (
        "guest-set-time",
        r#"{"time":"x"}"#,
        "Invalid parameter type for 'time', expected: integer",
    ),
    (
        "guest-set-time",
        r#"{"time":1.5}"#,
        "Invalid parameter type for 'time', expected: integer",
    ),
    (
        "guest-set-time",
        r#"{"time":-1,"x":1}"#,
        "Parameter 'x' is unexpected",
    ),
    (
        "guest-shutdown",
        r#"{"mode":1}"#,
        "Invalid parameter type for 'mode', expected: string",
    ),
    (
        "guest-shutdown",
        r#"{"mode":"nope","x":1}"#,
        "Parameter 'x' is unexpected",
    ),
    (
        "guest-suspend-ram",
        r#"{"x":1}"#,
        "Parameter 'x' is unexpected",
    ),
    (
        "guest-suspend-disk",
        r#"{"x":1}"#,
        "Parameter 'x' is unexpected",
    ),
    (
        "guest-suspend-hybrid",
        r#"{"x":1}"#,
        "Parameter 'x' is unexpected",
    ),
    ("guest-set-vcpus", r#"{}"#, "Parameter 'vcpus' is missing"),
    (
        "guest-set-vcpus",
        r#"{"vcpus":{}}"#,
        "Invalid parameter type for 'vcpus', expected: array",
    ),
    (
        "guest-set-vcpus",
        r#"{"vcpus":[{"logical-id":"1","online":true}]}"#,
        "Invalid parameter type for 'vcpus[0].logical-id', expected: integer",
    ),
    (
        "guest-set-vcpus",
        r#"{"vcpus":[{"logical-id":99999}]}"#,
        "Parameter 'vcpus[0].online' is missing",
    ),
    (
        "guest-set-vcpus",
        r#"{"vcpus":[{"logical-id":99999,"online":true,"x":0}]}"#,
        "Parameter 'vcpus[0].x' is unexpected",
    ),
    (
        "guest-set-vcpus",
        r#"{"vcpus":[{"logical-id":99999,"online":"yes"}]}"#,
        "Invalid parameter type for 'vcpus[0].online', expected: boolean",
    ),
    (
        "guest-set-memory-blocks",
        r#"{}"#,
        "Parameter 'mem-blks' is missing",
    ),
    (
        "guest-set-memory-blocks",
        r#"{"mem-blks":[{"phys-index":9999999,"online":true,"x":0}]}"#,
        "Parameter 'mem-blks[0].x' is unexpected",
    ),
    (
        "guest-set-memory-blocks",
        r#"{"mem-blks":[{"phys-index":"1","online":true}]}"#,
        "Parameter 'mem-blks[0].phys-index' expects uint64",
    ),
];

#[test]
fn the_guard_refuses_what_could_change_this_machine() {
    let changing = [
        ("guest-set-time", json!({})),
        ("guest-set-time", json!({"time": 1_700_000_000_i64 * NS})),
        ("guest-set-time", json!({"time": 0})),
        ("guest-set-time", json!({"time": null})),
        ("guest-set-time", json!({"x": 1})),
        (
            "guest-set-vcpus",
            json!({"vcpus": [{"logical-id": 0, "online": true, "x": 1}]}),
        ),
        ("guest-shutdown", json!({})),
        ("guest-shutdown", json!({"mode": "halt"})),
        ("guest-shutdown", json!({"mode": null})),
        ("guest-suspend-ram", json!({})),
        (
            "guest-set-vcpus",
            json!({"vcpus": [{"logical-id": 0, "online": true}]}),
        ),
        ("guest-set-vcpus", json!({"vcpus": []})),
        (
            "guest-set-memory-blocks",
            json!({"mem-blks": [{"phys-index": 0, "online": true}]}),
        ),
        ("guest-exec", json!({"path": "/bin/true"})),
    ];
    for (command, args) in changing {
        let refused = std::panic::catch_unwind(|| assert_harmless(command, &args)).is_err();
        assert!(refused, "{command} {args} passed the guard");
    }
}

#[test]
fn argument_errors_in_the_qemu_ga_dialect() {
    let agent = ours_qga();
    let mut c = agent.raw();
    for (command, args, desc) in ARG_ERRORS {
        let reply = qga(&mut c, command, serde_json::from_str(args).unwrap());
        assert_eq!(
            qga_err(&reply),
            ("GenericError".to_string(), desc.to_string()),
            "{command} {args}"
        );
    }
}

#[test]
fn argument_errors_in_the_phoenix_dialect() {
    let agent = ours_phoenix();
    let mut c = agent.raw();
    for (command, args, _) in ARG_ERRORS {
        let (message, code) = phoenix_fails(&mut c, command, serde_json::from_str(args).unwrap());
        assert_eq!(code, -1, "{command} {args}: {message}");
        assert!(
            message.starts_with(&format!("{command}: invalid arguments: ")),
            "{command} {args}: {message}"
        );
    }
    // The commands are listed in the Phoenix dialect, with their readers.
    let names = agent.client().commands().unwrap();
    for name in [
        "guest-set-time",
        "guest-shutdown",
        "guest-suspend-ram",
        "guest-suspend-disk",
        "guest-suspend-hybrid",
        "guest-set-vcpus",
        "guest-set-memory-blocks",
        "guest-get-time",
        "guest-get-vcpus",
        "guest-get-memory-blocks",
    ] {
        assert!(names.iter().any(|n| n == name), "{name} not in {names:?}");
    }
}

#[test]
fn refusals_in_both_dialects() {
    let q = ours_qga();
    let p = ours_phoenix();
    let (mut qc, mut pc) = (q.raw(), p.raw());
    // Times the RTC cannot hold: EINVAL, nothing set.
    for time in [-NS, -1, END_NS, i64::MAX] {
        let args = json!({ "time": time });
        let (class, desc) = qga_err(&qga(&mut qc, "guest-set-time", args.clone()));
        assert_eq!(class, "GenericError");
        assert!(
            desc.starts_with(&format!("invalid time {time}: outside 1970-01-01")),
            "{desc}"
        );
        let (message, code) = phoenix_fails(&mut pc, "guest-set-time", args);
        assert_eq!((message, code), (desc, i64::from(libc::EINVAL)));
    }
    // A mode that does not exist.
    let (_, desc) = qga_err(&qga(&mut qc, "guest-shutdown", json!({"mode": "poweroff"})));
    assert_eq!(
        desc,
        "mode \"poweroff\" is invalid (valid values are: halt|powerdown|reboot)"
    );
    let (message, code) = phoenix_fails(&mut pc, "guest-shutdown", json!({"mode": "poweroff"}));
    assert_eq!(
        (message.as_str(), code),
        ("guest-shutdown: invalid arguments: mode \"poweroff\" is invalid (valid values are: halt|powerdown|reboot)", -1)
    );
    // A negative CPU number: an argument error, before anything is switched.
    let args = json!({"vcpus": [{"logical-id": -1, "online": true}]});
    let (_, desc) = qga_err(&qga(&mut qc, "guest-set-vcpus", args.clone()));
    assert_eq!(
        desc,
        "vcpus[0].logical-id -1 is not a CPU number (0 or more)"
    );
    assert_eq!(phoenix_fails(&mut pc, "guest-set-vcpus", args).1, -1);
    // A CPU this machine does not have: ENOENT, with the path.
    let args = json!({"vcpus": [{"logical-id": 99_999, "online": false}]});
    let (_, desc) = qga_err(&qga(&mut qc, "guest-set-vcpus", args.clone()));
    assert_eq!(
        desc,
        "no logical processor 99999: /sys/devices/system/cpu/cpu99999: No such file or directory"
    );
    let (message, code) = phoenix_fails(&mut pc, "guest-set-vcpus", args);
    assert_eq!((message, code), (desc, i64::from(libc::ENOENT)));
    // A memory block this machine does not have: a result, not an error.
    let args = json!({"mem-blks": [{"phys-index": 9_999_999, "online": true}]});
    let want = if Path::new("/sys/devices/system/memory").exists() {
        json!([{"phys-index": 9_999_999, "response": "not-found", "error-code": 2}])
    } else {
        json!([{"phys-index": 9_999_999, "response": "operation-not-supported", "error-code": 2}])
    };
    assert_eq!(
        qga(&mut qc, "guest-set-memory-blocks", args.clone())["return"],
        want
    );
    assert_harmless("guest-set-memory-blocks", &args);
    assert_eq!(
        phoenix_testkit::ok(&mut pc, "guest-set-memory-blocks", args),
        want
    );
}

/// The same requests to Debian's qemu-ga 10: the same classes, and for argument errors
/// the same words. Where the words differ (the refusals are ours), the difference is
/// deliberate and documented in docs/commands/control.md.
#[test]
fn same_classes_as_qemu_ga() {
    let theirs = QemuGa::start(MASKED, &[]);
    let ours = ours_qga();
    let (mut t, mut o) = (theirs.raw(), ours.raw());
    for (command, args, desc) in ARG_ERRORS {
        let args: Value = serde_json::from_str(args).unwrap();
        let theirs = qga_err(&qga(&mut t, command, args.clone()));
        let mine = qga_err(&qga(&mut o, command, args.clone()));
        assert_eq!(
            theirs,
            ("GenericError".to_string(), desc.to_string()),
            "qemu-ga: {command} {args}"
        );
        assert_eq!(mine, theirs, "{command} {args}");
    }
    let refusals = [
        (
            "guest-set-time",
            json!({"time": END_NS + 5 * NS}),
            "nvalid time",
        ),
        (
            "guest-set-time",
            json!({"time": -1_000_000 * NS}),
            "nvalid time",
        ),
        ("guest-shutdown", json!({"mode": "nope"}), "mode "),
        (
            "guest-set-vcpus",
            json!({"vcpus": [{"logical-id": 99_999, "online": false}]}),
            "",
        ),
        (
            "guest-set-vcpus",
            json!({"vcpus": [{"logical-id": -1, "online": true}]}),
            "",
        ),
    ];
    for (command, args, both_say) in refusals {
        let (tc, td) = qga_err(&qga(&mut t, command, args.clone()));
        let (oc, od) = qga_err(&qga(&mut o, command, args.clone()));
        assert_eq!(tc, oc, "{command} {args}: qemu-ga said {td}, we said {od}");
        assert!(
            td.contains(both_say) && od.contains(both_say),
            "{command} {args}: {td} / {od}"
        );
    }
    // A block neither has: the same result, value for value.
    let args = json!({"mem-blks": [{"phys-index": 9_999_999, "online": true}]});
    let theirs = qga(&mut t, "guest-set-memory-blocks", args.clone());
    assert_eq!(qga(&mut o, "guest-set-memory-blocks", args), theirs);
    // Both list the commands, without a success response for shutdown and suspend.
    let listed = |c: &mut RawConn| -> Vec<(String, bool)> {
        let info = qga_call(c, "guest-info", Value::Null);
        let mut v: Vec<(String, bool)> = info["return"]["supported_commands"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| {
                let n = c["name"].as_str().unwrap();
                n.starts_with("guest-set-") && n != "guest-set-user-password"
                    || n.starts_with("guest-suspend-")
                    || n == "guest-shutdown"
            })
            .map(|c| {
                (
                    c["name"].as_str().unwrap().to_string(),
                    c["success-response"].as_bool().unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(listed(&mut o), listed(&mut t));
    assert_eq!(listed(&mut o).len(), 7);
}
