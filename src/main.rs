//! Command-line entry point: parses arguments, sets up logging and the runtime, and hands over to
//! `app` (serve), `cli` (check, explain), `policy_diff` (plan) or `suggest`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use egress_gateway::plan::Listener;
use egress_gateway::{app, busy_poll, cli, config, policy_diff, suggest};
use tracing_subscriber::EnvFilter;

/// The single way out of a multi-tenant cluster: per-namespace ServiceEntry allowlists for
/// CONNECT, SNI and HTTP egress.
#[derive(Parser)]
#[command(name = "egress-gateway", version, about)]
struct Args {
    /// Log format on stderr (level from RUST_LOG, default info).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Serve traffic.
    Run {
        /// Config directory (gateway.yaml + serviceentries/).
        #[arg(long, default_value = "config")]
        config: PathBuf,
    },
    /// Validate the config and print a per-namespace summary; exit 1 if invalid.
    Check {
        /// Config directory.
        #[arg(long, default_value = "config")]
        config: PathBuf,
    },
    /// Dry-run the planner for one request, exactly as the listener would plan it; print the
    /// plan; exit 0 on ALLOW or AUDIT, 1 on DENY.
    Explain {
        /// Config directory.
        #[arg(long, default_value = "config")]
        config: PathBuf,
        /// Listener the request arrives on: connect, connect_tls, sni or http.
        #[arg(long, default_value = "connect")]
        listener: Listener,
        /// Tenant namespace, taken on trust (or give --presented).
        #[arg(long, required_unless_present = "presented")]
        namespace: Option<String>,
        /// What the connection presents: a SPIFFE ID (connect_tls) or a source IP (other
        /// listeners); the tenant is then identified exactly as the listener would.
        #[arg(long, conflicts_with = "namespace")]
        presented: Option<String>,
        /// Destination host (name or IP literal).
        #[arg(long)]
        host: String,
        /// Destination port.
        #[arg(long, default_value_t = 443)]
        port: u16,
        /// ClientHello SNI; repeat for a hello naming several (on the sni listener, defaults
        /// to --host).
        #[arg(long)]
        sni: Vec<String>,
        /// The ClientHello carries Encrypted Client Hello.
        #[arg(long)]
        ech: bool,
    },
    /// Compare two config trees on their compiled policies: what a change opens, closes and risks.
    ///
    /// Per namespace: the (host or address, port, protocol) pairs the head tree opens and closes
    /// against the base tree, risky widenings and newly redundant entries. Exit status: 0 when
    /// both trees are valid and the --fail-on condition does not hold, 1 when it holds, 2 when
    /// either tree is invalid (its problems printed as `check` prints them).
    Plan {
        /// Config directory before the change.
        #[arg(long)]
        base: PathBuf,
        /// Config directory after the change.
        #[arg(long)]
        head: PathBuf,
        /// Output: Markdown for a pull-request comment, or JSON.
        #[arg(long, value_enum, default_value_t = policy_diff::Format::Markdown)]
        format: policy_diff::Format,
        /// The gateway's JSON access log (plain or gzip; repeat or list several): every flow in
        /// it is replayed against both trees, and the flows whose outcome flips are reported.
        #[arg(long, num_args = 1..)]
        access_log: Vec<PathBuf>,
        /// Exit 1 when any risk is found (risk), anything is closed (close), anything changes at
        /// all (any), or a replayed flow base lets through is denied by head (break, needs
        /// --access-log); without it, a valid pair of trees always exits 0.
        #[arg(long, value_enum)]
        fail_on: Option<policy_diff::FailOn>,
    },
    /// Write ServiceEntry files for what the access log shows was denied as not allowlisted (or
    /// let through only by audit mode), and list the entries no allowed flow matched.
    ///
    /// One folder per namespace, one file per registrable domain (Public Suffix List), each with
    /// its evidence in a comment; names collapse to `*.suffix` only with --wildcard-min distinct
    /// names under it, never at or above a public suffix. Exit status: 0 when the files are
    /// written, 2 when --config, --namespace or --out is unusable.
    Suggest {
        /// The gateway's JSON access log (plain or gzip; repeat or list several).
        #[arg(long, num_args = 1.., required = true)]
        access_log: Vec<PathBuf>,
        /// Only suggest for this namespace.
        #[arg(long)]
        namespace: Option<String>,
        /// Directory the files are written under, as <namespace>/<domain>.yaml.
        #[arg(long, default_value = "suggested")]
        out: PathBuf,
        /// The current config directory: what it allows is not suggested, and its entries that
        /// matched no allowed flow are listed as pruning candidates.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Distinct names seen under a suffix before it is suggested as `*.suffix`.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(2..))]
        wildcard_min: u16,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_logging(args.log_format);
    let code = match args.command {
        Command::Run { config } => run(config),
        Command::Check { config } => cli::check(&config),
        Command::Explain {
            config,
            listener,
            namespace,
            presented,
            host,
            port,
            sni,
            ech,
        } => cli::explain(
            &config,
            &cli::ExplainRequest {
                listener,
                namespace: namespace.as_deref(),
                presented: presented.as_deref(),
                host: &host,
                port,
                sni: &sni,
                ech,
            },
        ),
        Command::Plan {
            base,
            head,
            access_log,
            format,
            fail_on,
        } => policy_diff::run(&base, &head, &access_log, format, fail_on),
        Command::Suggest {
            access_log,
            namespace,
            out,
            config,
            wildcard_min,
        } => suggest::run(&suggest::Options {
            access_logs: access_log,
            namespace,
            out,
            config,
            wildcard_min: usize::from(wildcard_min),
        }),
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

fn run(dir: PathBuf) -> i32 {
    let settings = config::load::read_runtime(&dir);
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(threads) = settings.worker_threads {
        builder.worker_threads(threads);
    }
    if !settings.busy_poll.is_zero() {
        busy_poll::install_wake_hook(&mut builder);
    }
    let runtime = match builder.build() {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!(error = %err, "cannot start the runtime");
            return 1;
        }
    };
    if !settings.busy_poll.is_zero() {
        runtime.block_on(async { busy_poll::start(settings.busy_poll) });
    }
    match runtime.block_on(app::run(dir)) {
        Ok(()) => 0,
        Err(err) => {
            tracing::error!("{err:#}");
            1
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
