//! The CNI network config the CRI needs before it reports the network ready.
//!
//! A bridge + host-local conflist, named per run so two runs never share a bridge, with IPAM
//! state in the run's own directory and no masquerading (nothing is routed off the node),
//! plus `portmap` as kubelet-style nodes have it: CRI `hostPort` mappings (critest's
//! port-mapping specs) become DNAT rules in the node's own network namespace.

use std::path::Path;

use serde_json::json;

/// The conflist for bridge `bridge` with pods in `subnet`, IPAM state under `ipam_dir`.
pub fn bridge_conflist(network: &str, bridge: &str, subnet: &str, ipam_dir: &Path) -> String {
    let conf = json!({
        "cniVersion": "0.4.0",
        "name": network,
        "plugins": [
            {
                "type": "bridge",
                "bridge": bridge,
                "isGateway": true,
                "ipMasq": false,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "dataDir": ipam_dir,
                    "ranges": [[{ "subnet": subnet }]],
                    "routes": [{ "dst": "0.0.0.0/0" }]
                }
            },
            { "type": "loopback" },
            { "type": "portmap", "capabilities": { "portMappings": true } }
        ]
    });
    serde_json::to_string_pretty(&conf).expect("json values serialise")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflist_names_bridge_and_state_dir() {
        let text = bridge_conflist("kh-net", "khbr0", "10.250.1.0/24", Path::new("/tmp/run/ipam"));
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["plugins"][0]["bridge"], "khbr0");
        assert_eq!(v["plugins"][0]["ipam"]["dataDir"], "/tmp/run/ipam");
        assert_eq!(v["plugins"][0]["ipMasq"], false);
        assert_eq!(v["plugins"][1]["type"], "loopback");
        assert_eq!(v["plugins"][2]["type"], "portmap");
        assert_eq!(v["plugins"][2]["capabilities"]["portMappings"], true);
    }
}
