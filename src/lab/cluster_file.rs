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
