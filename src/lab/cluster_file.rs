//! Cluster files for the lab and the simulator: pure text builders, no namespaces.

/// Names of the lab's nodes, in order; node `i` has address 192.0.2.(11 + i) on eth0.
pub const NODE_NAMES: [&str; 4] = ["alpha", "beta", "gamma", "delta"];

/// A cluster file for the lab (and the simulator): `nodes` nodes named from [`NODE_NAMES`],
/// then `groups` (and any other tables) as written.
pub fn cluster_file(nodes: usize, groups: &str) -> String {
    let mut text = String::from("[cluster]\nname = \"lab\"\nzone = \"cluster.example.\"\n");
    for (i, name) in NODE_NAMES.iter().take(nodes).enumerate() {
        text.push_str(&format!(
            "\n[[node]]\nname = \"{name}\"\ninterface = \"eth0\"\naddress = \"192.0.2.{}\"\n",
            11 + i
        ));
    }
    text.push('\n');
    text.push_str(groups);
    text
}

/// Marks node `name` of a [`cluster_file`] as a foreign VRRP speaker (keepalived).
pub fn with_foreign(cluster: &str, name: &str) -> String {
    let index = NODE_NAMES
        .iter()
        .position(|n| *n == name)
        .expect("a lab node name");
    let address = format!("address = \"192.0.2.{}\"\n", 11 + index);
    cluster.replacen(&address, &format!("{address}foreign = true\n"), 1)
}

/// Groups per LAN segment in [`many_groups`] (VRIDs 1..=250 on each of eth0..eth3).
pub const GROUPS_PER_SEGMENT: usize = 250;

/// Group `g` (0-based) of [`many_groups`]: its segment, VRID and virtual address
/// (198.51.100.VRID, or 2001:db8:(100 + segment)::VRID).
pub fn many_group(g: usize, v6: bool) -> (usize, usize, String) {
    let (segment, vrid) = (g / GROUPS_PER_SEGMENT, g % GROUPS_PER_SEGMENT + 1);
    let address = if v6 {
        format!("2001:db8:{:x}::{vrid:x}", 0x100 + segment)
    } else {
        format!("198.51.100.{vrid}")
    };
    (segment, vrid, address)
}

/// The LAN segments [`many_groups`] spreads `groups` over.
pub fn segments_for(groups: usize) -> usize {
    groups.div_ceil(GROUPS_PER_SEGMENT)
}

/// Two nodes (alpha at 200, beta at 100) and `groups` groups of one address each, 250 per LAN
/// segment (eth0, then `[[node.lan]]` eth1..eth3), adverts every `interval_ms`: the scale
/// benchmark's file.
pub fn many_groups(groups: usize, v6: bool, interval_ms: u64) -> String {
    use std::fmt::Write;
    let mut text = String::from("[cluster]\nname = \"lab\"\nzone = \"cluster.example.\"\n");
    for (n, name) in ["alpha", "beta"].iter().enumerate() {
        let _ = write!(
            text,
            "\n[[node]]\nname = \"{name}\"\ninterface = \"eth0\"\naddress = \"192.0.2.{}\"\n",
            11 + n
        );
        for segment in 1..segments_for(groups) {
            let _ = write!(
                text,
                "[[node.lan]]\ninterface = \"eth{segment}\"\naddress = \"2001:db8:{segment}::{:x}\"\nlink_local = \"fe80::{segment}:{:x}\"\n",
                0x11 + n,
                0x11 + n
            );
        }
    }
    for g in 0..groups {
        let (segment, vrid, address) = many_group(g, v6);
        let interface = if segment == 0 {
            String::new()
        } else {
            format!("interface = \"eth{segment}\"\n")
        };
        let _ = write!(
            text,
            "\n[[group]]\nname = \"g{g}\"\nvrid = {vrid}\n{interface}addresses = [\"{address}/{}\"]\npriority = {{ alpha = 200, beta = 100 }}\nadvert_interval = \"{interval_ms}ms\"\n",
            if v6 { 128 } else { 32 },
        );
    }
    text
}
