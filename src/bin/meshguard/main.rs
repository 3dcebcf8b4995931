//! `meshguard`: the command-line tool beside the wasm module (native only).
//!
//! One subcommand per file; [`COMMANDS`] is the whole dispatch, so a new subcommand (`openapi`,
//! `inventory`) is a new file and one row. Exit codes: 0 done, 1 the input was refused, 2 usage.

mod explain;
mod schema;
mod validate;

use std::io::Read;
use std::process::ExitCode;

/// A subcommand: its name, its argument synopsis, one line of help, and what runs it.
struct Command {
    name: &'static str,
    args: &'static str,
    help: &'static str,
    run: fn(&[String]) -> ExitCode,
}

const COMMANDS: &[Command] = &[
    Command {
        name: "validate",
        args: "FILE...",
        help: "compile plugin configs (JSON; - for stdin) as on_configure does",
        run: validate::run,
    },
    Command {
        name: "schema",
        args: "",
        help: "print the plugin config's JSON Schema (draft 7)",
        run: schema::run,
    },
    Command {
        name: "explain",
        args: "CONFIG METHOD PATH [HEADER...]",
        help: "which route a request takes and which checks run, in order",
        run: explain::run,
    },
];

/// Exit code for usage errors.
const USAGE: u8 = 2;

fn usage() -> String {
    let mut text = format!("meshguard {}\nusage:\n", env!("CARGO_PKG_VERSION"));
    for c in COMMANDS {
        let line = format!("meshguard {} {}", c.name, c.args);
        text.push_str(&format!("  {:<48} {}\n", line.trim_end(), c.help));
    }
    text
}

/// Prints `usage: meshguard NAME ARGS` for a subcommand and returns the usage exit code.
fn usage_of(name: &str) -> ExitCode {
    if let Some(c) = COMMANDS.iter().find(|c| c.name == name) {
        eprintln!("usage: meshguard {} {}\n  {}", c.name, c.args, c.help);
    }
    ExitCode::from(USAGE)
}

/// Reads a file, or standard input for `-`.
fn read_input(path: &str) -> std::io::Result<Vec<u8>> {
    if path == "-" {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf)?;
        Ok(buf)
    } else {
        std::fs::read(path)
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((name, rest)) = args.split_first() else {
        eprint!("{}", usage());
        return ExitCode::from(USAGE);
    };
    match name.as_str() {
        "-h" | "--help" | "help" => {
            print!("{}", usage());
            ExitCode::SUCCESS
        }
        "-V" | "--version" | "version" => {
            println!("meshguard {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        _ => match COMMANDS.iter().find(|c| c.name == name) {
            Some(c) if rest.iter().any(|a| a == "-h" || a == "--help") => {
                usage_of(c.name);
                ExitCode::SUCCESS
            }
            Some(c) => (c.run)(rest),
            None => {
                eprint!("meshguard: unknown command {name:?}\n{}", usage());
                ExitCode::from(USAGE)
            }
        },
    }
}
