//! A hostile policy for vane's tests: it misbehaves in the way its config string names, and each
//! misbehaviour has a well-behaved twin, so a test can run the pair side by side.
//!
//! Violations (each the plugin's answer for every pick unless said otherwise):
//! - `trap`: panics;
//! - `panic-first`: panics on the first pick of an instance (and vane discards a trapped
//!   instance, so the next pick meets a fresh one);
//! - `panic-every:N`: panics on every N-th pick of an instance;
//! - `slow-panic:N`: does N rounds of arithmetic, then panics (as a Python exception spends
//!   milliseconds formatting its traceback before it traps);
//! - `decline`: answers no backend;
//! - `out-of-range`: answers an index past the last backend;
//! - `pick-first`: always answers backend 0, eligible or not;
//! - `refuse`: refuses the load in `configure`;
//! - `loop`: never returns from pick; `loop-configure`: never returns from configure;
//! - `grow`: allocates without end;
//! - `sleep`: sleeps 50 ms through the WASI clock;
//! - `exit`: calls `exit(3)`, as a program would;
//! - `flood:BYTES`: writes BYTES to stdout in 1000-byte lines, then picks;
//! - `capabilities:IP:PORT`: tries to open a file, read the environment, the arguments and
//!   stdin, and connect a socket to IP:PORT; picks backend 1 if any of them worked, else 0;
//! - `loop-observe`: asks for feedback and never returns from `observe`; picks as `learn`.
//!
//! Their twins:
//! - `behave` (or anything else): picks the first eligible backend;
//! - `busy:N`: does N rounds of arithmetic, then picks (bounded work within a deadline);
//! - `hold:MIB`: allocates MIB mebibytes once and keeps them (under the memory cap);
//! - `clock`: reads the WASI clocks without sleeping, then picks;
//! - `print`: writes one line to stdout and one to stderr, then picks;
//! - `learn`: asks for feedback, and picks the first eligible backend whose last outcome it
//!   observed was not a 5xx or a failure to answer;
//! - `forgiving`: asks for the recent counts, and picks the first eligible backend with no
//!   recent failures (else the first eligible one).
//!
//! And two that show what a pick is told:
//! - `by-path`: asks for the request target and picks backend `path length % backends`;
//! - `no-target`: asks for nothing and picks backend 1 if the request came without a target
//!   (as it must), else backend 0.

use std::hint::black_box;
use std::net::SocketAddrV4;

use vane_plugin_kit::{BackendInfo, Columns, Needs, Outcome, Policy, Request, States};

/// The way this plugin behaves, from its config string.
enum Mode {
    Trap,
    PanicFirst,
    PanicEvery(u64),
    Decline,
    OutOfRange(u32),
    PickFirst,
    Loop,
    Grow,
    Sleep,
    Exit,
    Flood(usize),
    Capabilities(SocketAddrV4),
    Behave,
    Busy(u64),
    SlowPanic(u64),
    Hold(usize),
    Clock,
    Print,
    ByPath,
    NoTarget,
    Learn,
    LoopObserve,
    Forgiving,
}

struct Misbehave {
    mode: Mode,
    picks: u64,
    held: Vec<u8>,
    /// In `learn` mode: whether each backend's last observed outcome was a failure.
    failing: Vec<bool>,
}

impl Policy for Misbehave {
    fn configure(config: &str, backends: &[BackendInfo]) -> Result<(Self, Needs), String> {
        let (name, argument) = config.split_once(':').unwrap_or((config, ""));
        let number = || {
            argument
                .parse::<u64>()
                .map_err(|_| format!("{name} needs a number, not {argument:?}"))
        };
        let mode = match name {
            "trap" => Mode::Trap,
            "panic-first" => Mode::PanicFirst,
            "panic-every" => Mode::PanicEvery(number()?.max(1)),
            "decline" => Mode::Decline,
            "out-of-range" => Mode::OutOfRange(backends.len() as u32 + 5),
            "pick-first" => Mode::PickFirst,
            "loop" => Mode::Loop,
            "loop-configure" => loop {
                black_box(backends);
            },
            "grow" => Mode::Grow,
            "sleep" => Mode::Sleep,
            "exit" => Mode::Exit,
            "flood" => Mode::Flood(number()? as usize),
            "capabilities" => Mode::Capabilities(
                argument
                    .parse()
                    .map_err(|_| format!("capabilities needs IP:PORT, not {argument:?}"))?,
            ),
            "refuse" => return Err("refused on purpose by the misbehave test plugin".into()),
            "at-most" => {
                let most = number()?;
                if backends.len() as u64 > most {
                    return Err(format!(
                        "at most {most} backends, not {}, by the misbehave test plugin",
                        backends.len()
                    ));
                }
                Mode::Behave
            }
            "busy" => Mode::Busy(number()?),
            "slow-panic" => Mode::SlowPanic(number()?),
            "hold" => Mode::Hold(number()? as usize),
            "clock" => Mode::Clock,
            "print" => Mode::Print,
            "by-path" => Mode::ByPath,
            "no-target" => Mode::NoTarget,
            "learn" => Mode::Learn,
            "loop-observe" => Mode::LoopObserve,
            "forgiving" => Mode::Forgiving,
            _ => Mode::Behave,
        };
        let columns = match mode {
            Mode::Forgiving => Columns::RECENT_REQUESTS | Columns::RECENT_FAILURES,
            _ => Columns::empty(),
        };
        let needs = Needs {
            target: matches!(mode, Mode::ByPath),
            feedback: matches!(mode, Mode::Learn | Mode::LoopObserve),
            ..vane_plugin_kit::needs(columns)
        };
        let plugin = Misbehave {
            mode,
            picks: 0,
            held: Vec::new(),
            failing: vec![false; backends.len()],
        };
        Ok((plugin, needs))
    }

    fn pick(&mut self, request: &Request, states: &States<'_>, ranked: &mut Vec<u32>) {
        self.picks += 1;
        let first_eligible = vane_plugin_kit::eligible(states).next();
        match self.mode {
            Mode::Trap => panic!("misbehave: trapping on purpose"),
            Mode::PanicFirst if self.picks == 1 => panic!("misbehave: first pick"),
            Mode::PanicEvery(n) if self.picks.is_multiple_of(n) => {
                panic!("misbehave: pick {}", self.picks)
            }
            Mode::Decline => return,
            Mode::OutOfRange(index) => return ranked.push(index),
            Mode::PickFirst => return ranked.push(0),
            Mode::Loop => loop {
                black_box(&ranked);
            },
            Mode::Grow => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1; 1 << 20]);
                    black_box(&hoard);
                }
            }
            Mode::Sleep => std::thread::sleep(std::time::Duration::from_millis(50)),
            Mode::Exit => std::process::exit(3),
            Mode::Flood(bytes) => {
                let line = "x".repeat(999);
                for _ in 0..bytes / 1000 {
                    println!("{line}");
                }
            }
            Mode::Capabilities(address) if escaped(address) => return ranked.push(1),
            Mode::Busy(rounds) => {
                let mut x = self.picks;
                for i in 0..rounds {
                    x = black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
                }
            }
            Mode::SlowPanic(rounds) => {
                let mut x = self.picks;
                for i in 0..rounds {
                    x = black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
                }
                panic!("misbehave: slow panic after {rounds} rounds");
            }
            Mode::Hold(mebibytes) => {
                if self.held.is_empty() {
                    self.held = vec![1; mebibytes << 20];
                }
                black_box(&self.held);
            }
            Mode::Clock => {
                black_box(std::time::Instant::now());
                black_box(std::time::SystemTime::now());
            }
            Mode::Print => {
                println!("misbehave: a line on stdout");
                eprintln!("misbehave: a line on stderr");
            }
            Mode::ByPath => {
                if let Some(target) = &request.target {
                    let count = states.len().max(1);
                    ranked.push((target.path.len() % count) as u32);
                }
                return;
            }
            Mode::NoTarget => return ranked.push(u32::from(request.target.is_none())),
            Mode::Learn | Mode::LoopObserve => {
                let mut clean = vane_plugin_kit::eligible(states)
                    .filter(|&index| !self.failing.get(index as usize).copied().unwrap_or(false));
                return ranked.extend(clean.next());
            }
            Mode::Forgiving => {
                let failures = states.column(Columns::RECENT_FAILURES);
                let mut clean = vane_plugin_kit::eligible(states)
                    .filter(|&index| failures[index as usize] == 0);
                return ranked.extend(clean.next().or(first_eligible));
            }
            _ => {}
        }
        ranked.extend(first_eligible);
    }

    fn observe(&mut self, outcomes: &[Outcome]) {
        if let Mode::LoopObserve = self.mode {
            loop {
                black_box(outcomes);
            }
        }
        for outcome in outcomes {
            if let Some(failing) = self.failing.get_mut(outcome.backend as usize) {
                *failing = outcome.status == 0 || outcome.status >= 500;
            }
        }
    }
}

/// Tries every capability vane denies; answers whether any of them worked.
fn escaped(address: SocketAddrV4) -> bool {
    use wasip2::sockets::network::{IpAddressFamily, IpSocketAddress, Ipv4SocketAddress};

    let preopens = wasip2::filesystem::preopens::get_directories();
    let environment = wasip2::cli::environment::get_environment();
    let arguments = wasip2::cli::environment::get_arguments();
    let mut input = String::new();
    let stdin = std::io::stdin()
        .read_line(&mut input)
        .is_ok_and(|read| read > 0);
    let file = std::fs::read("/etc/hostname").is_ok();
    let [a, b, c, d] = address.ip().octets();
    let remote = IpSocketAddress::Ipv4(Ipv4SocketAddress {
        port: address.port(),
        address: (a, b, c, d),
    });
    let network = wasip2::sockets::instance_network::instance_network();
    let connected = wasip2::sockets::tcp_create_socket::create_tcp_socket(IpAddressFamily::Ipv4)
        .is_ok_and(|socket| socket.start_connect(&network, remote).is_ok());
    let datagrams =
        wasip2::sockets::udp_create_socket::create_udp_socket(IpAddressFamily::Ipv4).is_ok();
    !preopens.is_empty()
        || !environment.is_empty()
        || !arguments.is_empty()
        || stdin
        || file
        || connected
        || datagrams
}

vane_plugin_kit::export_policy!(Misbehave);
