//! Realistic events for the store: 30 programs, each with its user, kind of
//! traffic, ports and command line; the popular ones far busier than the
//! rest (weights 1/rank), talking to 10,000 addresses of which a few
//! hundred get most of the traffic. Deterministic for a seed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use chrono::{DateTime, Utc};
use netev_event::{Event, Family, Op, Proto, SockType, Verdict};

/// What a program mostly does on the network.
#[derive(Clone, Copy)]
enum Kind {
    /// TCP client: socket + connect.
    Connect,
    /// UDP client: sendmsg (DNS, NTP, syslog…).
    Send,
    /// TCP server: accept from clients.
    Accept,
}

struct Program {
    exe: &'static str,
    comm: &'static str,
    user: &'static str,
    uid: u32,
    kind: Kind,
    /// Remote ports (Connect, Send) or the local listening port (Accept).
    ports: &'static [u16],
    cmdline: &'static str,
}

const fn p(
    exe: &'static str,
    comm: &'static str,
    (user, uid): (&'static str, u32),
    kind: Kind,
    ports: &'static [u16],
    cmdline: &'static str,
) -> Program {
    Program {
        exe,
        comm,
        user,
        uid,
        kind,
        ports,
        cmdline,
    }
}

const ROOT: (&str, u32) = ("root", 0);
const ALICE: (&str, u32) = ("alice", 1000);
const WWW: (&str, u32) = ("www-data", 33);

/// In order of popularity.
const PROGRAMS: [Program; 30] = [
    p("/usr/lib/firefox-esr/firefox-esr", "firefox-esr", ALICE, Kind::Connect, &[443, 443, 443, 80], "/usr/lib/firefox-esr/firefox-esr -contentproc -childID 12 -isForBrowser -prefsLen 31234 tab"),
    p("/usr/lib/systemd/systemd-resolved", "systemd-resolve", ("systemd-resolve", 990), Kind::Send, &[53], "/lib/systemd/systemd-resolved"),
    p("/usr/sbin/nginx", "nginx", WWW, Kind::Accept, &[443, 80], "nginx: worker process"),
    p("/usr/bin/python3.11", "python3", ALICE, Kind::Connect, &[443, 8080, 5432], "python3 /srv/app/worker.py --queue default --concurrency 8"),
    p("/usr/bin/node", "node", WWW, Kind::Connect, &[443, 6379, 5432], "node /srv/web/server.js"),
    p("/usr/lib/postgresql/15/bin/postgres", "postgres", ("postgres", 101), Kind::Accept, &[5432], "postgres: 15/main: app appdb 10.0.0.7(51234) idle"),
    p("/usr/bin/curl", "curl", ALICE, Kind::Connect, &[443, 80], "curl -fsSL https://deb.example.org/dists/bookworm/InRelease"),
    p("/usr/lib/jvm/java-17-openjdk-amd64/bin/java", "java", ("tomcat", 997), Kind::Connect, &[443, 5432, 9092], "java -Xmx2g -jar /opt/app/service.jar --spring.profiles.active=prod"),
    p("/usr/bin/redis-server", "redis-server", ("redis", 109), Kind::Accept, &[6379], "/usr/bin/redis-server 127.0.0.1:6379"),
    p("/usr/sbin/named", "named", ("bind", 108), Kind::Send, &[53], "/usr/sbin/named -f -u bind"),
    p("/usr/bin/dockerd", "dockerd", ROOT, Kind::Connect, &[443], "/usr/bin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock"),
    p("/usr/bin/prometheus", "prometheus", ("prometheus", 998), Kind::Connect, &[9100, 9090, 9187], "/usr/bin/prometheus --config.file=/etc/prometheus/prometheus.yml"),
    p("/usr/lib/thunderbird/thunderbird", "thunderbird", ALICE, Kind::Connect, &[993, 465, 443], "/usr/lib/thunderbird/thunderbird"),
    p("/usr/sbin/sshd", "sshd", ROOT, Kind::Accept, &[22], "sshd: alice [priv]"),
    p("/usr/bin/kubelet", "kubelet", ROOT, Kind::Connect, &[6443, 10250, 443], "/usr/bin/kubelet --config=/var/lib/kubelet/config.yaml --kubeconfig=/etc/kubernetes/kubelet.conf"),
    p("/usr/sbin/mariadbd", "mariadbd", ("mysql", 110), Kind::Accept, &[3306], "/usr/sbin/mariadbd"),
    p("/usr/bin/containerd", "containerd", ROOT, Kind::Connect, &[443], "/usr/bin/containerd"),
    p("/usr/sbin/chronyd", "chronyd", ("_chrony", 106), Kind::Send, &[123], "/usr/sbin/chronyd -F 1"),
    p("/usr/bin/git", "git", ALICE, Kind::Connect, &[443, 22], "git fetch --prune origin"),
    p("/usr/sbin/rsyslogd", "rsyslogd", ROOT, Kind::Send, &[514], "/usr/sbin/rsyslogd -n -iNONE"),
    p("/usr/bin/ruby3.1", "ruby", ("td-agent", 996), Kind::Connect, &[443, 24224], "ruby /usr/local/bin/fluentd -c /etc/fluent/fluent.conf"),
    p("/usr/bin/prometheus-node-exporter", "prometheus-node", ("prometheus", 998), Kind::Accept, &[9100], "/usr/bin/prometheus-node-exporter"),
    p("/usr/sbin/avahi-daemon", "avahi-daemon", ("avahi", 105), Kind::Send, &[5353], "avahi-daemon: running [host.local]"),
    p("/usr/lib/apt/methods/http", "http", ("_apt", 42), Kind::Connect, &[80, 443], "/usr/lib/apt/methods/http"),
    p("/usr/bin/ssh", "ssh", ALICE, Kind::Connect, &[22], "ssh -o BatchMode=yes backup@10.0.3.4"),
    p("/usr/bin/gnome-shell", "gnome-shell", ALICE, Kind::Connect, &[443], "/usr/bin/gnome-shell"),
    p("/usr/sbin/NetworkManager", "NetworkManager", ROOT, Kind::Send, &[67, 53], "/usr/sbin/NetworkManager --no-daemon"),
    p("/usr/bin/wget", "wget", ("bob", 1001), Kind::Connect, &[443, 80], "wget -q -O- https://example.com/status"),
    p("/usr/sbin/cupsd", "cupsd", ROOT, Kind::Accept, &[631], "/usr/sbin/cupsd -l"),
    p("/usr/bin/rsync", "rsync", ROOT, Kind::Connect, &[873, 22], "rsync -a --delete /srv/data/ backup::data/"),
];

/// Distinct remote addresses.
const ADDRESSES: u64 = 10_000;

/// The programs' executables, most popular first.
pub fn exes() -> impl Iterator<Item = &'static str> {
    PROGRAMS.iter().map(|p| p.exe)
}

/// splitmix64: small, fast, good enough to spread test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
}

/// What the stream looks like.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shape {
    /// A host's mix: 30 programs, 10,000 addresses, many ports (every
    /// batch updates thousands of `event_counts` rows).
    Varied,
    /// What `netev-load loop udp` makes: one program sending to one
    /// address and port (a batch updates four `event_counts` rows).
    Flood,
}

/// Makes events.
pub struct Generator {
    rng: Rng,
    shape: Shape,
    /// Cumulative popularity of `PROGRAMS`, ending at 1.
    cumulative: Vec<f64>,
}

impl Generator {
    pub fn new(seed: u64, shape: Shape) -> Generator {
        let weights: Vec<f64> = (1..=PROGRAMS.len()).map(|rank| 1.0 / rank as f64).collect();
        let total: f64 = weights.iter().sum();
        let cumulative = weights
            .iter()
            .scan(0.0, |acc, w| {
                *acc += w / total;
                Some(*acc)
            })
            .collect();
        Generator {
            rng: Rng(seed),
            shape,
            cumulative,
        }
    }

    /// The index in [`exes`] of the program the next event will be from.
    fn program(&mut self) -> usize {
        let u = self.rng.unit();
        self.cumulative
            .iter()
            .position(|&c| u < c)
            .unwrap_or(PROGRAMS.len() - 1)
    }

    /// A remote address: index `ADDRESSES * u³`, so that a few hundred
    /// addresses get most events; one in seven is IPv6.
    fn address(&mut self) -> IpAddr {
        let u = self.rng.unit();
        let i = ((u * u * u) * ADDRESSES as f64) as u64;
        let h = Rng(i ^ 0x5eed).next();
        if i % 7 == 3 {
            IpAddr::V6(Ipv6Addr::new(
                0x2001,
                0xdb8,
                (h >> 48) as u16,
                (h >> 32) as u16,
                0,
                0,
                0,
                (h as u16) | 1,
            ))
        } else {
            // Spread over public-looking /8s, never 0, 10, 127 or ≥ 224.
            let a = 11 + (h % 200) as u8;
            IpAddr::V4(Ipv4Addr::new(
                a,
                (h >> 8) as u8,
                (h >> 16) as u8,
                1 + (h >> 24) as u8 % 254,
            ))
        }
    }

    /// One event at `ts`, and the index in [`exes`] of its program.
    pub fn event(&mut self, ts: DateTime<Utc>) -> (usize, Event) {
        if self.shape == Shape::Flood {
            return (0, flood(ts));
        }
        let which = self.program();
        let prog = &PROGRAMS[which];
        let raddr = self.address();
        let v6 = raddr.is_ipv6();
        let ephemeral = 32768 + self.rng.below(28232) as u16;
        let mut ev = Event::new(Op::Connect);
        ev.ts = ts;
        ev.pid = 1000 + which as u32 * 97 + self.rng.below(4) as u32;
        ev.tid = ev.pid + self.rng.below(8) as u32;
        ev.ppid = if matches!(prog.kind, Kind::Accept) {
            ev.pid - 1
        } else {
            1
        };
        ev.uid = prog.uid;
        ev.gid = prog.uid;
        ev.user = Some(prog.user.to_string());
        ev.comm = prog.comm.to_string();
        ev.exe = Some(prog.exe.to_string());
        ev.cmdline = Some(prog.cmdline.to_string());
        ev.family = if v6 { Family::INET6 } else { Family::INET };
        let local: IpAddr = if v6 {
            "2001:db8:ffff::2".parse().expect("an address")
        } else {
            Ipv4Addr::new(10, 0, 0, 2).into()
        };
        ev.ret = Some(0);
        match prog.kind {
            Kind::Connect => {
                ev.sock_type = SockType::STREAM;
                ev.proto = Some(Proto::TCP);
                if self.rng.below(10) == 0 {
                    // the socket() before a connect: no addresses yet
                    ev.op = Op::Socket;
                    ev.ret = Some(40 + self.rng.below(200) as i32);
                } else {
                    ev.laddr = Some(local);
                    ev.lport = Some(ephemeral);
                    ev.raddr = Some(raddr);
                    ev.rport = Some(self.rng.pick(prog.ports));
                    if self.rng.below(50) == 0 {
                        ev.ret = Some(-111); // ECONNREFUSED
                    }
                }
            }
            Kind::Send => {
                ev.op = Op::Sendmsg;
                ev.sock_type = SockType::DGRAM;
                ev.proto = Some(Proto::UDP);
                ev.laddr = Some(local);
                ev.lport = Some(ephemeral);
                ev.raddr = Some(raddr);
                ev.rport = Some(self.rng.pick(prog.ports));
                ev.ret = Some(20 + self.rng.below(500) as i32);
            }
            Kind::Accept => {
                ev.op = Op::Accept;
                ev.sock_type = SockType::STREAM;
                ev.proto = Some(Proto::TCP);
                ev.laddr = Some(local);
                ev.lport = Some(self.rng.pick(prog.ports));
                ev.raddr = Some(raddr);
                ev.rport = Some(ephemeral);
                ev.ret = Some(8 + self.rng.below(1000) as i32);
            }
        }
        match self.rng.below(200) {
            0 | 1 => {
                ev.verdict = Verdict::Deny;
                ev.rule = Some(1 + self.rng.below(40) as u32);
                ev.ret = Some(-1); // EPERM
            }
            2 => ev.verdict = Verdict::Observe,
            _ => {}
        }
        (which, ev)
    }
}

/// One `sendto()` of `netev-load loop udp`, as netevd reports it.
fn flood(ts: DateTime<Utc>) -> Event {
    let mut ev = Event::new(Op::Sendmsg);
    ev.ts = ts;
    ev.pid = 31337;
    ev.tid = 31337;
    ev.ppid = 31330;
    ev.user = Some("root".into());
    ev.comm = "netev-load".into();
    ev.exe = Some("/work/main/target/release/netev-load".into());
    ev.cmdline = Some("/work/main/target/release/netev-load loop udp --iterations 4000000".into());
    ev.family = Family::INET;
    ev.sock_type = SockType::DGRAM;
    ev.proto = Some(Proto::UDP);
    ev.laddr = Some(Ipv4Addr::LOCALHOST.into());
    ev.lport = Some(41002);
    ev.raddr = Some(Ipv4Addr::LOCALHOST.into());
    ev.rport = Some(41001);
    ev.ret = Some(16);
    ev
}
