//! Offline config validator: the same compiler `on_configure` runs, as a native command.
//!
//! Usage: `meshguard-validate FILE...` (`-` for standard input). Prints `FILE: ok (N routes)` or
//! `FILE: <json.path>: <problem>` per file; exits 1 if any file is refused, 2 on usage errors.

use std::io::Read;
use std::process::ExitCode;

fn read(path: &str) -> std::io::Result<Vec<u8>> {
    if path == "-" {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf)?;
        Ok(buf)
    } else {
        std::fs::read(path)
    }
}

fn main() -> ExitCode {
    let files: Vec<String> = std::env::args().skip(1).collect();
    if files.is_empty() || files.iter().any(|f| f == "-h" || f == "--help") {
        eprintln!("usage: meshguard-validate FILE... (plugin config JSON; - for stdin)");
        return ExitCode::from(2);
    }
    let mut failed = false;
    for file in &files {
        match read(file) {
            Err(e) => {
                println!("{file}: cannot read: {e}");
                failed = true;
            }
            Ok(bytes) => match meshguard::config::compile(&bytes) {
                Ok(policy) => {
                    println!("{file}: ok ({} routes)", policy.routes.len());
                    for w in policy.providers.warnings().iter().chain(&policy.warnings) {
                        println!("{file}: warning: {w}");
                    }
                }
                Err(e) => {
                    println!("{file}: {e}");
                    failed = true;
                }
            },
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
