// Runs a wasm32-wasip1 program under node's V8 with WASI (preview1): `node bench/v8.mjs FILE`.
// `make v8-bench` uses it for examples/core_bench.rs, the module's own CPU without Envoy.
import { readFile } from "node:fs/promises";
import { WASI } from "node:wasi";
import { argv, exit } from "node:process";

const file = argv[2];
if (!file) {
  console.error("usage: node bench/v8.mjs FILE.wasm");
  exit(2);
}
const wasi = new WASI({ version: "preview1", args: [file], env: {}, returnOnExit: true });
const module = await WebAssembly.compile(await readFile(file));
// The library's proxy-wasm adapter is linked in and imports the host ABI from "env"; nothing
// here calls it, so every such import is a stub that fails (status 1).
const imports = wasi.getImportObject();
imports.env = {};
for (const imp of WebAssembly.Module.imports(module)) {
  if (imp.module === "env" && imp.kind === "function") imports.env[imp.name] = () => 1;
}
const instance = await WebAssembly.instantiate(module, imports);
// The SDK also exports `_initialize` (a reactor's), which node refuses next to `_start`.
const { memory, _start } = instance.exports;
exit(wasi.start({ exports: { memory, _start } }));
