//! Argument decoding of every command's typed struct, in both dialects, on arbitrary
//! JSON text: never panics, and what decodes re-encodes to something that decodes to
//! the same value (so the host side and the agent agree on every accepted shape).
#![no_main]

use libfuzzer_sys::fuzz_target;
use phoenix_proto::types::files::{
    DirectoryCreate, DirectoryList, FileChmod, FileChown, FileOpen, FileRead, FileRename,
    FileWrite, HandleArgs, PathArgs,
};
use phoenix_proto::qga::Empty;
use phoenix_proto::types::accounts::{
    GuestSetUserPasswordArgs, GuestSshAddAuthorizedKeysArgs, GuestSshGetAuthorizedKeysArgs,
    GuestSshRemoveAuthorizedKeysArgs,
};
use phoenix_proto::types::core::qga::SyncArgs;
use phoenix_proto::types::files::qga::{
    GuestFileHandleArgs, GuestFileOpenArgs, GuestFileReadArgs, GuestFileSeekArgs,
    GuestFileWriteArgs,
};
use phoenix_proto::types::exec::{
    GuestExecArgs, GuestExecKillArgs, GuestExecReadArgs, GuestExecResizeArgs,
    GuestExecStatusArgs, GuestExecWriteArgs,
};
use phoenix_proto::types::freeze::qga::GuestFsfreezeFreezeListArgs;
use phoenix_proto::types::freeze::FsFreezeArgs;
use phoenix_proto::types::storage::qga::FstrimArgs;
use phoenix_proto::types::control::{
    GuestSetMemoryBlocksArgs, GuestSetTimeArgs, GuestSetVcpusArgs, GuestShutdownArgs,
};
use phoenix_proto::types::net::{IfaceArgs, IpAddrArgs, RouteArgs, RouteListArgs};
use serde::de::DeserializeOwned;
use serde::Serialize;

fn check<T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug>(text: &str) {
    if let Ok(v) = serde_json::from_str::<T>(text) {
        let again = serde_json::to_string(&v).expect("re-encodes");
        let back: T = serde_json::from_str(&again).expect("own encoding decodes");
        assert_eq!(back, v);
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    check::<FileOpen>(text);
    check::<HandleArgs>(text);
    check::<FileRead>(text);
    check::<PathArgs>(text);
    check::<FileRename>(text);
    check::<FileChown>(text);
    check::<FileChmod>(text);
    check::<DirectoryCreate>(text);
    check::<DirectoryList>(text);
    check::<FsFreezeArgs>(text);
    check::<IpAddrArgs>(text);
    check::<IfaceArgs>(text);
    check::<RouteListArgs>(text);
    check::<RouteArgs>(text);
    check::<FileWrite>(text);
    // The qemu-ga dialect's.
    check::<Empty>(text);
    check::<SyncArgs>(text);
    check::<GuestFileOpenArgs>(text);
    check::<GuestFileHandleArgs>(text);
    check::<GuestFileReadArgs>(text);
    check::<GuestFileWriteArgs>(text);
    check::<GuestFileSeekArgs>(text);
    check::<GuestFsfreezeFreezeListArgs>(text);
    check::<FstrimArgs>(text);
    check::<GuestSetUserPasswordArgs>(text);
    check::<GuestSshGetAuthorizedKeysArgs>(text);
    check::<GuestSshAddAuthorizedKeysArgs>(text);
    check::<GuestSshRemoveAuthorizedKeysArgs>(text);
    check::<GuestSetTimeArgs>(text);
    check::<GuestShutdownArgs>(text);
    check::<GuestSetVcpusArgs>(text);
    check::<GuestSetMemoryBlocksArgs>(text);
    // The exec family's (both dialects).
    check::<GuestExecArgs>(text);
    check::<GuestExecStatusArgs>(text);
    check::<GuestExecReadArgs>(text);
    check::<GuestExecWriteArgs>(text);
    check::<GuestExecKillArgs>(text);
    check::<GuestExecResizeArgs>(text);
});
