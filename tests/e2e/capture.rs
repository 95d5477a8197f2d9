//! Every op, IPv4 and IPv6, TCP and UDP, AF_UNIX: the exact events a workload causes.
//!
//! The workloads run one after another under one netevd (starting netevd
//! is most of what each cost in the matrix's emulated VMs: its programs'
//! verification); each is checked on its own process's events, as when it
//! had a netevd of its own, and a failure names the workload.

use netev_tests::{assert_fields, root_or_skip, Daemon, Stopped, TestCgroup};
use serde_json::{json, Value};

use crate::{load_bin, one, ops};

fn tcp(facts: &Value, got: &Stopped, family: &str, addr: &str) {
    let pid = &facts["pid"];
    let server_port = &facts["server_port"];
    let exe = load_bin().display().to_string();
    let common = [
        ("exe", json!(exe)),
        ("comm", json!("netev-load")),
        ("uid", json!(0)),
        ("user", json!("root")),
        ("family", json!(family)),
        ("type", json!("stream")),
        ("proto", json!("tcp")),
        ("count", json!(1)),
        ("rule", Value::Null),
    ];

    let sockets = ops(got, pid, "socket");
    assert_eq!(
        sockets.len(),
        2,
        "listener and client sockets: {sockets:#?}"
    );
    for s in &sockets {
        assert_fields(s, &common);
        assert_fields(s, &[("verdict", json!("allow")), ("laddr", Value::Null)]);
        assert!(
            s["ret"].as_i64().unwrap() >= 3,
            "socket() returns an fd: {s}"
        );
    }

    let expected = [
        (
            "bind",
            vec![
                ("laddr", json!(addr)),
                ("lport", json!(0)),
                ("raddr", Value::Null),
                ("verdict", json!("allow")),
            ],
        ),
        (
            "listen",
            vec![
                ("laddr", json!(addr)),
                ("lport", server_port.clone()),
                ("ret", json!(0)),
                ("verdict", crate::allowed_where_enforced()),
            ],
        ),
        (
            "connect",
            vec![
                ("raddr", json!(addr)),
                ("rport", server_port.clone()),
                ("ret", Value::Null),
                ("verdict", json!("allow")),
            ],
        ),
        (
            "accept",
            vec![
                ("laddr", json!(addr)),
                ("lport", server_port.clone()),
                ("raddr", json!(addr)),
                ("rport", facts["client_port"].clone()),
                ("verdict", crate::allowed_where_enforced()),
            ],
        ),
    ];
    for (op, want) in &expected {
        let ev = one(got, pid, op);
        assert_fields(ev, &common);
        assert_fields(ev, want);
    }
    let accept = one(got, pid, "accept");
    assert!(
        accept["ret"].as_i64().unwrap() >= 3,
        "accept() returns an fd: {accept}"
    );

    // and in the order the program made them
    let order: Vec<&str> = got
        .of_pid(pid.as_u64().unwrap())
        .iter()
        .map(|e| e["op"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        ["socket", "bind", "listen", "socket", "connect", "accept"]
    );
}

fn udp(facts: &Value, got: &Stopped, family: &str, addr: &str) {
    let pid = &facts["pid"];
    let common = [
        ("family", json!(family)),
        ("type", json!("dgram")),
        ("proto", json!("udp")),
    ];

    assert_eq!(ops(got, pid, "socket").len(), 2);
    let binds = ops(got, pid, "bind");
    assert_eq!(binds.len(), 2, "{binds:#?}");
    for b in binds {
        assert_fields(b, &common);
        assert_fields(b, &[("laddr", json!(addr)), ("lport", json!(0))]);
    }
    let (recv_port, send_port) = (facts["recv_port"].clone(), facts["send_port"].clone());
    let expected = [
        (
            "sendmsg",
            vec![
                ("raddr", json!(addr)),
                ("rport", recv_port.clone()),
                ("laddr", json!(addr)),
                ("lport", send_port.clone()),
                ("verdict", json!("allow")),
                ("count", json!(1)),
            ],
        ),
        (
            "recvmsg",
            vec![
                ("raddr", json!(addr)),
                ("rport", send_port),
                ("laddr", json!(addr)),
                ("lport", recv_port),
                ("verdict", json!("observe")),
            ],
        ),
    ];
    for (op, want) in &expected {
        let ev = one(got, pid, op);
        assert_fields(ev, &common);
        assert_fields(ev, want);
    }
}

/// `bind PORT`: the port asked for is the one reported.
fn bind_to_a_chosen_port(facts: &Value, got: &Stopped, port: u16) {
    assert_eq!(facts["port"], port);
    let bind = one(got, &facts["pid"], "bind");
    assert_fields(
        bind,
        &[
            ("laddr", json!("127.0.0.1")),
            ("lport", json!(port)),
            ("family", json!("inet")),
            ("proto", json!("udp")),
        ],
    );
}

fn unix_socket_is_reported_with_its_family(facts: &Value, got: &Stopped) {
    let sock = one(got, &facts["pid"], "socket");
    assert_fields(
        sock,
        &[
            ("family", json!("unix")),
            ("type", json!("stream")),
            ("proto", Value::Null),
            ("ret", facts["fd"].clone()),
            ("verdict", crate::allowed_where_enforced()),
            ("laddr", Value::Null),
            ("raddr", Value::Null),
        ],
    );
}

#[test]
fn each_workload_gives_exactly_the_events_it_causes() {
    if !root_or_skip("each_workload_gives_exactly_the_events_it_causes") {
        return;
    }
    let port = {
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let port_s = port.to_string();
    let cg = TestCgroup::new("capture");
    let daemon = Daemon::start(&cg, &[]);
    let run = |args: &[&str]| cg.run_json(&load_bin(), args);
    let (tcp4, tcp6) = (run(&["tcp4"]), run(&["tcp6"]));
    let (udp4, udp6) = (run(&["udp4"]), run(&["udp6"]));
    let bind = run(&["bind", &port_s]);
    let unix = run(&["unix"]);
    let got = daemon.stop();
    let got = &got;
    crate::check_each(vec![
        (
            "tcp4: listen, connect, accept".into(),
            Box::new(|| tcp(&tcp4, got, "inet", "127.0.0.1")),
        ),
        (
            "tcp6: listen, connect, accept".into(),
            Box::new(|| tcp(&tcp6, got, "inet6", "::1")),
        ),
        (
            "udp4: sendto, recvfrom".into(),
            Box::new(|| udp(&udp4, got, "inet", "127.0.0.1")),
        ),
        (
            "udp6: sendto, recvfrom".into(),
            Box::new(|| udp(&udp6, got, "inet6", "::1")),
        ),
        (
            format!("bind to a chosen port ({port})"),
            Box::new(|| bind_to_a_chosen_port(&bind, got, port)),
        ),
        (
            "unix socket".into(),
            Box::new(|| unix_socket_is_reported_with_its_family(&unix, got)),
        ),
    ]);
}
