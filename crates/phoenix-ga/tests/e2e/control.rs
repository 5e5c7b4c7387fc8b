//! The control commands in a real guest, through both ports (the Phoenix one and
//! qemu-ga's), each asserted on what the guest shows afterwards: `date`, the RTC in
//! sysfs, the CPUs' and memory blocks' sysfs switches, the console and QEMU itself for
//! the power requests. The shared guest gets the clock (put back at the end), the CPU
//! and memory switches (put back) and the suspend refusals; every power request boots
//! a guest of its own.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use phoenix_client::api::control::{PowerMode, SuspendMode};
use phoenix_client::{Client, ClientError, Dialect, Options, Report};
use phoenix_e2e::{Guest, GuestOpts, SCRATCH};
use phoenix_proto::types::control::{
    GuestLogicalProcessorArg, GuestMemoryBlockArg, GuestMemoryBlockResponseType,
};

use crate::guest;
use crate::qga::QGA_PORT;

/// A client on qemu-ga's port of `g`.
fn qga_client(g: &Guest) -> Client {
    let opts = Options {
        dialect: Some(Dialect::Qga),
        timeout: Some(Duration::from_secs(60)),
        ..Options::default()
    };
    Client::connect_with(g.port_socket(QGA_PORT), opts)
        .unwrap_or_else(|e| panic!("connect to {QGA_PORT}: {}\n{}", Report(&e), g.diagnostics()))
}

/// Both clients of `g`, named for messages.
fn both(g: &Guest) -> [(&'static str, Client); 2] {
    [("phoenix", g.client()), ("qga", qga_client(g))]
}

fn host_now_ns() -> i64 {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(d.as_nanos()).unwrap()
}

/// A number the guest printed.
pub(crate) fn number(g: &Guest, script: &str) -> i64 {
    let out = g.sh_ok(script);
    out.trim()
        .parse()
        .unwrap_or_else(|e| panic!("{script}: {out:?}: {e}"))
}

/// Puts the shared guest's clock and RTC back to the host's time when dropped.
struct RestoreClock<'a>(&'a Guest);

impl Drop for RestoreClock<'_> {
    fn drop(&mut self) {
        if let Ok(c) = Client::connect(self.0.host_socket()) {
            let _ = c.set_time(Some(host_now_ns()));
        }
    }
}

#[test]
fn set_time_sets_the_clock_and_the_rtc_and_reads_the_rtc_back() {
    let Some(g) = guest() else { return };
    let _restore = RestoreClock(&g);
    // 2033-05-18 and 2036-07-18: far from the host's time, so nothing else explains them.
    for ((dialect, c), at) in both(&g).into_iter().zip([2_000_000_000_i64, 2_100_000_000]) {
        // With a time: the clock, then the RTC.
        c.set_time(Some(at * 1_000_000_000))
            .unwrap_or_else(|e| panic!("{dialect}: {}", Report(&e)));
        let clock = number(&g, "date +%s");
        assert!(
            (at..at + 120).contains(&clock),
            "{dialect}: date +%s {clock}, set {at}"
        );
        let rtc = number(&g, "cat /sys/class/rtc/rtc0/since_epoch");
        assert!(
            (at - 1..at + 120).contains(&rtc),
            "{dialect}: RTC {rtc}, set {at}"
        );
        let read = c.guest_time().unwrap() / 1_000_000_000;
        assert!(
            (at..at + 120).contains(&read),
            "{dialect}: guest-get-time {read}, set {at}"
        );

        // Without: the clock from the RTC. The guest's own date moves the clock alone.
        g.sh_ok("date -u -s '2020-09-13 12:26:40' >/dev/null");
        let moved = number(&g, "date +%s");
        assert!(
            moved < 1_700_000_000,
            "{dialect}: date -s did not move the clock: {moved}"
        );
        c.set_time(None)
            .unwrap_or_else(|e| panic!("{dialect}: {}", Report(&e)));
        let clock = number(&g, "date +%s");
        let rtc = number(&g, "cat /sys/class/rtc/rtc0/since_epoch");
        assert!(
            (at..at + 120).contains(&clock),
            "{dialect}: date +%s {clock} after the RTC's {rtc}"
        );
        assert!(
            (clock - rtc).abs() <= 2,
            "{dialect}: clock {clock}, RTC {rtc}"
        );
    }
    // Back to the host's time, through the command itself.
    let c = g.client();
    let now = host_now_ns();
    c.set_time(Some(now)).unwrap();
    let clock = number(&g, "date +%s");
    assert!((clock - now / 1_000_000_000).abs() < 120, "clock {clock}");
}

/// Puts cpu1 back online when dropped.
struct Cpu1Online<'a>(&'a Guest);

impl Drop for Cpu1Online<'_> {
    fn drop(&mut self) {
        let _ = self.0.try_run(
            "echo 1 > /sys/devices/system/cpu/cpu1/online",
            Duration::from_secs(60),
        );
    }
}

fn cpu1(online: bool) -> [GuestLogicalProcessorArg; 1] {
    [GuestLogicalProcessorArg {
        logical_id: 1,
        online,
        can_offline: None,
    }]
}

#[test]
fn set_vcpus_offlines_and_onlines_cpu1_in_both_dialects() {
    let Some(g) = guest() else { return };
    let _online = Cpu1Online(&g);
    let sysfs = || g.sh_ok("cat /sys/devices/system/cpu/cpu1/online");
    for (dialect, c) in both(&g) {
        let cpus = c.vcpus().unwrap();
        assert_eq!(cpus.len(), 2, "{dialect}: {cpus:?}");
        assert!(cpus.iter().all(|p| p.online), "{dialect}: {cpus:?}");
        let one = cpus.iter().find(|p| p.logical_id == 1).unwrap();
        assert_eq!(one.can_offline, Some(true), "{dialect}: {one:?}");

        assert_eq!(c.set_vcpus(&cpu1(false)).unwrap(), 1, "{dialect}");
        assert_eq!(sysfs(), "0\n", "{dialect}");
        let cpus = c.vcpus().unwrap();
        let one = cpus.iter().find(|p| p.logical_id == 1).unwrap();
        assert!(!one.online, "{dialect}: {cpus:?}");
        // Already offline: nothing to do, still counted, as qemu-ga counts it.
        assert_eq!(c.set_vcpus(&cpu1(false)).unwrap(), 1, "{dialect}");

        assert_eq!(c.set_vcpus(&cpu1(true)).unwrap(), 1, "{dialect}");
        assert_eq!(sysfs(), "1\n", "{dialect}");
        assert!(c.vcpus().unwrap().iter().all(|p| p.online), "{dialect}");

        // cpu0 cannot go offline; a CPU that does not exist is refused.
        let cpu0 = [GuestLogicalProcessorArg {
            logical_id: 0,
            online: false,
            can_offline: None,
        }];
        match c.set_vcpus(&cpu0) {
            Err(ClientError::Agent(_)) => {}
            other => panic!("{dialect}: cpu0 offline: {other:?}"),
        }
        let cpu9 = [GuestLogicalProcessorArg {
            logical_id: 9,
            online: false,
            can_offline: None,
        }];
        match c.set_vcpus(&cpu9) {
            Err(ClientError::Agent(e)) => {
                assert!(e.message.contains("cpu9"), "{dialect}: {e:?}")
            }
            other => panic!("{dialect}: cpu9 offline: {other:?}"),
        }
        assert_eq!(
            g.sh_ok("cat /sys/devices/system/cpu/cpu0/online 2>/dev/null || echo 1"),
            "1\n"
        );
    }
}

/// Puts every memory block back online when dropped.
struct MemoryOnline<'a>(&'a Guest);

impl Drop for MemoryOnline<'_> {
    fn drop(&mut self) {
        let _ = self.0.try_run(
            "for s in /sys/devices/system/memory/memory*/state; do \
             grep -q '^online' $s || echo online > $s; done; true",
            Duration::from_secs(60),
        );
    }
}

#[test]
fn memory_blocks_as_far_as_the_guest_can() {
    let Some(g) = guest() else { return };
    let _online = MemoryOnline(&g);
    let in_sysfs = g.sh_ok("ls /sys/devices/system/memory | grep -c '^memory' || true");
    for (dialect, c) in both(&g) {
        let blocks = c.memory_blocks().unwrap();
        assert_eq!(
            blocks.len().to_string(),
            in_sysfs.trim(),
            "{dialect}: {blocks:?}"
        );
        assert!(
            !blocks.is_empty(),
            "{dialect}: no memory blocks in the guest"
        );
        // Online what is online: a success each, nothing written.
        let asked: Vec<_> = blocks
            .iter()
            .map(|b| GuestMemoryBlockArg {
                phys_index: b.phys_index,
                online: true,
                can_offline: None,
            })
            .collect();
        let results = c.set_memory_blocks(&asked).unwrap();
        assert_eq!(results.len(), blocks.len(), "{dialect}");
        for (r, b) in results.iter().zip(&blocks) {
            assert_eq!(r.phys_index, b.phys_index, "{dialect}");
            assert_eq!(
                r.response,
                GuestMemoryBlockResponseType::Success,
                "{dialect}: {r:?}"
            );
            assert_eq!(r.error_code, None, "{dialect}: {r:?}");
        }
        // A block that does not exist.
        let missing = [GuestMemoryBlockArg {
            phys_index: 999_999,
            online: false,
            can_offline: None,
        }];
        let r = c.set_memory_blocks(&missing).unwrap();
        assert_eq!(
            r[0].response,
            GuestMemoryBlockResponseType::NotFound,
            "{dialect}: {r:?}"
        );
        assert_eq!(r[0].error_code, Some(2), "{dialect}: ENOENT {r:?}");

        // The last block that says it can go offline: offline and back, or the kernel's
        // refusal (pages it cannot move) with its errno; sysfs agrees either way.
        let Some(last) = blocks.iter().rev().find(|b| b.can_offline == Some(true)) else {
            continue;
        };
        let state = format!(
            "cat /sys/devices/system/memory/memory{}/state",
            last.phys_index
        );
        let off = [GuestMemoryBlockArg {
            phys_index: last.phys_index,
            online: false,
            can_offline: None,
        }];
        let r = c.set_memory_blocks(&off).unwrap();
        match r[0].response {
            GuestMemoryBlockResponseType::Success => {
                assert_eq!(g.sh_ok(&state), "offline\n", "{dialect}");
                let on = [GuestMemoryBlockArg {
                    online: true,
                    ..off[0]
                }];
                let r = c.set_memory_blocks(&on).unwrap();
                assert_eq!(
                    r[0].response,
                    GuestMemoryBlockResponseType::Success,
                    "{dialect}: {r:?}"
                );
                assert_eq!(g.sh_ok(&state), "online\n", "{dialect}");
            }
            GuestMemoryBlockResponseType::OperationFailed => {
                assert!(r[0].error_code.is_some_and(|e| e > 0), "{dialect}: {r:?}");
                assert_eq!(g.sh_ok(&state), "online\n", "{dialect}");
            }
            _ => panic!("{dialect}: {r:?}"),
        }
    }
}

/// What the shared guest's kernel offers for a sleep, and whether it has swap.
fn power_state(g: &Guest) -> (String, bool) {
    let state = g.sh_ok("cat /sys/power/state 2>/dev/null || true");
    let swaps = g.sh_ok("tail -n +2 /proc/swaps");
    (state, !swaps.trim().is_empty())
}

#[test]
fn suspend_refuses_clearly_what_the_guest_cannot() {
    let Some(g) = guest() else { return };
    let (state, swap) = power_state(&g);
    assert!(!swap, "the e2e guest has no swap");
    for (dialect, c) in both(&g) {
        for mode in [SuspendMode::Disk, SuspendMode::Hybrid] {
            match c.suspend(mode) {
                Err(ClientError::Agent(e)) => {
                    let m = &e.message;
                    assert!(
                        m.contains("cannot hibernate")
                            && (m.contains("swap") || m.contains("/sys/power")),
                        "{dialect} {mode:?}: {e:?}"
                    );
                }
                other => panic!("{dialect} {mode:?}: expected a refusal, got {other:?}"),
            }
            assert_eq!(power_state(&g).0, state, "{dialect} {mode:?}");
        }
        if !state.split_whitespace().any(|w| w == "mem") {
            match c.suspend(SuspendMode::Ram) {
                Err(ClientError::Agent(e)) => {
                    assert!(
                        e.message.contains("cannot suspend to RAM"),
                        "{dialect}: {e:?}"
                    )
                }
                other => panic!("{dialect} ram: expected a refusal, got {other:?}"),
            }
        }
        // The guest is still there and the agent still answers.
        assert!(c.guest_time().is_ok(), "{dialect}");
    }
}

/// Boots a guest of its own for one power request.
fn own_guest(reboot: bool) -> Option<Guest> {
    if phoenix_e2e::skip() {
        return None;
    }
    let mut opts = GuestOpts::new(env!("CARGO_BIN_EXE_phoenix-ga"));
    opts.extra_ports.push(QGA_PORT.into());
    opts.scratch_mib = 32;
    opts.reboot = reboot;
    Some(Guest::boot(opts).unwrap_or_else(|e| panic!("{}", Report(&e))))
}

/// Waits up to 120 s until the console shows `line` `count` times; whether it did.
fn console_shows(g: &Guest, line: &str, count: usize) -> bool {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if g.console().matches(line).count() >= count {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

/// Suspend to RAM where the guest kernel offers it: in a guest of its own, woken by its
/// RTC's alarm, and the agent answers afterwards.
#[test]
fn suspend_ram_sleeps_and_the_rtc_alarm_wakes_the_guest() {
    let Some(g) = own_guest(false) else { return };
    let (state, _) = power_state(&g);
    if !state.split_whitespace().any(|w| w == "mem") {
        eprintln!(
            "the guest kernel offers no suspend to RAM ({state:?}): refusal checked elsewhere"
        );
        return;
    }
    g.sh_ok("echo 0 > /sys/class/rtc/rtc0/wakealarm; echo +10 > /sys/class/rtc/rtc0/wakealarm");
    let c = qga_client(&g);
    c.suspend(SuspendMode::Ram)
        .unwrap_or_else(|e| panic!("{}\n{}", Report(&e), g.diagnostics()));
    // The kernel counts each suspend it came back from; the agent logs that it went.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(out) = g.try_run(
            "cat /sys/power/suspend_stats/success",
            Duration::from_secs(30),
        ) {
            if out.stdout.trim() == "1" {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no suspend recorded\n{}",
            g.diagnostics()
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(g.agent_log().contains("guest-suspend"), "{}", g.agent_log());
    // The same connection, and a new one (the port takes one host at a time).
    c.guest_time().unwrap();
    drop(c);
    qga_client(&g).guest_time().unwrap();
}

/// `guest-shutdown` (powerdown, the default) with the scratch disk frozen: the agent
/// thaws first, the guest's init powers off, QEMU exits.
#[test]
fn shutdown_powers_down_after_a_thaw() {
    let Some(g) = own_guest(false) else { return };
    let c = g.client();
    c.fs_freeze(None).unwrap();
    // The guest's fsfreeze finds it frozen already (and so leaves it frozen).
    let frozen = g.sh(&format!(
        "fsfreeze --freeze {SCRATCH} 2>&1 && fsfreeze --unfreeze {SCRATCH}"
    ));
    assert!(frozen.0.contains("busy"), "not frozen: {frozen:?}");
    c.shutdown(PowerMode::Powerdown)
        .unwrap_or_else(|e| panic!("{}\n{}", Report(&e), g.diagnostics()));
    assert!(
        g.wait_exit(Duration::from_secs(120)),
        "QEMU still runs\n{}",
        g.diagnostics()
    );
    let console = g.console();
    assert!(console.contains("phoenix-e2e: poweroff"), "{console}");
    assert!(
        !console.contains("still frozen"),
        "the agent did not thaw: {console}"
    );
}

/// `guest-shutdown` halt through qemu-ga's port: the kernel halts, QEMU stays.
#[test]
fn shutdown_halts() {
    let Some(g) = own_guest(false) else { return };
    let c = qga_client(&g);
    c.shutdown(PowerMode::Halt)
        .unwrap_or_else(|e| panic!("{}\n{}", Report(&e), g.diagnostics()));
    assert!(console_shows(&g, "System halted", 1), "{}", g.diagnostics());
    assert!(
        g.console().contains("phoenix-e2e: halt"),
        "{}",
        g.diagnostics()
    );
    assert!(!g.wait_exit(Duration::from_secs(2)), "a halt powered off");
}

/// `guest-shutdown` reboot through qemu-ga's port: the guest boots again and its agent
/// answers; a wrong mode is refused first and changes nothing.
#[test]
fn shutdown_reboots_and_the_guest_comes_back() {
    let Some(g) = own_guest(true) else { return };
    let c = qga_client(&g);
    match c.call::<_, serde_json::Value>("guest-shutdown", &serde_json::json!({"mode": "restart"}))
    {
        Err(ClientError::Agent(e)) => assert!(e.message.contains("restart"), "{e:?}"),
        other => panic!("mode restart: {other:?}"),
    }
    let boot_id = g.sh_ok("cat /proc/sys/kernel/random/boot_id");
    c.shutdown(PowerMode::Reboot)
        .unwrap_or_else(|e| panic!("{}\n{}", Report(&e), g.diagnostics()));
    drop(c);
    assert!(
        console_shows(&g, "phoenix-e2e: reboot", 1),
        "{}",
        g.diagnostics()
    );
    assert!(
        console_shows(&g, "phoenix-e2e: ready", 2),
        "no second boot\n{}",
        g.diagnostics()
    );
    assert!(!g.wait_exit(Duration::ZERO), "QEMU exited on the reboot");
    let c = g.client();
    assert_eq!(c.ping().unwrap(), env!("CARGO_PKG_VERSION"));
    assert_ne!(
        g.sh_ok("cat /proc/sys/kernel/random/boot_id"),
        boot_id,
        "the same boot"
    );
}
