//! vipd: one stable endpoint (virtual addresses and names) for an active/passive cluster,
//! elected over VRRP version 3.
//!
//! The core is pure ([`wire`], [`election`], [`node`], [`config`]); the shell that touches
//! the kernel ([`daemon`], [`net`]) is kept thin around it.

pub mod check;
pub mod cleanup;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod dns;
pub mod election;
pub mod import;
pub mod lab;
pub mod metrics_http;
pub mod net;
pub mod node;
pub mod plan;
pub mod quorum;
pub mod wire;
