//! The process-wide wasmtime engine, the linker that grants plugins their (few) imports, and the
//! epoch ticker at whose ticks a long call's CPU time is weighed against its budget.

use std::path::Path;
use std::thread;

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine};

use super::bindings::Balancer;
use super::instance::InstanceState;
use super::limits::EPOCH_TICK;
use super::{PluginCache, PluginError};

/// The wasmtime engine and linker shared by every plugin in the process, with the on-disk
/// cache of compiled plugins if there is one.
#[derive(Clone)]
pub struct PluginEngine {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<InstanceState>,
    pub(crate) cache: Option<PluginCache>,
}

impl PluginEngine {
    /// Builds the engine and linker and starts the epoch ticker, which stops with the engine.
    pub fn new() -> Result<Self, PluginError> {
        let engine_error = |err: wasmtime::Error| PluginError::Engine(format!("{err:#}"));
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            // Plugins are synchronous; without async support a call costs about 3x less.
            .concurrency_support(false);
        let engine = Engine::new(&config).map_err(engine_error)?;

        let mut linker = Linker::new(&engine);
        // WASI is linked so that components built for wasm32-wasip2 instantiate, but each
        // instance's context grants nothing: no files, environment, sockets, clocks beyond time.
        // Synchronously, so that a call needs no fiber, with no call that waits.
        super::never_block::add_to_linker(&mut linker).map_err(engine_error)?;
        Balancer::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)
            .map_err(engine_error)?;

        let weak = engine.weak();
        thread::Builder::new()
            .name("vane-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    thread::sleep(EPOCH_TICK);
                }
            })
            .map_err(|err| PluginError::Engine(format!("cannot start the epoch ticker: {err}")))?;
        Ok(PluginEngine {
            engine,
            linker,
            cache: None,
        })
    }

    /// A new engine keeping compiled plugins in the cache folder `cache` if it can be used (if
    /// not, vane says why and compiles every time).
    pub fn with_cache_folder(cache: Option<&Path>) -> Result<Self, PluginError> {
        let mut engine = PluginEngine::new()?;
        engine.cache = cache.and_then(|folder| match PluginCache::open(folder) {
            Ok(cache) => Some(cache),
            Err(err) => {
                tracing::warn!(error = %err, "plugins will be compiled on every load");
                None
            }
        });
        Ok(engine)
    }
}
