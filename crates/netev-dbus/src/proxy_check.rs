//! [`Daemon1Proxy`](crate::Daemon1Proxy) against the introspection XML
//! (`dist/dbus/org.netev.Daemon1.xml`, which the end-to-end tests check
//! against the running daemon): every method, signal and property of the
//! XML is in the proxy with the same signatures, and the proxy has nothing
//! the XML lacks.

use std::collections::BTreeMap;

use zbus::Signature;
use zbus_xml::{ArgDirection, Node};

use crate::members::{Kind, Member};

const XML: &str = include_str!("../../../dist/dbus/org.netev.Daemon1.xml");

/// What one side says about a member: argument signatures (in-args of a
/// method, args of a signal; none for a property) and the result (the
/// out-args of a method as zbus returns them, the type of a property;
/// `()` for a signal).
#[derive(Debug, Clone, PartialEq)]
struct Shape {
    args: Vec<String>,
    ret: String,
}

type Members = BTreeMap<(Kind, String), Shape>;

/// `get_status` → `GetStatus`, as zbus names a proxy's items on the bus.
fn pascal(rust_name: &str) -> String {
    rust_name
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        })
        .collect()
}

/// The result of a method as a proxy returns it: nothing for no out-arg,
/// the arg's type for one, a tuple of them for several (zbus reads a reply
/// of several out-args into a tuple).
fn returned(outs: &[String]) -> String {
    match outs {
        [one] => one.clone(),
        many => {
            if many.is_empty() {
                String::new()
            } else {
                format!("({})", many.concat())
            }
        }
    }
}

fn from_xml() -> Members {
    let node = Node::try_from(XML).expect("the introspection XML parses");
    let iface = node
        .interfaces()
        .iter()
        .find(|i| i.name().as_str() == crate::INTERFACE)
        .expect("the XML has org.netev.Daemon1");
    let sig = |s: &Signature| s.to_string();
    let mut m = Members::new();
    for method in iface.methods() {
        let of = |d: ArgDirection| -> Vec<String> {
            method
                .args()
                .iter()
                .filter(|a| a.direction() == Some(d))
                .map(|a| sig(a.ty()))
                .collect()
        };
        let shape = Shape {
            args: of(ArgDirection::In),
            ret: returned(&of(ArgDirection::Out)),
        };
        m.insert((Kind::Method, method.name().to_string()), shape);
    }
    for signal in iface.signals() {
        let shape = Shape {
            args: signal.args().iter().map(|a| sig(a.ty())).collect(),
            ret: String::new(),
        };
        m.insert((Kind::Signal, signal.name().to_string()), shape);
    }
    for prop in iface.properties() {
        // the proxy declares getters only: a writable property would
        // need a setter it does not have
        assert!(
            prop.access().read() && !prop.access().write(),
            "{} is not read-only: teach proxy_check.rs setters",
            prop.name()
        );
        let shape = Shape {
            args: Vec::new(),
            ret: sig(prop.ty()),
        };
        m.insert((Kind::Property, prop.name().to_string()), shape);
    }
    m
}

fn from_proxy(members: Vec<Member>) -> Members {
    members
        .into_iter()
        .map(|p| {
            let shape = Shape {
                args: p.args.iter().map(Signature::to_string).collect(),
                ret: match p.kind {
                    // a signal's `-> zbus::Result<()>` says nothing
                    Kind::Signal => String::new(),
                    _ => p.ret.to_string(),
                },
            };
            ((p.kind, pascal(p.rust_name)), shape)
        })
        .collect()
}

/// Every difference between the two, one line each.
fn differences(xml: &Members, proxy: &Members) -> Vec<String> {
    let mut out = Vec::new();
    for (key, want) in xml {
        match proxy.get(key) {
            None => out.push(format!("{key:?} is in the XML, not in the proxy: {want:?}")),
            Some(got) if got != want => out.push(format!(
                "{key:?} differs: the XML says {want:?}, the proxy {got:?}"
            )),
            Some(_) => {}
        }
    }
    for (key, got) in proxy {
        if !xml.contains_key(key) {
            out.push(format!("{key:?} is in the proxy, not in the XML: {got:?}"));
        }
    }
    out
}

#[test]
fn the_proxy_has_every_member_of_the_introspection_xml_with_its_signature_and_no_other() {
    let xml = from_xml();
    let proxy = from_proxy(crate::daemon1_members());
    assert!(xml.len() > 20, "the XML was read: {xml:#?}");
    let diff = differences(&xml, &proxy);
    assert!(
        diff.is_empty(),
        "Daemon1Proxy and dist/dbus/org.netev.Daemon1.xml disagree:\n{}",
        diff.join("\n")
    );
}

#[test]
fn a_missing_member_or_a_changed_signature_is_found() {
    let xml = from_xml();
    let mut proxy = xml.clone();
    proxy.remove(&(Kind::Property, "Hooks".into()));
    proxy
        .get_mut(&(Kind::Method, "Ask".into()))
        .expect("Ask")
        .ret = "(ss)".into();
    proxy.insert(
        (Kind::Signal, "Extra".into()),
        Shape {
            args: vec![],
            ret: String::new(),
        },
    );
    let diff = differences(&xml, &proxy);
    assert_eq!(diff.len(), 3, "{diff:#?}");
}

#[test]
fn names_and_returns_follow_zbus() {
    assert_eq!(pascal("get_status"), "GetStatus");
    assert_eq!(pascal("version"), "Version");
    assert_eq!(returned(&[]), "");
    assert_eq!(returned(&["u".into()]), "u");
    assert_eq!(returned(&["s".into(), "s".into(), "s".into()]), "(sss)");
}
