//! Adverts before claims when nobody holds the group: a node that becomes master because no
//! master was heard for Master_Down_Interval (a cold start, a dead master) has no old owner
//! to make before break with, so its adverts go out before any of the batch's claims. The
//! shell carries effects out in order, and an IPv6 claim costs it time (the address is read
//! back until the kernel has finished it): with many groups taken at one instant (a cold
//! start of 250 groups on three nodes), the adverts of the last groups waited behind the
//! claims of the first, beyond the next node's Master_Down_Interval, and that node took the
//! same groups too (two holders until the adverts arrived).

use super::effect::{Effect, GroupName};
use std::collections::VecDeque;

/// Moves the adverts (non-zero priority) of the `cold` groups among `effects[from..]` to the
/// front of that range, each kind keeping its order.
pub fn adverts_first(effects: &mut VecDeque<Effect>, from: usize, cold: &[GroupName]) {
    if cold.is_empty() || from >= effects.len() {
        return;
    }
    let batch: Vec<Effect> = effects.drain(from..).collect();
    let (first, rest): (Vec<Effect>, Vec<Effect>) = batch.into_iter().partition(|e| {
        matches!(e, Effect::Send { group, priority, .. } if *priority > 0 && cold.contains(group))
    });
    effects.extend(first);
    effects.extend(rest);
}
