//! The `vane` command: `run` serves a config, `check` validates one (plugin included), `demo`
//! starts three loopback backends with vane and the least-conn plugin in front of them,
//! `shadow` compares a running vane's shadow policy with its active one, `plugin new` writes a
//! policy project and `plugin test` runs a plugin offline against simulated backends;
//! `completions` and `man` print what a packager installs beside the binary.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use std::time::Duration;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};
use http::{HeaderName, HeaderValue};
use tracing_subscriber::EnvFilter;
use vane::app;
use vane::backend::BackendSet;
use vane::clock::Clock;
use vane::config::{Config, PluginLimits, PolicyConfig, parse_size};
use vane::policy::Policy;
use vane::scaffold::{self, Language};
use vane::simulate::{Scenario, Simulation};

/// vane: a programmable HTTP load balancer whose policy is a sandboxed WebAssembly component.
#[derive(Debug, Parser)]
#[command(version = vane::plugin::VERSION_LINE, about)]
struct Cli {
    /// How log lines are written to stderr: `text` for people, `json` (one object per line)
    /// for log shippers.
    #[arg(
        long,
        global = true,
        value_enum,
        ignore_case = true,
        default_value_t = LogFormat::Text,
        env = "VANE_LOG_FORMAT"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// The formats `--log-format` offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// One line per event, for people (colored on a terminal).
    Text,
    /// One JSON object per event, its fields at the top level, for log shippers.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve traffic as the config file says.
    Run {
        /// The config file (TOML).
        #[arg(short, long, default_value = "vane.toml")]
        config: PathBuf,
    },
    /// Check a config file and load its plugin (compile, instantiate, configure), then exit.
    Check {
        /// The config file (TOML).
        #[arg(short, long, default_value = "vane.toml")]
        config: PathBuf,
    },
    /// Start three demo backends on loopback and vane in front of them with the least-conn plugin.
    Demo {
        /// Where vane listens.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Where the admin API listens.
        #[arg(long, default_value = "127.0.0.1:9901")]
        admin: SocketAddr,
        /// The plugin to balance with (default: the shipped least-conn plugin's build output).
        #[arg(long)]
        plugin: Option<PathBuf>,
        /// The string handed to the plugin's configure, as `[policy] config`.
        #[arg(long, default_value = "")]
        config: String,
        /// The CPU-time budget of one pick, as `[policy] pick_timeout`.
        #[arg(long, default_value = "1ms", value_parser = humantime::parse_duration)]
        pick_timeout: Duration,
        /// The cap on one instance's linear memory, as `[policy] memory_limit`.
        #[arg(long, default_value = "16MiB", value_parser = parse_size)]
        memory_limit: usize,
    },
    /// Show how the shadow policy of a running vane compares with the active one.
    Shadow {
        /// Where that vane's admin API listens.
        #[arg(long, default_value = "127.0.0.1:9901")]
        admin: SocketAddr,
        /// A file holding the admin API's token, if it needs one (`admin_token_file`).
        #[arg(long)]
        token_file: Option<PathBuf>,
    },
    /// Tools for plugin authors.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Print the completion script for a shell (for example `vane completions bash >
    /// /etc/bash_completion.d/vane`).
    Completions {
        /// The shell to complete in.
        shell: clap_complete::Shell,
    },
    /// Print vane's man page (roff), or write one page per command into a folder.
    Man {
        /// Write `vane.1`, `vane-run.1` and the others into this folder instead.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    /// Write a new policy project, ready to build and test, in Rust, Python, JavaScript or C.
    New {
        /// The policy's name: lower-case letters, digits and '-' (as in `fewest-failures`).
        name: String,
        /// The language to write it in.
        #[arg(long = "lang", value_enum)]
        language: Language,
        /// Where to write it (default: a new folder NAME here). Must not exist or be empty.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Run a plugin offline against simulated backends and show how it spread the requests.
    ///
    /// Exits non-zero if the plugin failed any pick (declining is not a failure).
    Test {
        /// The plugin component (.wasm).
        file: PathBuf,
        /// Backends at the start.
        #[arg(long, default_value_t = 3)]
        backends: usize,
        /// Requests to send.
        #[arg(long, default_value_t = 10_000)]
        requests: u64,
        /// How the backends differ, and what changes during the run.
        #[arg(long, value_enum, default_value_t = Scenario::Equal)]
        scenario: Scenario,
        /// The string handed to the plugin's configure.
        #[arg(long, default_value = "")]
        config: String,
        /// Requests in flight on average at the scenario's base latency (10 ms): the load.
        /// By default one per backend at the start.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        concurrency: Option<u32>,
        /// A header every request carries, as `NAME: VALUE` (repeatable).
        #[arg(long = "header", value_parser = Simulation::parse_header)]
        headers: Vec<(HeaderName, HeaderValue)>,
        /// The deadline of one pick, as in `[policy] pick_timeout`.
        #[arg(long, default_value = "1ms", value_parser = humantime::parse_duration)]
        pick_timeout: Duration,
        /// The cap on one instance's linear memory, as in `[policy] memory_limit`.
        #[arg(long, default_value = "16MiB", value_parser = parse_size)]
        memory_limit: usize,
        /// Also write the run as a self-contained HTML page: the shares along the run with
        /// the scenario's events, the pick-time histogram, the fallbacks.
        #[arg(long, value_name = "FILE.html")]
        report: Option<PathBuf>,
        /// Run this plugin too, on the same scenario, and put the two side by side (with the
        /// same --config); a failure of either is a failure of the test.
        #[arg(long, value_name = "OTHER.wasm")]
        compare: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log_format = cli.log_format;
    start_logging(log_format);
    let result = match cli.command {
        Command::Run { config } => run(&config),
        Command::Check { config } => check(&config),
        Command::Demo {
            listen,
            admin,
            plugin,
            config,
            pick_timeout,
            memory_limit,
        } => {
            let policy = PolicyConfig {
                config,
                limits: command_line_limits(pick_timeout, memory_limit),
                ..PolicyConfig::for_plugin(plugin.unwrap_or_else(vane::demo::default_plugin))
            };
            match policy.limits.problem() {
                Some(problem) => Err(anyhow::anyhow!(problem)),
                None => demo(listen, admin, policy),
            }
        }
        Command::Shadow { admin, token_file } => shadow(admin, token_file.as_deref()),
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "vane", &mut script);
            print_all(&script)
        }
        Command::Man { dir } => man(dir.as_deref()),
        Command::Plugin {
            command:
                PluginCommand::New {
                    name,
                    language,
                    dir,
                },
        } => plugin_new(&name, language, dir),
        Command::Plugin {
            command:
                PluginCommand::Test {
                    file,
                    backends,
                    requests,
                    scenario,
                    config,
                    headers,
                    concurrency,
                    pick_timeout,
                    memory_limit,
                    report,
                    compare,
                },
        } => {
            let simulation = Simulation {
                backends,
                requests,
                scenario,
                headers: headers.into_iter().collect(),
                concurrency: concurrency.map(|n| n as usize),
            };
            // A call past its deadline is let run a while, to say how it ends (a Python
            // exception takes longer to report than a pick's deadline).
            let limits = PluginLimits {
                overrun_grace: PluginLimits::TEST_GRACE,
                ..command_line_limits(pick_timeout, memory_limit)
            };
            match limits.problem() {
                Some(problem) => Err(anyhow::anyhow!(problem)),
                None => {
                    let plugins: Vec<PathBuf> = std::iter::once(file).chain(compare).collect();
                    plugin_test(&simulation, &plugins, config, limits, report.as_deref())
                }
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            match log_format {
                LogFormat::Text => eprintln!("error: {err:#}"),
                // One JSON object per line, the error too.
                LogFormat::Json => tracing::error!(error = %format!("{err:#}"), "vane stopped"),
            }
            ExitCode::FAILURE
        }
    }
}

/// Sends `tracing`'s events to stderr in `format`, at the level `RUST_LOG` says (default info).
fn start_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// `vane man`: the man page on stdout, or every command's page written into `dir`.
fn man(dir: Option<&Path>) -> anyhow::Result<()> {
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(Cli::command(), dir)
                .with_context(|| format!("cannot write the man pages into {}", dir.display()))
        }
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut page)?;
            print_all(&page)
        }
    }
}

/// Writes `bytes` to stdout; a reader that stopped early (`vane man | head`) is no error.
fn print_all(bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => Err(err.into()),
        _ => Ok(()),
    }
}

/// `vane plugin new`: writes the project and says what to run next.
fn plugin_new(name: &str, language: Language, dir: Option<PathBuf>) -> anyhow::Result<()> {
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    let files = scaffold::create(&dir, name, language)?;
    println!("wrote {} ({} files):", dir.display(), files.len());
    let shown = files.iter().filter(|f| !f.starts_with("vane-plugin-kit"));
    for file in shown {
        println!("  {}", file.display());
    }
    if files.iter().any(|f| f.starts_with("vane-plugin-kit")) {
        println!("  vane-plugin-kit/ (vane's kit, with the WIT)");
    }
    let flags = language.vane_flags();
    println!("next:");
    println!("  cd {}", shell_quoted(&dir.display().to_string()));
    println!("  bash build.sh");
    println!("  vane plugin test {name}.wasm{flags}");
    println!("  vane demo --plugin {name}.wasm{flags}");
    Ok(())
}

/// `text` as one word for a POSIX shell: as it is if it needs no quoting, else single-quoted.
fn shell_quoted(text: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./+,:@%".contains(c);
    // A word starting with '-' would read as an option: `./-x` is the same folder.
    let text = match text.starts_with('-') {
        true => format!("./{text}"),
        false => text.to_owned(),
    };
    if !text.is_empty() && text.chars().all(plain) {
        text
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    runtime_with(None)
}

/// The async runtime, with `workers` threads (by default one per core).
fn runtime_with(workers: Option<usize>) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = workers {
        builder.worker_threads(workers);
    }
    builder
        .thread_stack_size(vane::plugin::CALLER_STACK_SIZE)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn run(path: &Path) -> anyhow::Result<()> {
    // Read once here for `workers`, which shapes the runtime; `start_from_file` reads it again.
    let workers = Config::load(path)?.workers;
    runtime_with(workers)?.block_on(async {
        // Installed before vane says it is serving, so an early SIGHUP reloads and an early
        // SIGTERM drains, instead of ending the process at once (the default action).
        let mut hangups = hangup_signal();
        let shutdown = shutdown_signal();
        let mut running = app::start_from_file(path).await?;
        let reloader = running.reloader.clone();
        // Reloads run here, one at a time, until the shutdown signal: no task outlives vane.
        tokio::pin!(shutdown);
        let failure = loop {
            tokio::select! {
                () = &mut shutdown => break None,
                failure = running.task_failure() => break Some(failure),
                () = next_hangup(&mut hangups) => {
                    tracing::info!("SIGHUP: reloading the config and the plugin");
                    // The reloader logs the outcome.
                    let _ = reloader.reload().await;
                }
            }
        };
        if let Some(failure) = failure {
            // It answers /live, but part of it no longer works: stop now, and let a
            // supervisor (systemd's Restart=, Kubernetes) start it again.
            tracing::error!(%failure, "vane cannot go on; stopping");
            running.grace_skipper().cancel();
            running.shutdown().await;
            anyhow::bail!("{failure}");
        }
        tracing::info!("shutting down");
        // A second signal cuts the grace short (the drain still lets requests finish).
        let skip_grace = running.grace_skipper();
        let second = shutdown_signal();
        let shutdown = running.shutdown();
        tokio::pin!(shutdown);
        tokio::select! {
            () = &mut shutdown => {}
            () = second => {
                skip_grace.cancel();
                shutdown.await;
            }
        }
        Ok(())
    })
}

fn check(path: &Path) -> anyhow::Result<()> {
    let config = Config::load(path)?;
    // WASI's host functions (clocks, streams) expect a tokio runtime around plugin calls.
    let runtime = runtime()?;
    let _inside = runtime.enter();
    let clock = Clock::new();
    let set = BackendSet::from_config(&config, &clock)?;
    let policy = Policy::load(None, config.policy.as_ref(), &set, &clock)?;
    // vane would serve without it, but a check is where to hear of it.
    if let Some((shadow, reason)) = policy.shadow_failure() {
        anyhow::bail!("the shadow policy {}: {reason}", shadow.display());
    }
    for listener in &config.listeners {
        if let Some(tls) = &listener.tls {
            let certificates = vane::tls::Certificates::load(tls)
                .with_context(|| format!("listener {}", listener.address))?;
            for line in certificates.describe() {
                println!("{}: {line}", listener.address);
            }
        }
    }
    for backend in &config.backends {
        if let Some(transport) = backend.transport() {
            println!("backend {}: {transport}", backend.name);
        }
    }
    for group in &config.groups {
        println!(
            "group {}: members from {}, looked up when vane runs",
            group.name, group.source
        );
    }
    let listen: Vec<String> = config.listeners.iter().map(ToString::to_string).collect();
    let groups = match config.groups.len() {
        0 => String::new(),
        1 => " and 1 group".to_owned(),
        n => format!(" and {n} groups"),
    };
    println!(
        "{}: ok: listen {}, {} backend{}{groups}, policy {}",
        path.display(),
        listen.join(", "),
        set.len(),
        if set.len() == 1 { "" } else { "s" },
        policy.plugin_name().unwrap_or("built-in round-robin"),
    );
    Ok(())
}

fn plugin_test(
    simulation: &Simulation,
    plugins: &[PathBuf],
    config: String,
    limits: PluginLimits,
    html: Option<&Path>,
) -> anyhow::Result<()> {
    // WASI's host functions (clocks, streams) expect a tokio runtime around plugin calls.
    let runtime = runtime()?;
    let _inside = runtime.enter();
    let mut reports = Vec::new();
    for plugin in plugins {
        let policy = PolicyConfig {
            config: config.clone(),
            limits,
            watch: false,
            ..PolicyConfig::for_plugin(plugin.clone())
        };
        let clock = Clock::new();
        let set = simulation.first_set(&clock);
        let policy = Policy::load(None, Some(&policy), &set, &clock)?;
        let report = vane::simulate::run(simulation, &policy, set, &clock);
        if !reports.is_empty() {
            println!();
        }
        print!("{report}");
        reports.push(report);
    }
    if let Some(path) = html {
        let described = format!(
            "{} backends, {} requests, scenario {}, config {config:?}",
            simulation.backends,
            simulation.requests,
            simulation.scenario.label()
        );
        std::fs::write(path, vane::simulate::html_report(&reports, &described))
            .with_context(|| format!("cannot write the report {}", path.display()))?;
        println!("\nreport: {}", path.display());
    }
    let mut failed = Vec::new();
    for (report, plugin) in reports.iter().zip(plugins) {
        // Named when there are two.
        let which = match plugins.len() {
            1 => String::new(),
            _ => format!(" {}", plugin.display()),
        };
        let failures = report.failures();
        if failures > 0 {
            failed.push(format!(
                "the plugin{which} failed {failures} of {} picks",
                simulation.requests
            ));
        }
        let observe_failures = report.observe_failures();
        if observe_failures > 0 {
            failed.push(format!(
                "the plugin{which}'s observe failed {observe_failures} times"
            ));
        }
    }
    match failed.is_empty() {
        true => Ok(()),
        false => anyhow::bail!("{}", failed.join("; ")),
    }
}

/// The plugin limits `vane demo` and `vane plugin test` take on the command line; the total
/// memory cap grows to hold at least one instance.
fn command_line_limits(pick_timeout: Duration, memory_limit: usize) -> PluginLimits {
    PluginLimits {
        pick_timeout,
        memory_limit,
        total_memory_limit: PluginLimits::default().total_memory_limit.max(memory_limit),
        ..PluginLimits::default()
    }
}

fn shadow(admin: SocketAddr, token_file: Option<&Path>) -> anyhow::Result<()> {
    let token = token_file
        .map(|path| {
            std::fs::read_to_string(path)
                .map(|text| text.trim().to_owned())
                .with_context(|| format!("cannot read the admin token file {}", path.display()))
        })
        .transpose()?;
    let policy = runtime()?
        .block_on(vane::admin::shadow_view::fetch_policy(
            admin,
            token.as_deref(),
        ))
        .map_err(anyhow::Error::msg)?;
    print!(
        "{}",
        vane::admin::shadow_view::render(&policy).map_err(anyhow::Error::msg)?
    );
    Ok(())
}

fn demo(listen: SocketAddr, admin: SocketAddr, policy: PolicyConfig) -> anyhow::Result<()> {
    if !policy.plugin.is_file() {
        anyhow::bail!(
            "the demo's plugin {} is missing; build it with \
             `rustup target add wasm32-wasip2 && cargo build --release --target wasm32-wasip2 -p least-conn`",
            policy.plugin.display()
        );
    }
    runtime()?.block_on(async {
        let backends = vane::demo::start_backends(3).await.context("cannot start the demo backends")?;
        let config = vane::demo::config(listen, admin, policy, backends);
        let shutdown = shutdown_signal();
        let running = app::start(&config).await?;
        let address = running.proxy_address;
        let admin = running.admin_address.unwrap_or(admin);
        let policy = running.state.policy();
        let plugin = policy.plugin_name().unwrap_or("the built-in round-robin");
        println!("vane demo: 3 backends behind http://{address}/ balanced by {plugin}. Try:");
        println!("  curl http://{address}/                 # one request; see which backend answered");
        println!("  for i in $(seq 9); do curl -s http://{address}/; done");
        println!("  curl 'http://{address}/?delay=2s' & for i in $(seq 6); do curl -s http://{address}/; done");
        println!("    # least_conn (the default plugin) steers around the backend busy with the slow request");
        println!("  for i in $(seq 9); do curl -s 'http://{address}/?fail=demo-2:0.5'; done");
        println!("    # demo-2 answers 503 to half the requests it gets (fail=0.3: any backend, 30 %)");
        println!("  curl http://{admin}/backends           # health, ejection and live statistics");
        println!("  curl http://{admin}/metrics            # Prometheus metrics");
        println!("Ctrl-C stops it.");
        shutdown.await;
        running.shutdown().await;
        Ok(())
    })
}

/// SIGHUP as a stream, or `None` (with a warning) where it cannot be had.
#[cfg(unix)]
fn hangup_signal() -> Option<tokio::signal::unix::Signal> {
    use tokio::signal::unix::{SignalKind, signal};
    let hangups = signal(SignalKind::hangup());
    if hangups.is_err() {
        tracing::warn!("cannot listen for SIGHUP; reload with POST /reload");
    }
    hangups.ok()
}

/// SIGHUP does not exist here; reload with `POST /reload`.
#[cfg(not(unix))]
fn hangup_signal() -> Option<std::convert::Infallible> {
    None
}

/// The next SIGHUP; never, where there is none.
#[cfg(unix)]
async fn next_hangup(hangups: &mut Option<tokio::signal::unix::Signal>) {
    let received = match hangups {
        Some(hangups) => hangups.recv().await.is_some(),
        None => false,
    };
    if !received {
        std::future::pending::<()>().await;
    }
}

/// SIGHUP does not exist here.
#[cfg(not(unix))]
async fn next_hangup(_: &mut Option<std::convert::Infallible>) {
    std::future::pending().await
}

/// Listens for Ctrl-C and SIGTERM from this call on (so one sent while vane starts is not
/// fatal); the future completes on the first of them.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        if interrupt.is_err() || terminate.is_err() {
            tracing::warn!("cannot listen for SIGINT or SIGTERM");
        }
        async move {
            let next = |signal: std::io::Result<tokio::signal::unix::Signal>| async move {
                match signal {
                    Ok(mut signal) => {
                        signal.recv().await;
                    }
                    Err(_) => std::future::pending().await,
                }
            };
            tokio::select! {
                () = next(interrupt) => {},
                () = next(terminate) => {},
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
