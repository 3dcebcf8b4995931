//! The plugin config's JSON Schema, derived from the raw config types (feature `schema`).
//!
//! It is what editors and CI use to check a config before it reaches Envoy: field names, types,
//! enums and unknown-field refusal, straight from the serde types. It says nothing the compiler
//! alone decides (route names unique, one of `path`/`prefix`, providers that exist, JSON Schemas
//! that compile): `meshguard validate` runs the compiler. The checked-in copy lives at
//! [`SCHEMA_PATH`]; `make schema` rewrites it and a test keeps it in sync. Never built into the
//! wasm module.

use super::raw::RawConfig;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value};

/// Where the checked-in schema lives, relative to the repository root.
pub const SCHEMA_PATH: &str = "schema/meshguard-config.schema.json";

/// Title of the schema document.
pub const TITLE: &str = "meshguard plugin config";

/// The JSON Schema (draft 7, the draft editors and validators support most widely) of the whole
/// plugin configuration. Definitions are named for the config section (`Route`, not `RawRoute`).
pub fn config_schema() -> Value {
    let generator = SchemaSettings::draft07().into_generator();
    let mut root = generator.into_root_schema_for::<RawConfig>().to_value();
    rename_definitions(&mut root);
    if let Value::Object(map) = &mut root {
        map.insert("title".into(), Value::String(TITLE.into()));
        map.insert(
            "description".into(),
            Value::String(
                "The meshguard plugin config (Envoy plugin_config, Istio pluginConfig). Generated \
                 from the raw config types by `make schema`; `meshguard validate` also runs the \
                 checks a schema cannot express."
                    .into(),
            ),
        );
    }
    root
}

/// The schema as the checked-in file holds it: pretty JSON and a final newline.
pub fn config_schema_text() -> String {
    let mut text = serde_json::to_string_pretty(&config_schema()).unwrap_or_default();
    text.push('\n');
    text
}

fn public_name(name: &str) -> &str {
    match name.strip_prefix("Raw") {
        Some(rest) if !rest.is_empty() => rest,
        _ => name,
    }
}

/// `RawRoute` -> `Route` in `definitions` and in every `$ref` that points there, unless the
/// shorter name is taken: then the name stays.
fn rename_definitions(root: &mut Value) {
    let Some(Value::Object(defs)) = root.get_mut("definitions") else {
        return;
    };
    let names: Vec<String> = defs.keys().cloned().collect();
    let renames: Vec<(String, String)> = names
        .iter()
        .filter_map(|old| {
            let new = public_name(old);
            let taken = names.iter().filter(|n| public_name(n) == new).count() > 1
                || (new != old && names.iter().any(|n| n == new));
            (new != old && !taken).then(|| (old.clone(), new.to_string()))
        })
        .collect();
    let renamed: Map<String, Value> = std::mem::take(defs)
        .into_iter()
        .map(|(k, v)| {
            let name = renames
                .iter()
                .find(|(old, _)| *old == k)
                .map_or(k.clone(), |(_, new)| new.clone());
            (name, v)
        })
        .collect();
    *defs = renamed;
    rewrite_refs(root, &renames);
}

fn rewrite_refs(node: &mut Value, renames: &[(String, String)]) {
    const PREFIX: &str = "#/definitions/";
    match node {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                match value {
                    Value::String(r) if key == "$ref" => {
                        let target = r.strip_prefix(PREFIX).and_then(|name| {
                            renames
                                .iter()
                                .find(|(old, _)| old == name)
                                .map(|(_, new)| new)
                        });
                        if let Some(new) = target {
                            *r = format!("{PREFIX}{new}");
                        }
                    }
                    _ => rewrite_refs(value, renames),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rewrite_refs(v, renames)),
        _ => {}
    }
}
