// The training worker's script: the page starts it with `new Worker('./mechlab-worker-loader.js')`.
// trunk builds src/bin/mechlab-worker.rs with wasm-bindgen's no-modules target, whose glue defines
// the global `wasm_bindgen`; instantiating the module runs the worker's `main`, which installs the
// message handler and posts `Ready`. A failure to fetch or instantiate the module is rethrown
// outside the promise so it reaches the page as the Worker's `error` event.
importScripts('./mechlab-worker.js');
wasm_bindgen({ module_or_path: './mechlab-worker_bg.wasm' }).catch((e) => {
  setTimeout(() => {
    throw new Error(`could not load the training worker's WebAssembly: ${e}`);
  });
});
