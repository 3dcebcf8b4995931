//! `meshguard schema`: prints the plugin config's JSON Schema (the checked-in
//! `schema/meshguard-config.schema.json` is this output).

use std::process::ExitCode;

pub fn run(args: &[String]) -> ExitCode {
    if !args.is_empty() {
        return crate::usage_of("schema");
    }
    print!("{}", meshguard::config::schema::config_schema_text());
    ExitCode::SUCCESS
}
