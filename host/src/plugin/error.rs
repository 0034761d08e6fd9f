//! Why a plugin could not be loaded: each variant names the file and what is wrong with it.

use std::path::PathBuf;

/// A plugin that could not be loaded, and why.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The file could not be read.
    #[error("cannot read plugin {}: {cause}", path.display())]
    Read {
        /// The plugin file.
        path: PathBuf,
        /// What the system said (in the message, so not repeated as its source).
        cause: std::io::Error,
    },
    /// The file is not WebAssembly at all.
    #[error("plugin {} is not a WebAssembly file (it does not start with \\0asm)", path.display())]
    NotWasm {
        /// The plugin file.
        path: PathBuf,
    },
    /// The file is a core module rather than a component.
    #[error(
        "plugin {} is a core WebAssembly module, not a component: build it for wasm32-wasip2, \
         or wrap it with `wasm-tools component new`", path.display()
    )]
    NotComponent {
        /// The plugin file.
        path: PathBuf,
    },
    /// wasmtime could not compile or validate the component.
    #[error("plugin {} is not a valid component: {reason}", path.display())]
    Compile {
        /// The plugin file.
        path: PathBuf,
        /// wasmtime's explanation.
        reason: String,
    },
    /// The component's imports or exports do not match the `balancer` world.
    #[error(
        "plugin {} does not fit vane's world vane:balancer/balancer@{}: {reason}",
        path.display(), super::fit::PACKAGE_VERSION
    )]
    WrongWorld {
        /// The plugin file.
        path: PathBuf,
        /// What does not match.
        reason: String,
    },
    /// The plugin's `configure` answered an error.
    #[error("plugin {} refused its configuration: {message}", path.display())]
    Refused {
        /// The plugin file.
        path: PathBuf,
        /// The plugin's own message.
        message: String,
    },
    /// The plugin failed while starting or in `configure` (trap, deadline or memory cap).
    #[error("plugin {} failed in configure: {reason}", path.display())]
    Failed {
        /// The plugin file.
        path: PathBuf,
        /// The trap or limit.
        reason: String,
    },
    /// The WebAssembly engine itself could not start.
    #[error("cannot start the WebAssembly engine: {0}")]
    Engine(String),
}

impl PluginError {
    /// The same error naming the plugin file by its full path, so that a path relative to the
    /// config's folder or to where vane was started reads the same from anywhere.
    pub(crate) fn named_in_full(mut self) -> Self {
        match &mut self {
            PluginError::Read { path, .. }
            | PluginError::NotWasm { path }
            | PluginError::NotComponent { path }
            | PluginError::Compile { path, .. }
            | PluginError::WrongWorld { path, .. }
            | PluginError::Refused { path, .. }
            | PluginError::Failed { path, .. } => {
                if let Ok(full) = std::path::absolute(&*path) {
                    *path = full;
                }
            }
            PluginError::Engine(_) => {}
        }
        self
    }
}
