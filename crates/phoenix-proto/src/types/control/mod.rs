//! Control of the guest: the clock (`guest-set-time`), power (`guest-shutdown`,
//! `guest-suspend-ram`, `-disk`, `-hybrid`), logical processors (`guest-set-vcpus`)
//! and memory blocks (`guest-set-memory-blocks`).
//!
//! These are qemu-ga's commands with the names, arguments and replies of QEMU's
//! `qga/qapi-schema.json`; both dialects offer them under the same names. Arguments
//! refuse members they do not know, nested ones included (`vcpus[0].x`), as QAPI does;
//! `can-offline` is accepted and ignored on input, as the schema says. The readers
//! (`guest-get-time`, `guest-get-vcpus`, `guest-get-memory-blocks`) are the system
//! family's (`super::system::qga`).

use serde::{Deserialize, Serialize};

use crate::qga::Empty;

/// Arguments of `guest-set-time`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestSetTimeArgs {
    /// Nanoseconds since 1970-01-01 UTC to set the clock to, then the RTC from it;
    /// absent: the clock is set from the RTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<i64>,
}

/// Arguments of `guest-shutdown`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestShutdownArgs {
    /// `powerdown` (the default), `halt` or `reboot`. A string in the schema (not an
    /// enumeration): another value is refused by the command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

/// One logical processor of `guest-set-vcpus` (QAPI's `GuestLogicalProcessor` as an
/// argument).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct GuestLogicalProcessorArg {
    /// The CPU's number (`cpuN` in sysfs).
    pub logical_id: i64,
    /// The state wanted.
    pub online: bool,
    /// Ignored on input (the schema's rule); kept so a `guest-get-vcpus` entry can be
    /// sent back as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_offline: Option<bool>,
}

/// Arguments of `guest-set-vcpus`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestSetVcpusArgs {
    /// The processors to switch, in order; the same one may come more than once.
    pub vcpus: Vec<GuestLogicalProcessorArg>,
}

/// One memory block of `guest-set-memory-blocks` (QAPI's `GuestMemoryBlock` as an
/// argument).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct GuestMemoryBlockArg {
    /// The block's number (`memoryN` in sysfs).
    pub phys_index: u64,
    /// The state wanted.
    pub online: bool,
    /// Ignored on input (the schema's rule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_offline: Option<bool>,
}

/// Arguments of `guest-set-memory-blocks`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct GuestSetMemoryBlocksArgs {
    /// The blocks to switch, in order.
    pub mem_blks: Vec<GuestMemoryBlockArg>,
}

/// QAPI's `GuestMemoryBlockResponseType`: what became of one block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GuestMemoryBlockResponseType {
    /// It is in the state asked for (also when it already was).
    Success,
    /// There is no such block (`memoryN` is missing in sysfs).
    NotFound,
    /// The kernel cannot switch blocks (no memory directory in sysfs, or a block
    /// without `state` asked to go offline).
    OperationNotSupported,
    /// The kernel refused the switch (`error-code` says why, e.g. EBUSY).
    OperationFailed,
}

/// One result of `guest-set-memory-blocks`, in the order of the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GuestMemoryBlockResponse {
    /// The block, as asked.
    pub phys_index: u64,
    /// What became of it.
    pub response: GuestMemoryBlockResponseType,
    /// The errno of the failure; left out on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<i64>,
}

/// The control commands. `guest-shutdown` and the three suspend commands have no
/// success response (the schema's `success-response: false`): the agent answers only
/// their errors, and the host sees the guest go.
pub mod cmd {
    use super::*;

    crate::commands! { Qga;
        /// `guest-set-time`: the clock (and then the RTC) from `time`, or the clock
        /// from the RTC.
        GuestSetTime = "guest-set-time" (GuestSetTimeArgs) -> Empty;
        /// `guest-shutdown`: power down, halt or reboot through the guest's init.
        GuestShutdown = "guest-shutdown" (GuestShutdownArgs) -> Empty;
        /// `guest-suspend-disk`: hibernate.
        GuestSuspendDisk = "guest-suspend-disk" (Empty) -> Empty;
        /// `guest-suspend-ram`: suspend to RAM.
        GuestSuspendRam = "guest-suspend-ram" (Empty) -> Empty;
        /// `guest-suspend-hybrid`: save to disk, then suspend to RAM.
        GuestSuspendHybrid = "guest-suspend-hybrid" (Empty) -> Empty;
        /// `guest-set-vcpus`: how many of the list, from its start, were done.
        GuestSetVcpus = "guest-set-vcpus" (GuestSetVcpusArgs) -> i64;
        /// `guest-set-memory-blocks`: one result per block asked.
        GuestSetMemoryBlocks = "guest-set-memory-blocks" (GuestSetMemoryBlocksArgs)
            -> Vec<GuestMemoryBlockResponse>;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T, String> {
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    #[test]
    fn set_time_and_shutdown_arguments() {
        let a: GuestSetTimeArgs = parse(json!({})).unwrap();
        assert_eq!(a.time, None);
        let a: GuestSetTimeArgs = parse(json!({"time": 1_700_000_000_000_000_000_i64})).unwrap();
        assert_eq!(a.time, Some(1_700_000_000_000_000_000));
        // null is absent (qga.md: null optional arguments).
        assert_eq!(
            parse::<GuestSetTimeArgs>(json!({"time": null}))
                .unwrap()
                .time,
            None
        );
        parse::<GuestSetTimeArgs>(json!({"time": "1"})).unwrap_err();
        parse::<GuestSetTimeArgs>(json!({"time": 1.5})).unwrap_err();
        assert!(parse::<GuestSetTimeArgs>(json!({"x": 1}))
            .unwrap_err()
            .starts_with("unknown field `x`"));
        let s: GuestShutdownArgs = parse(json!({"mode": "reboot"})).unwrap();
        assert_eq!(s.mode.as_deref(), Some("reboot"));
        parse::<GuestShutdownArgs>(json!({"mode": 1})).unwrap_err();
        assert_eq!(
            serde_json::to_string(&GuestShutdownArgs::default()).unwrap(),
            "{}"
        );
    }

    #[test]
    fn vcpus_and_memory_blocks_are_the_schemas() {
        let a: GuestSetVcpusArgs = parse(json!({"vcpus": [
            {"logical-id": 1, "online": false},
            {"logical-id": 1, "online": true, "can-offline": true}]}))
        .unwrap();
        assert_eq!(a.vcpus.len(), 2);
        assert_eq!(
            a.vcpus[0],
            GuestLogicalProcessorArg {
                logical_id: 1,
                online: false,
                can_offline: None
            }
        );
        // Nested members are checked as QAPI checks them.
        let e = parse::<GuestSetVcpusArgs>(
            json!({"vcpus": [{"logical-id": 1, "online": true, "x": 0}]}),
        )
        .unwrap_err();
        assert!(e.starts_with("unknown field `x`"), "{e}");
        parse::<GuestSetVcpusArgs>(json!({"vcpus": [{"logical-id": 1}]})).unwrap_err();
        parse::<GuestSetVcpusArgs>(json!({})).unwrap_err();

        let m: GuestSetMemoryBlocksArgs =
            parse(json!({"mem-blks": [{"phys-index": 188, "online": false}]})).unwrap();
        assert_eq!(m.mem_blks[0].phys_index, 188);
        parse::<GuestSetMemoryBlocksArgs>(
            json!({"mem-blks": [{"phys-index": -1, "online": true}]}),
        )
        .unwrap_err();
        let r = [
            GuestMemoryBlockResponse {
                phys_index: 3,
                response: GuestMemoryBlockResponseType::Success,
                error_code: None,
            },
            GuestMemoryBlockResponse {
                phys_index: 9,
                response: GuestMemoryBlockResponseType::OperationNotSupported,
                error_code: Some(2),
            },
        ];
        assert_eq!(
            serde_json::to_value(r).unwrap(),
            json!([{"phys-index": 3, "response": "success"},
                   {"phys-index": 9, "response": "operation-not-supported", "error-code": 2}])
        );
    }
}
