//! Shared test support: the simulated cluster.
#![allow(dead_code)]

pub mod sim;
