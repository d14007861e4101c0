//! Health tracking in the cluster file, keepalived's way: `[[track_script]]` tables (its
//! `vrrp_script`) name commands run every `interval`; a group lists the scripts and the
//! interfaces it tracks (`track_script = [...]`, `track_interface = [...]`), each with a
//! weight. Weight > 0: added to the priority while the tracker is up; weight < 0: added
//! (subtracted) while it is down; weight 0: the group goes to fault while it is down. The
//! effective priority stays within 1..=254; an address owner (priority 255) keeps 255 and
//! treats every tracker as weight 0, as keepalived does.
//!
//! Pure: the validation, and the arithmetic every node applies to its own trackers and to
//! its peers' (the file is the same everywhere, so each node knows the range a peer's
//! priority can move in).

use super::duration::HumanDuration;
use super::{ConfigError, Source};
use serde::Deserialize;
use std::time::Duration;
use toml::Spanned;

/// keepalived's bound on weights.
pub const MAX_WEIGHT: i64 = 253;
const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
const MIN_DURATION: Duration = Duration::from_millis(10);
/// Linux interface names are at most 15 bytes.
const MAX_INTERFACE_NAME: usize = 15;

/// A health check: `sh -c command` every `interval`, failed when it exits non-zero or
/// overruns `timeout`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackScript {
    pub name: String,
    pub command: String,
    pub interval: Duration,
    pub timeout: Duration,
    /// The weight groups use unless they give their own.
    pub weight: i16,
    /// Successes in a row that bring a failed script up.
    pub rise: u32,
    /// Failures in a row that bring an up script down.
    pub fall: u32,
    /// Down until it succeeded `rise` times (keepalived's `init_fail`); else up from the start.
    pub init_fail: bool,
}

/// What a group tracks.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tracked {
    /// Index into `Config::track_scripts`.
    Script(usize),
    /// A network interface of the node, by name: up while its link is up.
    Interface(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracker {
    pub tracked: Tracked,
    pub weight: i16,
}

/// Where a group's priority stands, from its trackers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub priority: u8,
    /// A weight-0 tracker is down: the group is in fault on this node.
    pub fault: bool,
}

/// The effective priority of a member whose base priority is `base`, given which trackers
/// are up (`up(tracker)`).
pub fn verdict(base: u8, trackers: &[Tracker], up: impl Fn(&Tracker) -> bool) -> Verdict {
    let owner = base == 255;
    let mut fault = false;
    let mut sum: i32 = 0;
    for tracker in trackers {
        let up = up(tracker);
        match tracker.weight {
            _ if owner && !up => fault = true,
            0 if !up => fault = true,
            w if w > 0 && up => sum += i32::from(w),
            w if w < 0 && !up => sum += i32::from(w),
            _ => {}
        }
    }
    let priority = if owner {
        255
    } else {
        (i32::from(base) + sum).clamp(1, 254) as u8
    };
    Verdict { priority, fault }
}

/// The lowest and highest effective priority a member with base priority `base` can have
/// (fault aside).
pub fn range(base: u8, trackers: &[Tracker]) -> (u8, u8) {
    if base == 255 {
        return (255, 255);
    }
    let all_down = verdict(base, trackers, |_| false).priority;
    let all_up = verdict(base, trackers, |_| true).priority;
    (all_down.min(all_up), all_down.max(all_up))
}

// The file as written.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTrackScript {
    name: Spanned<String>,
    command: Spanned<String>,
    #[serde(default)]
    interval: Option<Spanned<HumanDuration>>,
    #[serde(default)]
    timeout: Option<Spanned<HumanDuration>>,
    #[serde(default)]
    weight: Option<Spanned<i64>>,
    #[serde(default)]
    rise: Option<Spanned<i64>>,
    #[serde(default)]
    fall: Option<Spanned<i64>>,
    #[serde(default)]
    init_fail: bool,
}

/// One entry of a group's `track_script` or `track_interface`: a name, or a table with a
/// name and a weight.
pub(super) enum RawTrackRef {
    Name(String),
    Weighted { name: String, weight: Option<i64> },
}

impl<'de> Deserialize<'de> for RawTrackRef {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        const EXPECTED: &str =
            "each entry is a name (\"chk\") or a table ({ name = \"chk\", weight = -20 })";
        match toml::Value::deserialize(deserializer)? {
            toml::Value::String(name) => Ok(RawTrackRef::Name(name)),
            toml::Value::Table(table) => {
                if let Some(key) = table.keys().find(|k| *k != "name" && *k != "weight") {
                    return Err(D::Error::custom(format!(
                        "unknown field `{key}`: {EXPECTED}"
                    )));
                }
                let name = match table.get("name") {
                    Some(toml::Value::String(name)) => name.clone(),
                    _ => return Err(D::Error::custom(format!("a name is missing: {EXPECTED}"))),
                };
                let weight = match table.get("weight") {
                    None => None,
                    Some(toml::Value::Integer(w)) => Some(*w),
                    Some(_) => {
                        return Err(D::Error::custom("the weight is a whole number, -253..=253"));
                    }
                };
                Ok(RawTrackRef::Weighted { name, weight })
            }
            _ => Err(D::Error::custom(EXPECTED)),
        }
    }
}

impl RawTrackRef {
    fn name(&self) -> &str {
        match self {
            RawTrackRef::Name(name) | RawTrackRef::Weighted { name, .. } => name,
        }
    }

    fn weight(&self) -> Option<i64> {
        match self {
            RawTrackRef::Name(_) => None,
            RawTrackRef::Weighted { weight, .. } => *weight,
        }
    }
}

fn weight_in_range(value: i64) -> Result<i16, String> {
    if (-MAX_WEIGHT..=MAX_WEIGHT).contains(&value) {
        Ok(value as i16)
    } else {
        Err(format!(
            "weight {value} is out of range: -{MAX_WEIGHT}..={MAX_WEIGHT} (0: fault while down)"
        ))
    }
}

pub(super) fn scripts(
    source: &Source,
    raw: Vec<Spanned<RawTrackScript>>,
) -> Result<Vec<TrackScript>, ConfigError> {
    let mut scripts: Vec<TrackScript> = Vec::with_capacity(raw.len());
    for (index, spanned) in raw.into_iter().enumerate() {
        let raw = spanned.into_inner();
        let name = raw.name.get_ref().trim().to_string();
        let at = |key: &str| format!("[[track_script]] #{} \"{name}\", field `{key}`", index + 1);
        if name.is_empty() {
            return Err(source.error(raw.name.span(), at("name"), "the script needs a name"));
        }
        if scripts.iter().any(|s| s.name == name) {
            return Err(source.error(
                raw.name.span(),
                at("name"),
                format!("a track_script named \"{name}\" is already defined"),
            ));
        }
        if raw.command.get_ref().trim().is_empty() {
            return Err(source.error(raw.command.span(), at("command"), "the command is empty"));
        }
        let duration =
            |value: &Option<Spanned<HumanDuration>>, key: &str, default: Duration| match value {
                None => Ok(default),
                Some(d) if d.get_ref().0 >= MIN_DURATION => Ok(d.get_ref().0),
                Some(d) => Err(source.error(d.span(), at(key), format!("{key} is at least 10ms"))),
            };
        let interval = duration(&raw.interval, "interval", DEFAULT_INTERVAL)?;
        let timeout = duration(&raw.timeout, "timeout", interval)?;
        let weight = match &raw.weight {
            None => 0,
            Some(w) => weight_in_range(*w.get_ref())
                .map_err(|why| source.error(w.span(), at("weight"), why))?,
        };
        let count = |value: &Option<Spanned<i64>>, key: &str| match value {
            None => Ok(1),
            Some(n) if (1..=1000).contains(n.get_ref()) => Ok(*n.get_ref() as u32),
            Some(n) => Err(source.error(
                n.span(),
                at(key),
                format!("{key} counts checks in a row: 1..=1000"),
            )),
        };
        scripts.push(TrackScript {
            name: name.clone(),
            command: raw.command.get_ref().clone(),
            interval,
            timeout,
            weight,
            rise: count(&raw.rise, "rise")?,
            fall: count(&raw.fall, "fall")?,
            init_fail: raw.init_fail,
        });
    }
    Ok(scripts)
}

/// A group's `track_script` and `track_interface` lists.
pub(super) fn group_trackers(
    source: &Source,
    group: &str,
    scripts: &[TrackScript],
    track_script: &[Spanned<RawTrackRef>],
    track_interface: &[Spanned<RawTrackRef>],
) -> Result<Vec<Tracker>, ConfigError> {
    let mut trackers: Vec<Tracker> = Vec::new();
    for (key, list) in [
        ("track_script", track_script),
        ("track_interface", track_interface),
    ] {
        let at = format!("[[group]] \"{group}\", field `{key}`");
        for entry in list {
            let name = entry.get_ref().name().trim();
            let error = |why: String| source.error(entry.span(), at.clone(), why);
            let (tracked, default_weight) = if key == "track_script" {
                let index = scripts.iter().position(|s| s.name == name).ok_or_else(|| {
                    error(format!(
                        "no [[track_script]] is named \"{name}\"{}",
                        if scripts.is_empty() {
                            String::new()
                        } else {
                            format!(
                                " (defined: {})",
                                scripts
                                    .iter()
                                    .map(|s| s.name.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        }
                    ))
                })?;
                (Tracked::Script(index), scripts[index].weight)
            } else {
                if name.is_empty() || name.len() > MAX_INTERFACE_NAME || name.contains(['/', ' ']) {
                    return Err(error(format!(
                        "`{name}` is not a Linux interface name (1 to 15 characters, no '/' or space)"
                    )));
                }
                (Tracked::Interface(name.to_string()), 0)
            };
            if trackers.iter().any(|t| t.tracked == tracked) {
                return Err(error(format!("\"{name}\" is listed twice")));
            }
            let weight = match entry.get_ref().weight() {
                None => default_weight,
                Some(w) => weight_in_range(w).map_err(error)?,
            };
            trackers.push(Tracker { tracked, weight });
        }
    }
    Ok(trackers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(index: usize, weight: i16) -> Tracker {
        Tracker {
            tracked: Tracked::Script(index),
            weight,
        }
    }

    #[test]
    fn weights_add_while_up_subtract_while_down_and_clamp() {
        let trackers = [script(0, 20), script(1, -30), script(2, 0)];
        let all_up = verdict(100, &trackers, |_| true);
        assert_eq!(
            all_up,
            Verdict {
                priority: 120,
                fault: false
            }
        );
        let all_down = verdict(100, &trackers, |_| false);
        assert_eq!(
            all_down,
            Verdict {
                priority: 70,
                fault: true
            }
        );
        assert_eq!(verdict(250, &trackers[..1], |_| true).priority, 254);
        assert_eq!(verdict(10, &trackers[1..2], |_| false).priority, 1);
        assert_eq!(range(100, &trackers), (70, 120));
    }

    #[test]
    fn an_address_owner_keeps_255_and_faults_on_any_tracker() {
        let trackers = [script(0, 20), script(1, -30)];
        assert_eq!(
            verdict(255, &trackers, |_| true),
            Verdict {
                priority: 255,
                fault: false
            }
        );
        let one_down = verdict(255, &trackers, |t| t.tracked == Tracked::Script(1));
        assert_eq!(
            one_down,
            Verdict {
                priority: 255,
                fault: true
            }
        );
        assert_eq!(range(255, &trackers), (255, 255));
    }
}
