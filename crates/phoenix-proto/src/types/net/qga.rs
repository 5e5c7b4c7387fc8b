//! The qemu-ga dialect's network commands: `guest-network-get-interfaces` and
//! `guest-network-get-route` (qemu-ga 9.1). Names and types as in QEMU's
//! `qga/qapi-schema.json` (`GuestNetworkInterface`, `GuestNetworkRoute`); neither
//! command takes arguments.

use serde::{Deserialize, Serialize};

use crate::qga::Empty;

/// `GuestIpAddressType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GuestIpAddressType {
    /// `ipv4`.
    Ipv4,
    /// `ipv6`.
    Ipv6,
}

/// `GuestIpAddress`: one address of an interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GuestIpAddress {
    /// The address (`10.0.0.1`, `fe80::1`), without prefix or scope.
    pub ip_address: String,
    /// Its family.
    pub ip_address_type: GuestIpAddressType,
    /// The prefix length.
    pub prefix: i64,
}

/// `GuestNetworkInterfaceStat`: the interface's counters, as `/proc/net/dev` shows
/// them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GuestNetworkInterfaceStat {
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Bad packets received.
    pub rx_errs: u64,
    /// Packets dropped on receive (the kernel's `rx_dropped` plus `rx_missed_errors`).
    pub rx_dropped: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Packets that failed to be sent.
    pub tx_errs: u64,
    /// Packets dropped on send.
    pub tx_dropped: u64,
}

/// `GuestNetworkInterface`: one entry of `guest-network-get-interfaces`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GuestNetworkInterface {
    /// The interface name, or an IPv4 address label (`eth0:1`), as `getifaddrs` names
    /// them.
    pub name: String,
    /// The first six bytes of the link-layer address, `"52:54:00:12:34:56"`
    /// (`"00:00:00:00:00:00"` for `lo` and links without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardware_address: Option<String>,
    /// The addresses; absent when the interface has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_addresses: Option<Vec<GuestIpAddress>>,
    /// The counters; absent when the interface has no address, and for labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statistics: Option<GuestNetworkInterfaceStat>,
}

/// `GuestNetworkRoute`: one route of `guest-network-get-route`. An IPv4 route has
/// the members of a `/proc/net/route` line (`gateway`, `mask`, `irtt`, `window`,
/// `mtu`), an IPv6 route those of a `/proc/net/ipv6_route` line (`desprefixlen`,
/// `source`, `srcprefixlen`, `nexthop`); both have `flags`, `refcnt` and `use`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestNetworkRoute {
    /// The output interface; `"*"` for an IPv4 route without one.
    pub iface: String,
    /// The destination network (`"0.0.0.0"`, `"::"` for a default route).
    pub destination: String,
    /// The route's metric (priority).
    pub metric: i64,
    /// IPv4: the gateway, `"0.0.0.0"` for none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// IPv4: the destination's mask, `"255.255.255.0"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask: Option<String>,
    /// IPv4: the initial round-trip time (the `rtt` metric, in milliseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub irtt: Option<i64>,
    /// The kernel's RTF_* flags (`RTF_UP` 0x1, `RTF_GATEWAY` 0x2, `RTF_HOST` 0x4, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flags: Option<u64>,
    /// The reference count (0 for IPv4, as the kernel shows it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refcnt: Option<i64>,
    /// The use count (always 0 on Linux).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#use: Option<i64>,
    /// IPv4: the `window` metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<i64>,
    /// IPv4: the `advmss` metric plus 40, or 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<i64>,
    /// IPv6: the destination's prefix length, in decimal (`"64"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desprefixlen: Option<String>,
    /// IPv6: the source network of a source-specific route, `"::"` for none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// IPv6: the source's prefix length, in decimal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub srcprefixlen: Option<String>,
    /// IPv6: the next hop, `"::"` for none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nexthop: Option<String>,
    /// 4 or 6.
    pub version: i64,
}

/// The qemu-ga dialect's network commands.
pub mod cmd {
    use super::*;

    crate::commands! { Qga;
        /// `guest-network-get-interfaces`: every interface with its addresses and
        /// counters.
        GuestNetworkGetInterfaces = "guest-network-get-interfaces" (Empty)
            -> Vec<GuestNetworkInterface>;
        /// `guest-network-get-route`: the IPv4 main table and the IPv6 routes.
        GuestNetworkGetRoute = "guest-network-get-route" (Empty) -> Vec<GuestNetworkRoute>;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn interface_names_and_absent_members() {
        let i = GuestNetworkInterface {
            name: "br0".into(),
            hardware_address: Some("7e:74:a4:b1:14:42".into()),
            ip_addresses: None,
            statistics: None,
        };
        assert_eq!(
            serde_json::to_value(&i).unwrap(),
            json!({"name": "br0", "hardware-address": "7e:74:a4:b1:14:42"})
        );
        let i = GuestNetworkInterface {
            ip_addresses: Some(vec![GuestIpAddress {
                ip_address: "fd09::1".into(),
                ip_address_type: GuestIpAddressType::Ipv6,
                prefix: 64,
            }]),
            statistics: Some(GuestNetworkInterfaceStat::default()),
            ..i
        };
        let v = serde_json::to_value(&i).unwrap();
        assert_eq!(
            v["ip-addresses"],
            json!([{"ip-address": "fd09::1", "ip-address-type": "ipv6", "prefix": 64}])
        );
        let stats = v["statistics"].as_object().unwrap();
        let mut keys: Vec<&str> = stats.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "rx-bytes",
                "rx-dropped",
                "rx-errs",
                "rx-packets",
                "tx-bytes",
                "tx-dropped",
                "tx-errs",
                "tx-packets"
            ]
        );
        assert_eq!(
            serde_json::from_value::<GuestNetworkInterface>(v).unwrap(),
            i
        );
    }

    #[test]
    fn route_members_as_the_schema_names_them() {
        let r = GuestNetworkRoute {
            iface: "eth0".into(),
            destination: "fd00::".into(),
            metric: 256,
            gateway: None,
            mask: None,
            irtt: None,
            flags: Some(1),
            refcnt: Some(1),
            r#use: Some(0),
            window: None,
            mtu: None,
            desprefixlen: Some("64".into()),
            source: Some("::".into()),
            srcprefixlen: Some("0".into()),
            nexthop: Some("::".into()),
            version: 6,
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(
            v,
            json!({"iface": "eth0", "destination": "fd00::", "metric": 256, "flags": 1,
                   "refcnt": 1, "use": 0, "desprefixlen": "64", "source": "::",
                   "srcprefixlen": "0", "nexthop": "::", "version": 6})
        );
        assert_eq!(serde_json::from_value::<GuestNetworkRoute>(v).unwrap(), r);
    }

    #[test]
    fn no_arguments_taken() {
        serde_json::from_str::<Empty>("{}").unwrap();
        serde_json::from_str::<Empty>(r#"{"family":2}"#).unwrap_err();
    }
}
