//! DNS: every node serves the cluster zone, and the owner of a group can register its
//! virtual names in the site's DNS.

pub mod server;
pub mod update;
pub mod zone;
