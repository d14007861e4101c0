//! A failover group: one [`Instance`] per address family, kept on the same owner the way a
//! keepalived sync group does. When one family's instance becomes master, the others follow;
//! when one steps down, the others step down too.

use super::{Action, Advert, Ignored, Instance, InstanceConfig, Reason, State};
use crate::wire::Family;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Group {
    instances: Vec<Instance>,
    actions: VecDeque<(Family, Action)>,
}

impl Group {
    /// One instance configuration per family (at most one each).
    pub fn new(configs: Vec<InstanceConfig>) -> Group {
        Group {
            instances: configs.into_iter().map(Instance::new).collect(),
            actions: VecDeque::new(),
        }
    }

    pub fn instances(&self) -> &[Instance] {
        &self.instances
    }

    fn index_of(&self, family: Family) -> Option<usize> {
        self.instances
            .iter()
            .position(|i| i.config().family == family)
    }

    pub fn instance(&self, family: Family) -> Option<&Instance> {
        self.instances.iter().find(|i| i.config().family == family)
    }

    /// The instance that leads the group: the first one (IPv4 in a dual-stack group). Its
    /// state is the group's state, and its transitions to and from Master begin and end the
    /// group's mastership (resources, registration); the sync rules keep the others with it.
    pub fn leader(&self) -> Option<&Instance> {
        self.instances.first()
    }

    /// The family of the leading instance.
    pub fn leader_family(&self) -> Option<Family> {
        self.leader().map(|i| i.config().family)
    }

    /// The group's state: the leading instance's.
    pub fn state(&self) -> State {
        self.leader().map_or(State::Initialize, Instance::state)
    }

    pub fn start(&mut self, now: Instant) {
        self.each(now, |i, now| i.start(now));
    }

    pub fn shutdown(&mut self, now: Instant) {
        self.each(now, |i, now| i.shutdown(now));
    }

    pub fn set_link(&mut self, now: Instant, up: bool) {
        self.each(now, |i, now| i.set_link(now, up));
    }

    /// The node cannot serve the group (`reason`: a resource failed): every family gives it
    /// up, see [`Instance::give_up`].
    pub fn give_up(&mut self, now: Instant, reason: Reason) {
        self.each(now, |i, now| i.give_up(now, reason));
    }

    /// A planned handover of every family: see [`Instance::hand_over`]. False when this
    /// node is not master.
    pub fn hand_over(&mut self, now: Instant) -> bool {
        let mut any = false;
        self.each(now, |i, now| any |= i.hand_over(now));
        any
    }

    /// See [`Instance::set_quorum`].
    pub fn set_quorum(&mut self, now: Instant, ok: bool) {
        self.each(now, |i, now| i.set_quorum(now, ok));
    }

    /// See [`Instance::set_claim_blocked`].
    pub fn set_claim_blocked(&mut self, now: Instant, blocked: bool) {
        self.each(now, |i, now| i.set_claim_blocked(now, blocked));
    }

    /// See [`Instance::step_down`]. False when this node is not master.
    pub fn step_down(&mut self, now: Instant) -> bool {
        let mut any = false;
        self.each(now, |i, now| any |= i.step_down(now));
        any
    }

    /// See [`Instance::set_no_preempt_from`].
    pub fn set_no_preempt_from(&mut self, names: &[String]) {
        for instance in &mut self.instances {
            instance.set_no_preempt_from(names);
        }
    }

    /// Health tracking: see [`Instance::set_priority`] and [`Instance::set_track_fault`].
    /// Every family takes the same effective priority and fault.
    pub fn set_tracking(&mut self, now: Instant, priority: u8, fault: bool) {
        self.each(now, |i, now| {
            i.set_priority(now, priority);
            i.set_track_fault(now, fault);
        });
    }

    /// See [`Instance::set_advert_grid`].
    pub fn set_advert_grid(&mut self, epoch: Instant, step: Duration) {
        for instance in &mut self.instances {
            instance.set_advert_grid(epoch, step);
        }
    }

    /// See [`Instance::set_drained`].
    pub fn set_drained(&mut self, now: Instant, drained: bool) {
        self.each(now, |i, now| i.set_drained(now, drained));
    }

    /// New settings for the same families in place: see [`Instance::reconfigure`].
    pub fn reconfigure(&mut self, now: Instant, configs: Vec<InstanceConfig>) {
        for config in configs {
            if let Some(instance) = self
                .instances
                .iter_mut()
                .find(|i| i.config().family == config.family)
            {
                instance.reconfigure(now, config);
            }
        }
        self.collect();
    }

    /// The shell could not add the addresses of `family`: see [`Instance::claim_failed`].
    pub fn claim_failed(&mut self, now: Instant, family: Family) {
        if let Some(index) = self.index_of(family) {
            self.on_one(now, index, |i, now| i.claim_failed(now));
        }
    }

    /// Feeds an advert to the instance of `family`; returns why it was not acted on, if not.
    pub fn handle_advert(
        &mut self,
        now: Instant,
        family: Family,
        advert: &Advert,
    ) -> Option<Ignored> {
        let index = self.index_of(family)?;
        let mut ignored = None;
        self.on_one(now, index, |i, now| ignored = i.handle_advert(now, advert));
        ignored
    }

    /// Feeds an advert from an unverified source: see [`Instance::handle_unverified_advert`].
    pub fn handle_unverified_advert(
        &mut self,
        now: Instant,
        family: Family,
        advert: &Advert,
        may_yield: bool,
    ) -> Option<Ignored> {
        let index = self.index_of(family)?;
        let mut ignored = None;
        self.on_one(now, index, |i, now| {
            ignored = i.handle_unverified_advert(now, advert, may_yield)
        });
        ignored
    }

    /// See [`Instance::bind_source`].
    pub fn bind_source(&mut self, family: Family, src: std::net::IpAddr, peer: Option<&str>) {
        if let Some(instance) = self
            .instances
            .iter_mut()
            .find(|i| i.config().family == family)
        {
            instance.bind_source(src, peer);
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        for index in 0..self.instances.len() {
            if self.instances[index]
                .poll_timeout()
                .is_some_and(|t| t <= now)
            {
                self.on_one(now, index, |i, now| i.handle_timeout(now));
            }
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.instances
            .iter()
            .filter_map(Instance::poll_timeout)
            .min()
    }

    pub fn poll_action(&mut self) -> Option<(Family, Action)> {
        self.actions.pop_front()
    }

    fn each(&mut self, now: Instant, mut input: impl FnMut(&mut Instance, Instant)) {
        for instance in &mut self.instances {
            input(instance, now);
        }
        self.collect();
    }

    /// Feeds one instance, then brings the others along if its mastership changed.
    fn on_one(&mut self, now: Instant, index: usize, input: impl FnOnce(&mut Instance, Instant)) {
        let before = self.instances[index].state();
        input(&mut self.instances[index], now);
        let after = self.instances[index].state();
        if before != after {
            for (other, instance) in self.instances.iter_mut().enumerate() {
                if other == index {
                    continue;
                }
                match after {
                    State::Master => instance.force_master(now),
                    State::Backup | State::Fault if before == State::Master => {
                        instance.force_backup(now)
                    }
                    _ => {}
                }
            }
        }
        self.collect();
    }

    fn collect(&mut self) {
        for instance in &mut self.instances {
            let family = instance.config().family;
            while let Some(action) = instance.poll_action() {
                self.actions.push_back((family, action));
            }
        }
    }
}
