//! The phpeek-pm binary: the manager (`serve`, the default) and its
//! configuration tools.

mod logging;

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

    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the manager (the default).
    Serve,
    /// Validate the configuration and print it as the manager would use it.
    CheckConfig,
    /// Print the JSON Schema of the configuration file.
    Schema,
    /// Print the version.
    Version,
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
    let cli = Cli::parse();
    match cli.command {
        None | Some(Cmd::Serve) => serve(&cli),
        Some(Cmd::CheckConfig) => match load(&cli) {
            Ok((config, _)) => emit(&phpeek_config::to_yaml(&config)),
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
    }
}

fn serve(cli: &Cli) -> ExitCode {
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
    let result = runtime.block_on(async {
        let listeners = phpeek_server::Listeners::bind(&config).await?;
        tracing::info!(
            "phpeek-pm {} starting {} processes from {}",
            env!("CARGO_PKG_VERSION"),
            config.processes.len(),
            path.display()
        );
        let core = phpeek_core::start(config.clone(), path.clone())?;
        listeners.serve(&config, core.handle.clone());
        anyhow::Ok(core.wait().await)
    });
    match result {
        Ok((code, flush)) => {
            // Dropping the runtime ends the reader tasks still holding pipes;
            // the writer then finishes what was queued.
            runtime.shutdown_timeout(std::time::Duration::from_millis(500));
            flush.join();
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::from(1)
        }
    }
}
