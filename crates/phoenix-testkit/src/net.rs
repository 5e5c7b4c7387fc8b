//! What `ip -j` prints.

use serde_json::Value;

/// The addresses of one link of `ip -j addr`, as "ADDR/PREFIX".
pub fn cidrs(link: &Value) -> Vec<String> {
    link["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
        .collect()
}
