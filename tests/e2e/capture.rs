//! Every op, IPv4 and IPv6, TCP and UDP, AF_UNIX: the exact events a workload causes.

use netev_tests::{assert_fields, root_or_skip};
use serde_json::{json, Value};

use crate::{capture, load_bin, one, ops};

fn tcp(scenario: &str, family: &str, addr: &str) {
    if !root_or_skip(scenario) {
        return;
    }
    let (facts, got) = capture(scenario, &[scenario]);
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

    let sockets = ops(&got, pid, "socket");
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
        let ev = one(&got, pid, op);
        assert_fields(ev, &common);
        assert_fields(ev, want);
    }
    let accept = one(&got, pid, "accept");
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

#[test]
fn tcp4_listen_connect_accept() {
    tcp("tcp4", "inet", "127.0.0.1");
}

#[test]
fn tcp6_listen_connect_accept() {
    tcp("tcp6", "inet6", "::1");
}

fn udp(scenario: &str, family: &str, addr: &str) {
    if !root_or_skip(scenario) {
        return;
    }
    let (facts, got) = capture(scenario, &[scenario]);
    let pid = &facts["pid"];
    let common = [
        ("family", json!(family)),
        ("type", json!("dgram")),
        ("proto", json!("udp")),
    ];

    assert_eq!(ops(&got, pid, "socket").len(), 2);
    let binds = ops(&got, pid, "bind");
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
        let ev = one(&got, pid, op);
        assert_fields(ev, &common);
        assert_fields(ev, want);
    }
}

#[test]
fn udp4_sendto_recvfrom() {
    udp("udp4", "inet", "127.0.0.1");
}

#[test]
fn udp6_sendto_recvfrom() {
    udp("udp6", "inet6", "::1");
}

#[test]
fn bind_to_a_chosen_port() {
    if !root_or_skip("bind_to_a_chosen_port") {
        return;
    }
    let port = {
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let (facts, got) = capture("bind", &["bind", &port.to_string()]);
    assert_eq!(facts["port"], port);
    let bind = one(&got, &facts["pid"], "bind");
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

#[test]
fn unix_socket_is_reported_with_its_family() {
    if !root_or_skip("unix_socket_is_reported_with_its_family") {
        return;
    }
    let (facts, got) = capture("unix", &["unix"]);
    let sock = one(&got, &facts["pid"], "socket");
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
