//! `meshguard validate FILE...`: the same compiler `on_configure` runs, offline.
//!
//! Prints `FILE: ok (N routes)` or `FILE: <json.path>: <problem>` per file; exits 1 if any file
//! is refused.

use std::process::ExitCode;

pub fn run(files: &[String]) -> ExitCode {
    if files.is_empty() {
        return crate::usage_of("validate");
    }
    let mut failed = false;
    for file in files {
        match crate::read_input(file) {
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
