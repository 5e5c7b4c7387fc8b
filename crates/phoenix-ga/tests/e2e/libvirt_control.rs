//! libvirt driving the control commands of our agent: `virsh domtime` (read, `--time`,
//! `--now`, `--sync`) and `virsh guestvcpus` on the shared libvirt domain, checked in
//! the guest's `date`, RTC and sysfs; `virsh shutdown --mode agent` and `virsh reboot
//! --mode agent`, each on a domain of its own.

use std::sync::MutexGuard;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use phoenix_client::Report;
use phoenix_e2e::{Guest, GuestOpts};

use crate::control::number;
use crate::libvirt::{dom, our_guest, virsh_ok};

/// The libvirt domain shared with tests/e2e/libvirt.rs, or `None` when libvirt tests
/// are skipped or qemu-ga serves libvirt's port (these tests are about our agent).
fn guest() -> Option<MutexGuard<'static, Guest>> {
    our_guest()
}

/// A libvirt domain of its own, for a power request.
fn own_guest(reboot: bool) -> Option<Guest> {
    if phoenix_e2e::skip_libvirt() {
        return None;
    }
    let mut opts = GuestOpts::new(env!("CARGO_BIN_EXE_phoenix-ga"));
    opts.scratch_mib = 32;
    opts.reboot = reboot;
    Some(Guest::boot_libvirt(opts).unwrap_or_else(|e| panic!("{}", Report(&e))))
}

fn host_now() -> i64 {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(d.as_secs()).unwrap()
}

/// The guest's clock and RTC, in seconds since the epoch.
fn clock_and_rtc(g: &Guest) -> (i64, i64) {
    (
        number(g, "date +%s"),
        number(g, "cat /sys/class/rtc/rtc0/since_epoch"),
    )
}

/// `virsh domtime DOM`: `Time: SECONDS`.
fn domtime(g: &Guest) -> i64 {
    let out = virsh_ok(g, &["domtime", dom(g)]);
    out.trim()
        .strip_prefix("Time:")
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("virsh domtime: {out:?}"))
}

/// Moves the guest's clock (not its RTC) to 2020-09-13, with the guest's own `date`.
fn move_clock_away(g: &Guest) {
    g.sh_ok("date -u -s '2020-09-13 12:26:40' >/dev/null");
    let moved = number(g, "date +%s");
    assert!(
        moved < 1_700_000_000,
        "date -s did not move the clock: {moved}"
    );
}

/// Puts the domain's clock and RTC back to the host's time when dropped.
struct RestoreClock<'a>(&'a Guest);

impl Drop for RestoreClock<'_> {
    fn drop(&mut self) {
        let _ = self.0.virsh(&["domtime", dom(self.0), "--now"]);
    }
}

#[test]
fn virsh_domtime_reads_sets_and_syncs_the_guest_clock() {
    let Some(g) = guest() else { return };
    let _restore = RestoreClock(&g);
    // --time: the clock, then the RTC; `domtime` reads it back.
    let at = 2_000_000_000;
    virsh_ok(&g, &["domtime", dom(&g), "--time", &at.to_string()]);
    let (clock, rtc) = clock_and_rtc(&g);
    assert!(
        (at..at + 120).contains(&clock),
        "date +%s {clock}, set {at}"
    );
    assert!((at - 1..at + 120).contains(&rtc), "RTC {rtc}, set {at}");
    let read = domtime(&g);
    assert!(
        (at..at + 120).contains(&read),
        "virsh domtime {read}, set {at}"
    );

    // --now: the host's time, into the clock and the RTC.
    move_clock_away(&g);
    virsh_ok(&g, &["domtime", dom(&g), "--now"]);
    let now = host_now();
    let (clock, rtc) = clock_and_rtc(&g);
    assert!(
        (clock - now).abs() < 120,
        "--now: clock {clock}, host {now}"
    );
    assert!((rtc - now).abs() < 120, "--now: RTC {rtc}, host {now}");
    assert!((domtime(&g) - now).abs() < 120);

    // --sync: the clock from the RTC (which still keeps the host's time).
    move_clock_away(&g);
    virsh_ok(&g, &["domtime", dom(&g), "--sync"]);
    let now = host_now();
    let (clock, rtc) = clock_and_rtc(&g);
    assert!(
        (clock - now).abs() < 120,
        "--sync: clock {clock}, host {now}"
    );
    assert!((clock - rtc).abs() <= 2, "--sync: clock {clock}, RTC {rtc}");
}

/// `virsh guestvcpus DOM`'s `key: value` lines.
fn guestvcpus(g: &Guest) -> Vec<(String, String)> {
    virsh_ok(g, &["guestvcpus", dom(g)])
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn field(rows: &[(String, String)], key: &str) -> String {
    rows.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("no {key} in {rows:?}"))
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

#[test]
fn virsh_guestvcpus_disables_and_enables_cpu1() {
    let Some(g) = guest() else { return };
    let _online = Cpu1Online(&g);
    let sysfs = || g.sh_ok("cat /sys/devices/system/cpu/cpu1/online");
    let rows = guestvcpus(&g);
    assert_eq!(field(&rows, "vcpus"), "0-1", "{rows:?}");
    assert_eq!(field(&rows, "online"), "0-1", "{rows:?}");
    assert_eq!(field(&rows, "offlinable"), "1", "{rows:?}");

    virsh_ok(&g, &["guestvcpus", dom(&g), "--cpulist", "1", "--disable"]);
    assert_eq!(sysfs(), "0\n");
    let rows = guestvcpus(&g);
    assert_eq!(field(&rows, "online"), "0", "{rows:?}");

    virsh_ok(&g, &["guestvcpus", dom(&g), "--cpulist", "1", "--enable"]);
    assert_eq!(sysfs(), "1\n");
    assert_eq!(field(&guestvcpus(&g), "online"), "0-1");
}

/// Waits up to 120 s until the console shows `line` `count` times.
fn wait_console(g: &Guest, line: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while g.console().matches(line).count() < count {
        assert!(
            Instant::now() < deadline,
            "the console does not show {line:?} {count} times\n{}",
            g.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn virsh_shutdown_mode_agent_powers_the_domain_off() {
    let Some(g) = own_guest(false) else { return };
    virsh_ok(&g, &["shutdown", "--mode", "agent", dom(&g)]);
    assert!(
        g.wait_exit(Duration::from_secs(120)),
        "the domain still runs\n{}",
        g.diagnostics()
    );
    assert!(
        g.console().contains("phoenix-e2e: poweroff"),
        "{}",
        g.diagnostics()
    );
    // libvirt forgets the transient domain once it has seen QEMU go.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let listed = virsh_ok(&g, &["list", "--all", "--name"]);
        if !listed.lines().any(|l| l.trim() == dom(&g)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the transient domain is still listed: {listed}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn virsh_reboot_mode_agent_reboots_the_guest() {
    let Some(g) = own_guest(true) else { return };
    let boot_id = g.sh_ok("cat /proc/sys/kernel/random/boot_id");
    virsh_ok(&g, &["reboot", "--mode", "agent", dom(&g)]);
    wait_console(&g, "phoenix-e2e: reboot", 1);
    wait_console(&g, "phoenix-e2e: ready", 2);
    assert_eq!(virsh_ok(&g, &["domstate", dom(&g)]).trim(), "running");
    assert_ne!(
        g.sh_ok("cat /proc/sys/kernel/random/boot_id"),
        boot_id,
        "the same boot"
    );
    // libvirt reaches the agent of the new boot.
    g.wait_libvirt_agent(Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("{}\n{}", Report(&e), g.diagnostics()));
    let rows = guestvcpus(&g);
    assert_eq!(field(&rows, "online"), "0-1", "{rows:?}");
}
