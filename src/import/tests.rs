use super::*;

const MASTER: &str = r#"! node one
global_defs {
   router_id NODE_A
   vrrp_version 3
   enable_script_security
}

vrrp_script chk_db {
    script "/usr/local/bin/db-alive"
    interval 2
}

vrrp_script chk_load {
    script "/usr/local/bin/load-ok"
    weight -20
}

vrrp_instance VI_DB {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 150
    advert_int 0.1
    authentication {
        auth_type PASS
        auth_pass 1111
    }
    virtual_ipaddress {
        192.0.2.100/24
        192.0.2.101 label eth0:1
        192.0.2.102 dev eth1
    }
    virtual_ipaddress_excluded {
        192.0.2.120/24
    }
    unicast_src_ip 192.0.2.11
    unicast_peer {
        192.0.2.12
    }
    track_interface {
        eth1
    }
    track_script {
        chk_db
        chk_load
    }
    notify_master "/etc/ha/up.sh db"
    notify_backup "/etc/ha/down.sh db"
    notify_fault "/etc/ha/fault.sh"
    preempt_delay 5
}

vrrp_instance VI_OTHER {
    interface eth2
    virtual_router_id 52
    virtual_ipaddress {
        192.0.2.110
    }
}

virtual_server 192.0.2.100 80 {
    lb_algo rr
}

include /etc/keepalived/conf.d/*.conf
"#;

fn backup() -> String {
    MASTER
        .replace("NODE_A", "NODE_B")
        .replace("state MASTER", "state BACKUP")
        .replace("priority 150", "priority 100")
        .replace("unicast_src_ip 192.0.2.11", "unicast_src_ip 192.0.2.12")
        .replace("        192.0.2.12\n", "        192.0.2.11\n")
}

fn inputs() -> Vec<Input> {
    vec![
        Input {
            file: "a/keepalived.conf".into(),
            text: MASTER.into(),
        },
        Input {
            file: "b/keepalived.conf".into(),
            text: backup(),
        },
    ]
}

fn has_note(notes: &[Note], file: &str, line: usize, part: &str) -> bool {
    notes
        .iter()
        .any(|n| n.file == file && n.line == line && n.message.contains(part))
}

#[test]
fn a_master_and_a_backup_become_one_two_node_cluster() {
    let imported = convert(&inputs(), &Options::default()).unwrap();
    let config = Config::parse("t.toml", &imported.toml).unwrap();
    let names: Vec<&str> = config.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["node-a", "node-b"]);
    assert_eq!(
        config.nodes[0].address,
        "192.0.2.11".parse::<IpAddr>().unwrap()
    );
    assert_eq!(
        config.nodes[1].address,
        "192.0.2.12".parse::<IpAddr>().unwrap()
    );
    assert_eq!(config.nodes[0].interface, "eth0");
    // VI_OTHER is on another interface: skipped; one group.
    assert_eq!(config.groups.len(), 1);
    let group = &config.groups[0];
    assert_eq!(group.name, "VI_DB");
    assert_eq!(group.vrid, 51);
    let addresses: Vec<String> = group.addresses.iter().map(|a| a.to_string()).collect();
    assert_eq!(
        addresses,
        ["192.0.2.100/24", "192.0.2.101/32", "192.0.2.120/24"]
    );
    assert_eq!(group.priorities, [(0, 150), (1, 100)]);
    assert_eq!(group.advert_interval, std::time::Duration::from_millis(100));
    assert!(group.preempt);
    assert_eq!(group.preempt_delay, std::time::Duration::from_secs(5));
    assert!(group.unicast);
    // notify_master/backup → one resource; the scripts and eth1 are tracked.
    let resources: Vec<(&str, &str, &str, Option<&str>)> = group
        .resources
        .iter()
        .map(|r| {
            (
                r.name.as_str(),
                r.start.as_str(),
                r.stop.as_str(),
                r.check.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        resources,
        [("notify", "/etc/ha/up.sh db", "/etc/ha/down.sh db", None)]
    );
    use crate::config::track::{Tracked, Tracker};
    let scripts: Vec<(&str, &str, std::time::Duration, i16)> = config
        .track_scripts
        .iter()
        .map(|s| (s.name.as_str(), s.command.as_str(), s.interval, s.weight))
        .collect();
    assert_eq!(
        scripts,
        [
            (
                "chk_db",
                "/usr/local/bin/db-alive",
                std::time::Duration::from_secs(2),
                0
            ),
            (
                "chk_load",
                "/usr/local/bin/load-ok",
                std::time::Duration::from_secs(1),
                -20
            ),
        ]
    );
    assert_eq!(
        group.track,
        [
            Tracker {
                tracked: Tracked::Script(0),
                weight: 0
            },
            Tracker {
                tracked: Tracked::Script(1),
                weight: -20
            },
            Tracker {
                tracked: Tracked::Interface("eth1".into()),
                weight: 0
            },
        ]
    );
}

#[test]
fn tracking_carries_over_with_weights_rise_fall_and_keepalived_rules() {
    let text = r#"global_defs {
   router_id NODE_A
   vrrp_version 3
}
vrrp_script chk_app {
    script "/usr/local/bin/app-ok --quick"
    interval 0.5
    timeout 2
    weight 10
    rise 3
    fall 2
    init_fail
}
vrrp_script chk_rev {
    script "/bin/true"
}
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 7
    priority 150
    unicast_src_ip 192.0.2.11
    virtual_ipaddress {
        192.0.2.100/24
    }
    track_script {
        chk_app weight -40
        chk_rev weight 5 reverse
        chk_gone
    }
    track_interface { eth1 weight -30 eth2 }
}
vrrp_instance VI_2 {
    interface eth0
    virtual_router_id 8
    priority 150
    virtual_ipaddress {
        192.0.2.101/24
    }
    track_script {
        chk_app
    }
}
vrrp_sync_group SG {
    group {
        VI_2
    }
}
"#;
    let inputs = [Input {
        file: "a/keepalived.conf".into(),
        text: text.into(),
    }];
    let imported = convert(&inputs, &Options::default()).unwrap();
    let config = Config::parse("t.toml", &imported.toml).unwrap();
    assert_eq!(
        config.track_scripts.len(),
        1,
        "only tracked scripts: {}",
        imported.toml
    );
    let app = &config.track_scripts[0];
    assert_eq!(app.name, "chk_app");
    assert_eq!(app.command, "/usr/local/bin/app-ok --quick");
    assert_eq!(app.interval, std::time::Duration::from_millis(500));
    assert_eq!(app.timeout, std::time::Duration::from_secs(2));
    assert_eq!(
        (app.weight, app.rise, app.fall, app.init_fail),
        (10, 3, 2, true)
    );
    use crate::config::track::{Tracked, Tracker};
    assert_eq!(
        config.groups[0].track,
        [
            Tracker {
                tracked: Tracked::Script(0),
                weight: -40
            },
            Tracker {
                tracked: Tracked::Interface("eth1".into()),
                weight: -30
            },
            Tracker {
                tracked: Tracked::Interface("eth2".into()),
                weight: 0
            },
        ]
    );
    // A sync group's member: keepalived's weight 0.
    assert_eq!(
        config.groups[1].track,
        [Tracker {
            tracked: Tracked::Script(0),
            weight: 0
        }]
    );
    let a = "a/keepalived.conf";
    let notes = &imported.notes;
    assert!(
        has_note(notes, a, 27, "chk_rev: `reverse` not carried over"),
        "{notes:?}"
    );
    assert!(
        has_note(notes, a, 28, "chk_gone: no vrrp_script"),
        "{notes:?}"
    );
    assert!(has_note(notes, a, 40, "weight 0"), "{notes:?}");
    assert!(
        !notes.iter().any(|n| n.message.contains("eth1")),
        "{notes:?}"
    );
}

#[test]
fn what_is_not_carried_over_is_listed_by_file_and_line() {
    let imported = convert(&inputs(), &Options::default()).unwrap();
    let notes = &imported.notes;
    let a = "a/keepalived.conf";
    for (line, part) in [
        (5, "enable_script_security"),
        (19, "state MASTER"),
        (24, "authentication"),
        (30, "eth0:1"),
        (31, "dev eth1"),
        (33, "virtual_ipaddress_excluded: carried over"),
        (49, "notify_fault"),
        (54, "interface eth2"),
        (61, "LVS"),
        (65, "include /etc/keepalived/conf.d/*.conf"),
    ] {
        assert!(
            has_note(notes, a, line, part),
            "no note {a}:{line} with {part:?} in\n{}",
            notes
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    assert!(has_note(notes, "b/keepalived.conf", 19, "state BACKUP"));
    assert_eq!(
        notes[0].to_string(),
        "a/keepalived.conf:5: global_defs `enable_script_security` not carried over"
    );
}

#[test]
fn without_unicast_src_ip_the_address_must_be_given() {
    let text = "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 7\n virtual_ipaddress {\n  192.0.2.100/24\n }\n}\n";
    let input = |file: &str| Input {
        file: file.into(),
        text: text.into(),
    };
    let error = convert(&[input("x/alpha.conf")], &Options::default()).unwrap_err();
    assert!(
        error
            .message
            .contains("no unicast_src_ip): give it with --address alpha-conf=IP"),
        "{}",
        error.message
    );
    // Two files without router_id: named after their files.
    let options = Options {
        addresses: vec![
            ("alpha-conf".into(), "192.0.2.11".parse().unwrap()),
            ("beta-conf".into(), "192.0.2.12".parse().unwrap()),
        ],
        ..Options::default()
    };
    let mut second = input("y/beta.conf");
    second.text = text.replace("interface eth0", "interface eth0\n priority 90");
    let imported = convert(&[input("x/alpha.conf"), second], &options).unwrap();
    let config = Config::parse("t.toml", &imported.toml).unwrap();
    // keepalived's defaults: VRRPv2, priority 100, advert_int 1.
    assert_eq!(config.groups[0].version, crate::wire::vrrp::Version::V2);
    assert_eq!(config.groups[0].priorities, [(0, 100), (1, 90)]);
    assert_eq!(
        config.groups[0].advert_interval,
        std::time::Duration::from_secs(1)
    );
}

#[test]
fn the_address_owner_gets_255_and_others_at_most_254() {
    let text = |priority: u8, own: &str| {
        format!(
            "global_defs {{\n router_id n{own}\n vrrp_version 3\n}}\nvrrp_instance V {{\n interface eth0\n virtual_router_id 9\n priority {priority}\n unicast_src_ip 192.0.2.{own}\n virtual_ipaddress {{\n  192.0.2.11/24\n }}\n}}\n"
        )
    };
    let inputs = [
        Input {
            file: "one".into(),
            text: text(200, "11"),
        },
        Input {
            file: "two".into(),
            text: text(255, "12"),
        },
    ];
    let imported = convert(&inputs, &Options::default()).unwrap();
    let config = Config::parse("t.toml", &imported.toml).unwrap();
    assert_eq!(config.groups[0].priorities, [(0, 255), (1, 254)]);
    assert!(has_note(&imported.notes, "one", 5, "priority 255 used"));
    assert!(has_note(&imported.notes, "two", 5, "254 used"));
}

#[test]
fn sync_groups_and_the_generic_notify_script() {
    let text = "vrrp_sync_group G {\n group {\n  V1\n }\n notify \"/bin/n.sh\"\n}\n\
                vrrp_instance V1 {\n interface eth0\n virtual_router_id 1\n unicast_src_ip 192.0.2.11\n virtual_ipaddress {\n  2001:db8::1/64\n }\n}\n";
    let imported = convert(
        &[Input {
            file: "k".into(),
            text: text.into(),
        }],
        &Options::default(),
    )
    .unwrap();
    let config = Config::parse("t.toml", &imported.toml).unwrap();
    let group = &config.groups[0];
    // IPv6: version 3 whatever the global default.
    assert_eq!(group.version, crate::wire::vrrp::Version::V3);
    assert_eq!(group.resources[0].name, "sync-g");
    assert_eq!(group.resources[0].start, "/bin/n.sh GROUP G MASTER 100");
    assert_eq!(group.resources[0].stop, "/bin/n.sh GROUP G BACKUP 100");
    assert!(has_note(&imported.notes, "k", 1, "no sync groups"));
}

#[test]
fn files_that_cannot_be_converted_say_why() {
    let error = convert(
        &[Input {
            file: "lvs.conf".into(),
            text: "virtual_server 192.0.2.1 80 {\n}\n".into(),
        }],
        &Options::default(),
    )
    .unwrap_err();
    assert!(error.message.contains("no usable vrrp_instance"), "{error}");
    assert!(has_note(&error.notes, "lvs.conf", 1, "LVS"));
    let error = convert(
        &[Input {
            file: "bad.conf".into(),
            text: "vrrp_instance X {\n".into(),
        }],
        &Options::default(),
    )
    .unwrap_err();
    assert_eq!(
        error.message,
        "bad.conf:1: this block is never closed (a `}` is missing)"
    );
}

#[test]
fn use_vmac_becomes_vmac_true() {
    let text = "vrrp_instance V1 {\n interface eth0\n virtual_router_id 51\n use_vmac vrrp51\n \
                unicast_src_ip 192.0.2.11\n virtual_ipaddress {\n  192.0.2.100/24\n }\n}\n\
                vrrp_instance V2 {\n interface eth0\n virtual_router_id 52\n \
                virtual_ipaddress {\n  192.0.2.101/24\n }\n}\n";
    let imported = convert(
        &[Input {
            file: "k".into(),
            text: text.into(),
        }],
        &Options::default(),
    )
    .unwrap();
    let config = Config::parse("t.toml", &imported.toml).unwrap();
    assert!(config.groups[0].vmac, "{}", imported.toml);
    assert!(!config.groups[1].vmac, "{}", imported.toml);
    assert!(has_note(
        &imported.notes,
        "k",
        4,
        "vipd names the link itself"
    ));
    assert!(
        !imported
            .notes
            .iter()
            .any(|n| n.message.contains("no virtual MAC"))
    );
}
