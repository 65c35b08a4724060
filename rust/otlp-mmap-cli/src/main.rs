//! `otlp-mmap`: look into OTLP-MMAP files.
//!
//! - `otlp-mmap inspect FILE`: header, rings, dictionary;
//! - `otlp-mmap dump FILE`: everything in the file as OTLP/JSON lines;
//! - `otlp-mmap write-sample FILE`: a small file with spans, logs and metrics.

#![forbid(unsafe_code)]

mod inspect;
mod sample;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use otlp_mmap_collector::{DumpOptions, dump};

#[derive(Parser)]
#[command(
    name = "otlp-mmap",
    version,
    about = "Inspect, dump and write OTLP-MMAP v1 files"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SignalArg {
    Traces,
    Logs,
    Metrics,
    All,
}

#[derive(Subcommand)]
enum Command {
    /// Print the version, start time, each ring's geometry, indices and fill, and the dictionary's size.
    Inspect { file: PathBuf },
    /// Print what the file holds as OTLP/JSON, one export request per line.
    Dump {
        file: PathBuf,
        #[arg(long, value_enum, default_value = "all")]
        signal: SignalArg,
        /// Also print spans that started and never ended, as incomplete spans.
        #[arg(long)]
        include_incomplete: bool,
        /// Advance the file's reader_index (takes the reader lock; a Collector must not be reading it).
        #[arg(long)]
        consume: bool,
    },
    /// Write a sample file: N spans (plus one never ended), N logs and N measurements.
    WriteSample {
        file: PathBuf,
        #[arg(long, default_value_t = 10)]
        count: u32,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect { file } => inspect::run(&file),
        Command::Dump {
            file,
            signal,
            include_incomplete,
            consume,
        } => {
            let all = signal == SignalArg::All;
            let opts = DumpOptions {
                traces: all || signal == SignalArg::Traces,
                logs: all || signal == SignalArg::Logs,
                metrics: all || signal == SignalArg::Metrics,
                include_incomplete,
                consume,
            };
            dump(&file, opts)
                .map_err(|e| format!("{}: {e}", file.display()))
                .and_then(|d| d.to_json_lines().map_err(|e| e.to_string()))
                .map(|text| print!("{text}"))
        }
        Command::WriteSample { file, count } => {
            sample::write(&file, count).map_err(|e| format!("{}: {e}", file.display()))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("otlp-mmap: {e}");
            ExitCode::FAILURE
        }
    }
}
