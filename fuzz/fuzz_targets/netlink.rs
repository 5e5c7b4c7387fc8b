//! The rtnetlink reply decoders on arbitrary payloads: the link and route decoders of
//! the listings, the whole-message decoder, the extended-ack reader and the link
//! notification walk of the route listing's name cache never panic.
//! The first two bytes choose the message type (and ack flags), the rest is the payload.
#![no_main]

use libfuzzer_sys::fuzz_target;
use phoenix_ga::parsers::{
    apply_link_notifications, decode_netlink_link, decode_netlink_message, decode_netlink_route,
    netlink_ext_ack_message,
};

/// RTM_NEWLINK and RTM_NEWROUTE.
const NEWLINK: u16 = 16;
const NEWROUTE: u16 = 24;

fuzz_target!(|data: &[u8]| {
    let Some((head, payload)) = data.split_first_chunk::<2>() else {
        return;
    };
    let selector = u16::from_le_bytes(*head);
    let _ = decode_netlink_link(NEWLINK, payload);
    let _ = decode_netlink_route(NEWROUTE, payload);
    // Message types 16..=127 are rtnetlink's; others are refused without decoding.
    let _ = decode_netlink_message(16 + selector % 112, payload);
    if let Some(reason) = netlink_ext_ack_message(selector, payload) {
        assert!(!reason.is_empty() && !reason.contains('\0'));
    }
    // The whole input as a datagram of notifications (its own headers inside).
    let mut names = std::collections::HashMap::new();
    let _ = apply_link_notifications(&mut names, data);
});
