//! The phpeek-pm binary: the manager (`serve`, the default) and its
//! configuration tools.

mod alloc;
mod autoscale;
mod client;
mod import;
mod logging;
mod runs;
mod tui;
mod watch;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use phpeek_config::{Config, ConfigErrors, Env};

#[derive(Parser, Debug)]
#[command(
    name = "phpeek-pm",
    version,
    about = "A process manager for containers"
)]
struct Cli {
    /// The configuration file (else $PHPEEK_PM_CONFIG, ./phpeek-pm.yaml,
    /// /etc/phpeek-pm/phpeek-pm.yaml).
    #[arg(short = 'c', long = "config", global = true, value_name = "PATH")]
    config: Option<PathBuf>,

    /// Base URL of a running manager's API, for client commands
    /// (default: from the config file, else http://127.0.0.1:9180).
    #[arg(long, global = true, env = "PHPEEK_PM_API_URL", value_name = "URL")]
    api: Option<String>,

    /// API token for client commands (default: the config's api_auth).
    #[arg(
        long,
        global = true,
        env = "PHPEEK_PM_API_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,

    #[command(flatten)]
    tls: client::TlsFlags,

    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the manager (the default).
    Serve {
        /// Reload when the config file changes (as `global.watch_config: true`).
        #[arg(long)]
        watch: bool,
    },
    /// Show every instance of a running manager.
    Status {
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Set the number of instances of a process.
    Scale {
        name: String,
        /// The count, or `+N` / `-N` relative to the desired count now.
        #[arg(allow_hyphen_values = true)]
        desired: String,
        /// Wait (with a progress bar) until that many instances run.
        #[arg(long)]
        wait: bool,
        /// Give up waiting after this many seconds.
        #[arg(long, default_value_t = 300, value_name = "SECONDS")]
        timeout: u64,
    },
    /// Start a process's stopped instances, or one instance.
    Start { name: String },
    /// Stop a process or one instance (it stays stopped).
    Stop { name: String },
    /// Restart a process (rolling) or one instance.
    Restart { name: String },
    /// Show a process's autoscaler, or enable (`on`) or pause (`off`) it.
    Autoscale {
        name: String,
        #[arg(value_parser = ["on", "off"])]
        set: Option<String>,
    },
    /// Run a scheduled or one-shot process now.
    Run { name: String },
    /// Show the runs of a scheduled or one-shot process, newest first.
    Runs {
        name: String,
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show the recent output of a process or an instance.
    Logs {
        name: String,
        /// Keep printing new lines.
        #[arg(short = 'f', long)]
        follow: bool,
        /// How many lines to show first.
        #[arg(short = 'n', long, default_value_t = 100)]
        lines: usize,
    },
    /// Make the manager re-read its config file.
    Reload,
    /// A live dashboard: processes, instances, restarts, CPU and memory,
    /// with keys to scale, restart and stop.
    Tui,
    /// Print a shell completion script.
    Completions { shell: clap_complete::Shell },
    /// Validate the configuration and print it as the manager would use it.
    CheckConfig,
    /// Print the JSON Schema of the configuration file.
    Schema,
    /// Print the version.
    Version,
    /// Print another manager's config as an equivalent phpeek-pm YAML.
    #[command(subcommand)]
    Import(ImportCmd),
}

#[derive(Subcommand, Debug)]
enum ImportCmd {
    /// A supervisord.conf: [program:x] sections become processes.
    Supervisord { file: PathBuf },
    /// A Procfile: each `name: command` line becomes a process.
    Procfile { file: PathBuf },
}

/// Prints the imported config; an unreadable source is one line, exit 2.
fn run_import(cmd: &ImportCmd) -> ExitCode {
    let (draft, file) = match cmd {
        ImportCmd::Supervisord { file } => (import::import_supervisord(file), file),
        ImportCmd::Procfile { file } => (import::import_procfile(file), file),
    };
    match draft {
        Ok(draft) => {
            let warnings = draft.warnings();
            if warnings > 0 {
                let _ = writeln!(
                    std::io::stderr().lock(),
                    "phpeek-pm: {}: {warnings} setting(s) not mapped; see the `# warning:` comments",
                    file.display()
                );
            }
            emit(&draft.render())
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr().lock(), "phpeek-pm: {e}");
            ExitCode::from(2)
        }
    }
}

fn print_errors(errors: &ConfigErrors) {
    let _ = writeln!(std::io::stderr().lock(), "{errors}");
}

/// Writes to stdout; a reader that went away (`| head`) is not an error.
fn emit(text: &str) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(
                std::io::stderr().lock(),
                "phpeek-pm: cannot write the output: {e}"
            );
            ExitCode::from(1)
        }
    }
}

fn load(cli: &Cli) -> Result<(Config, PathBuf), ConfigErrors> {
    let env = Env::from_process();
    let path = phpeek_config::find_config_path(cli.config.as_deref(), &env)?;
    let config = phpeek_config::load_file(&path, &env)?;
    Ok((config, path))
}

fn main() -> ExitCode {
    // One crypto provider (ring) for every TLS use: the API and metrics
    // listeners, the client commands, and any HTTP client built later.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    match cli.command {
        None => serve(&cli, false),
        Some(Cmd::Serve { watch }) => serve(&cli, watch),
        Some(Cmd::CheckConfig) => match load(&cli) {
            Ok((config, _)) => {
                // Advice goes to stderr: stdout stays the effective YAML.
                let mut err = std::io::stderr().lock();
                for line in phpeek_config::advisories(&config) {
                    let _ = writeln!(err, "warning: {line}");
                }
                drop(err);
                emit(&phpeek_config::to_yaml(&config))
            }
            Err(e) => {
                print_errors(&e);
                ExitCode::from(2)
            }
        },
        Some(Cmd::Schema) => {
            let schema = phpeek_config::json_schema();
            match serde_json::to_string_pretty(&schema) {
                Ok(s) => emit(&(s + "\n")),
                Err(e) => {
                    let _ = writeln!(
                        std::io::stderr().lock(),
                        "phpeek-pm: cannot render the schema: {e}"
                    );
                    ExitCode::from(1)
                }
            }
        }
        Some(Cmd::Version) => emit(&format!("phpeek-pm {}\n", env!("CARGO_PKG_VERSION"))),
        Some(Cmd::Completions { shell }) => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut cmd, "phpeek-pm", &mut out);
            emit(&String::from_utf8_lossy(&out))
        }
        Some(Cmd::Import(ref cmd)) => run_import(cmd),
        Some(ref c) => run_client(&cli, c),
    }
}

/// Runs a client command against a running manager.
fn run_client(cli: &Cli, cmd: &Cmd) -> ExitCode {
    let client = match client::Client::locate(
        cli.api.as_deref(),
        cli.token.as_deref(),
        cli.config.as_deref(),
        &cli.tls,
    ) {
        Ok(c) => c,
        Err(f) => return f.report(),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("phpeek-pm: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        match cmd {
            Cmd::Status { json } => client::status(&client, *json).await,
            Cmd::Scale {
                name,
                desired,
                wait,
                timeout,
            } => {
                let target = match autoscale::scale_target(&client, name, desired).await {
                    Ok(t) => t,
                    Err(e) => return Err(e),
                };
                client::scale(
                    &client,
                    name,
                    target,
                    *wait,
                    std::time::Duration::from_secs(*timeout),
                )
                .await
            }
            Cmd::Start { name } => client::action(&client, name, "start").await,
            Cmd::Stop { name } => client::action(&client, name, "stop").await,
            Cmd::Restart { name } => client::action(&client, name, "restart").await,
            Cmd::Run { name } => runs::run(&client, name).await,
            Cmd::Autoscale { name, set } => {
                autoscale::autoscale(&client, name, set.as_deref()).await
            }
            Cmd::Runs { name, json } => runs::runs(&client, name, *json).await,
            Cmd::Logs {
                name,
                follow,
                lines,
            } => client::logs(&client, name, *lines, *follow).await,
            Cmd::Reload => client::reload(&client).await,
            Cmd::Tui => tui::run(&client).await,
            Cmd::Serve { .. }
            | Cmd::CheckConfig
            | Cmd::Schema
            | Cmd::Version
            | Cmd::Import(_)
            | Cmd::Completions { .. } => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => f.report(),
    }
}

fn serve(cli: &Cli, watch: bool) -> ExitCode {
    // Before any thread exists, so that every thread inherits it: the
    // reaper thread takes SIGCHLD and the manager's signals with sigwait
    // (see phpeek-core's reaper and signals).
    if let Err(e) = phpeek_core::block_signals() {
        eprintln!("phpeek-pm: cannot block SIGCHLD and the manager's signals: {e}");
        return ExitCode::from(1);
    }
    let (config, path) = match load(cli) {
        Ok(c) => c,
        Err(e) => {
            print_errors(&e);
            return ExitCode::from(2);
        }
    };
    logging::init(config.global.log_format, config.global.log_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result: anyhow::Result<std::convert::Infallible> = runtime.block_on(async {
        let listeners = phpeek_server::Listeners::bind(&config).await?;
        tracing::info!(
            "phpeek-pm {} starting {} processes from {}",
            env!("CARGO_PKG_VERSION"),
            config.processes.len(),
            path.display()
        );
        for line in phpeek_config::advisories(&config) {
            tracing::warn!("{line}");
        }
        let core = phpeek_core::start(config.clone(), path.clone())?;
        listeners.serve(&config, core.handle.clone());
        if watch || config.global.watch_config {
            // Reloads still work by SIGHUP and the API when this fails.
            if let Err(e) = watch::watch_config_file(&path, core.handle.clone()) {
                tracing::error!("{e}; reload with SIGHUP or POST /api/v1/reload instead");
            }
        }
        // The manager ends on the supervisor's own worker thread, as soon as
        // the supervisor is done (it has awaited every log reader) and the
        // writer has written what they queued: tearing the runtime down
        // first, or handing the code back to this thread, only delayed the
        // exit that the container runtime and the parent are waiting for
        // (issue 13). Tasks still running (the API, a reader of a pipe that
        // an escaped grandchild holds open) end with the process.
        tokio::spawn(async move {
            let (code, flush) = core.wait().await;
            // Bounded: a manager whose stdout nobody reads must still exit
            // (and must not log about it: stderr may be stuck too).
            let _ = flush.flush(std::time::Duration::from_secs(5));
            std::process::exit(i32::from(u8::try_from(code).unwrap_or(1)))
        });
        std::future::pending().await
    });
    match result {
        Ok(never) => match never {},
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::from(1)
        }
    }
}
